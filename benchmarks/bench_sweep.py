"""Benchmark: a LightGBM hyperopt sweep with n_jobs=1 and n_jobs=2 (num_threads=1 per trial).

Prints, per setting: per-trial framework overhead (median, p90) = trial wall time (from the sweeper's submit to the
result, as recorded by the sweeper) minus the model's own fit, predict and backtest time (recorded by each trial's
MLflow run); the sweeper's own time between one trial's end and the next one's start (median, n_jobs=1); the sweep's
set-up (command start to the first trial: imports, composing, preloading the data); trials per minute; the peak RSS
of the largest process (the sweep process or a trial); and the parallel speedup.

    .venv/bin/python benchmarks/bench_sweep.py                      # 20 trials on the default synthetic market
    .venv/bin/python benchmarks/bench_sweep.py --trials 8 --small   # a quick look
    .venv/bin/python benchmarks/bench_sweep.py --small recording.plots=true   # extra overrides for every trial
    .venv/bin/python benchmarks/bench_sweep.py --bins               # n_jobs=1, LightGBM's bins reused vs not

``--bins`` runs the same sweep (same sampler seed, so the same trials: reused bins give the same trees) with
``model.reuse_bins=false`` and ``true``, plus one single run, and prints per trial the fit, its binning (or loading
the stored bins) and its boosting, from each trial's ``time.fit*`` metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIT_PARTS = ("fit", "fit_binning", "fit_boosting")
SMALL = ["dataset.n_instruments=60", "dataset.n_days=600", "strategy.topk=10", "strategy.n_drop=2"]


def run(workdir: Path, trials: int, n_jobs: int, extra: list[str], name: str | None = None) -> dict:
    from mlflow.tracking import MlflowClient

    sweep = workdir / f"sweep-{name or n_jobs}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    cmd = [
        sys.executable,
        "-m",
        "qframe",
        "-m",
        "tuner=lightgbm",
        f"hydra.sweep.dir={sweep}",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.n_jobs={n_jobs}",
        "hydra.sweeper.max_failure_rate=1",
        "model.num_threads=1",
        *extra,
    ]
    t0 = time.time()
    log = workdir / f"sweep-{name or n_jobs}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
        # the rusage of the sweep process includes the trials it waited for: the largest process's peak RSS
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the sweep failed; see {log}")
    state = json.loads((sweep / "sweep_state.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / '.qframe' / 'mlflow.db'}")
    parent = next(
        r
        for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
        if r.data.params.get("sweep_dir") == str(sweep)
    )
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=1000
    )
    model_time = {
        int(r.data.tags["qframe.trial"]): sum(
            r.data.metrics.get(f"time.{k}", 0.0) for k in ("fit", "predict", "backtest_risk")
        )
        for r in children
    }
    overheads, spans = [], []
    for t in state["trials"]:
        if t["status"] != "complete":
            continue
        span = t["ended"] - t["started"]
        spans.append((t["started"], t["ended"]))
        overheads.append(span - model_time[t["number"]])
    sweep_time = max(e for _, e in spans) - min(s for s, _ in spans)
    spans.sort()
    gaps = [b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False)]
    durations = [t["ended"] - t["started"] for t in sorted(state["trials"], key=lambda t: t["number"])]
    fit_parts = {
        int(r.data.tags["qframe.trial"]): {k: r.data.metrics.get(f"time.{k}", float("nan")) for k in FIT_PARTS}
        for r in children
    }
    return {
        "fit_parts": fit_parts,
        "n_jobs": n_jobs,
        "completed": len(overheads),
        "overhead_median": statistics.median(overheads),
        "overhead_p90": statistics.quantiles(overheads, n=10)[-1] if len(overheads) > 1 else overheads[0],
        "gap_median": statistics.median(gaps) if n_jobs == 1 and gaps else float("nan"),
        "setup_s": spans[0][0] - t0,
        "trials_per_min": 60 * len(overheads) / sweep_time,
        "command_wall_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "durations": durations,
        "busy": sum(durations) / (n_jobs * sweep_time),
    }


def single_fit(workdir: Path, extra: list[str]) -> dict[str, float]:
    """The fit parts of one single run (no sweep) of the same config, from its MLflow run; it bins its own
    (``model.reuse_bins=false``: a single run would load the bins the sweeps stored)."""
    from mlflow.tracking import MlflowClient

    env = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    cmd = [sys.executable, "-m", "qframe", "model.num_threads=1", "run_name=bench-single", "recording.plots=false"]
    cmd += ["evaluation.controls.enabled=false", *extra, "model.reuse_bins=false"]
    log = workdir / "single.log"
    with open(log, "w") as out:
        if subprocess.run(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
            raise SystemExit(f"the single run failed; see {log}")
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / '.qframe' / 'mlflow.db'}")
    ids = [e.experiment_id for e in client.search_experiments()]
    (single,) = client.search_runs(ids, "tags.`mlflow.runName` = 'bench-single'")
    return {k: single.data.metrics.get(f"time.{k}", float("nan")) for k in FIT_PARTS}


def bins_main(workdir: Path, trials: int, extra: list[str]) -> None:
    """The same n_jobs=1 sweep without and with reused bins, and one single run: fit parts per trial."""
    rows = {
        reuse: run(workdir, trials, 1, [*extra, f"model.reuse_bins={reuse}"], f"bins-{reuse}")
        for reuse in ("false", "true")
    }
    alone = single_fit(workdir, extra)
    off, on = rows["false"]["fit_parts"], rows["true"]["fit_parts"]
    print(f"{'trial':>5} {'fit s (binned each)':>20} {'binning s':>10} {'fit s (reused)':>15} {'binning s':>10}")
    for n in sorted(off):
        print(
            f"{n:>5} {off[n]['fit']:>20.2f} {off[n]['fit_binning']:>10.2f} {on[n]['fit']:>15.2f} "
            f"{on[n]['fit_binning']:>10.2f}"
        )
    later = [n for n in sorted(on) if n > 0]  # trial 0 stores the bins the others load
    med = {
        (mode, k): statistics.median(parts[n][k] for n in later)
        for mode, parts in (("off", off), ("on", on))
        for k in FIT_PARTS
    }
    saved = statistics.median(off[n]["fit"] - on[n]["fit"] for n in later)
    print(
        f"trials 1..{trials - 1}, median: fit {med['off', 'fit']:.2f} s binning each trial "
        f"(binning {med['off', 'fit_binning']:.2f} s, boosting {med['off', 'fit_boosting']:.2f} s) vs "
        f"{med['on', 'fit']:.2f} s with reused bins (loading {med['on', 'fit_binning']:.2f} s, boosting "
        f"{med['on', 'fit_boosting']:.2f} s); paired saving {saved:.2f} s a trial "
        f"({saved / med['off', 'fit']:.0%} of the fit)"
    )
    print(
        f"single run: fit {alone['fit']:.2f} s, of which binning {alone['fit_binning']:.2f} s "
        f"({alone['fit_binning'] / alone['fit']:.0%}); trial 0 (stores the bins): binning "
        f"{on[0]['fit_binning']:.2f} s vs {off[0]['fit_binning']:.2f} s without storing"
    )


def list_scheduling_bound(durations: list[float], slots: int) -> float:
    """The speedup any scheduler reaches with these trial times in this order (each trial to the first free slot,
    no overhead): the tail of a sweep leaves slots idle when the last trials are long."""
    ends = [0.0] * slots
    for d in durations:
        ends[ends.index(min(ends))] += d
    return sum(durations) / max(ends)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--small", action="store_true", help="a 60 x 600 market instead of the default 300 x 2500")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--bins", action="store_true", help="n_jobs=1 with LightGBM's bins reused vs binned each trial")
    ap.add_argument("overrides", nargs="*", help="extra overrides for every trial, e.g. recording.plots=true")
    args = ap.parse_args()
    extra = (SMALL if args.small else []) + args.overrides
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="qframe-bench-sweep-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.bins:
        bins_main(workdir, args.trials, extra)
        return
    rows = [run(workdir, args.trials, n, extra) for n in (1, 2)]
    print(
        f"{'n_jobs':>6} {'done':>5} {'overhead med s':>15} {'overhead p90 s':>15} {'gap med s':>10} "
        f"{'set-up s':>9} {'trials/min':>11} {'wall s':>8} {'peak RSS MB':>12}"
    )
    for r in rows:
        print(
            f"{r['n_jobs']:>6} {r['completed']:>5} {r['overhead_median']:>15.3f} {r['overhead_p90']:>15.3f} "
            f"{r['gap_median']:>10.3f} {r['setup_s']:>9.1f} {r['trials_per_min']:>11.2f} {r['command_wall_s']:>8.1f} "
            f"{r['peak_rss_mb']:>12.0f}"
        )
    print(f"parallel speedup (trials/min, n_jobs=2 vs 1): {rows[1]['trials_per_min'] / rows[0]['trials_per_min']:.2f}x")
    print(
        f"  bound for these trial times (list scheduling, no overhead): "
        f"{list_scheduling_bound(rows[1]['durations'], 2):.2f}x; "
        f"slots busy {rows[1]['busy']:.0%}; sum of trial times {sum(rows[0]['durations']):.0f} s (n_jobs=1) vs "
        f"{sum(rows[1]['durations']):.0f} s (n_jobs=2)"
    )


if __name__ == "__main__":
    main()
