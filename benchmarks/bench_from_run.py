"""What re-evaluating a recorded run costs: ``qframe from_run=RUN`` on the default market (300 x 2500, Alpha158).

In one fresh work directory: a source run is fitted (ridge by default: the model does not change what from_run
costs, only what the source run costs), then, in a fresh subprocess, the source's predictions are re-evaluated by
``run_workflow`` three times in the same process: the first pays MLflow's import and the store's opening, the others
find them done (as a sweep's forked trial or a second call from Python does). Each with the defaults (controls and
plots on for a single run) and with ``evaluation.controls.enabled=false recording.plots=false``. Then a strategy
sweep over the source's predictions (``qframe -m from_run=RUN tuner=strategy``): the trials' own time as MLflow
recorded it (start to end of each trial's run).

    python benchmarks/bench_from_run.py [--model linear] [--trials 10]
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

STAGES = ["data", "signal analysis", "backtest + risk", "controls", "recording"]
LEAN = ["evaluation.controls.enabled=false", "recording.plots=false"]


def compose(overrides: list[str]) -> dict:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from qframe.app import conf_dir

    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return OmegaConf.to_container(hydra_compose("config", overrides), resolve=True)


def child(workdir: str, variant: str) -> None:
    from qframe.core.workflow import run_workflow

    extra = LEAN if variant == "lean" else []
    cfg = compose([f"workdir={workdir}", "from_run=source", *extra])
    out = []
    for _ in range(3):
        t0 = time.perf_counter()
        result = run_workflow(cfg)
        out.append({"total": time.perf_counter() - t0, "timings": result.timings})
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="linear", help="the source run's model (default: linear)")
    parser.add_argument("--trials", type=int, default=10, help="trials of the strategy sweep (0: none)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from rich.console import Console
    from rich.table import Table

    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    workdir = tempfile.mkdtemp(prefix="qframe-bench-from-run-")
    qframe = [sys.executable, "-m", "qframe", f"workdir={workdir}"]
    t0 = time.perf_counter()
    fit = [*qframe, f"model={args.model}", "run_name=source"]
    source = subprocess.run(fit, capture_output=True, text=True, env=env)
    if source.returncode != 0:
        sys.exit(f"the source run failed:\n{source.stderr[-4000:]}")
    print(f"source run (model={args.model}, market and features computed): {time.perf_counter() - t0:.1f} s")

    results = {}
    for variant in ("defaults", "lean"):
        proc = subprocess.run(
            [sys.executable, __file__, "--child", workdir, variant], capture_output=True, text=True, env=env
        )
        if proc.returncode != 0:
            sys.exit(f"from_run ({variant}) failed:\n{proc.stderr[-4000:]}")
        results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])

    table = Table(title="qframe from_run=source, default market (seconds, in process)")
    table.add_column("stage")
    for variant in results:
        table.add_column(f"{variant}: 1st", justify="right")
        table.add_column(f"{variant}: 2nd, 3rd", justify="right")
    for stage in [*STAGES, "total"]:
        cells = []
        for runs in results.values():
            values = [r["total"] if stage == "total" else r["timings"].get(stage, 0.0) for r in runs]
            cells += [f"{values[0]:.2f}", f"{values[1]:.2f}, {values[2]:.2f}"]
        table.add_row(stage, *cells)
    Console().print(table)
    rest = {v: r[0]["total"] - sum(r[0]["timings"].values()) for v, r in results.items()}
    print(
        "first run's rest (MLflow import, store opened, source run resolved and its artifacts read): "
        + ", ".join(f"{v} {seconds:.2f} s" for v, seconds in rest.items())
    )

    if args.trials:
        t0 = time.perf_counter()
        command = [*qframe[:3], "-m", *qframe[3:], "from_run=source", "tuner=strategy"]
        sweep = subprocess.run(
            [*command, f"hydra.sweeper.n_trials={args.trials}"],
            capture_output=True,
            text=True,
            env=env,
        )
        wall = time.perf_counter() - t0
        if sweep.returncode != 0:
            sys.exit(f"the sweep failed:\n{sweep.stderr[-4000:]}")
        import qframe as qf

        trials = qf.runs(workdir=workdir).search(sweep="last")
        seconds = (trials["end_time"] - trials["start_time"]).dt.total_seconds()
        fitted = [c for c in trials.columns if c.startswith("metrics.time.fit")]
        print(
            f"strategy sweep, {len(trials)} trials: trial run median {statistics.median(seconds):.2f} s "
            f"(backtest + risk median {trials['metrics.time.backtest_risk'].median():.3f} s), command wall "
            f"{wall:.1f} s; fit metrics recorded: {fitted or 'none'}"
        )


if __name__ == "__main__":
    main()
