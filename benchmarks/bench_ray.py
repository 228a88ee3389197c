"""Benchmark: a LightGBM hyperopt sweep on the fork launcher vs qframe's Ray launcher (local and a 2-node cluster).

Every sweep records to one ``mlflow server`` (the store trials on a cluster need; the same for every launcher, so
the comparison is the launchers'), ``model.num_threads=1`` per trial. Per launcher, with 1 slot and with 2:

* trials per minute (first trial's start to the last one's end) and the 2-slot / 1-slot ratio;
* per-trial overhead = the trial's wall time as the sweeper sees it (submit to result) minus the model's own fit,
  predict and backtest time (the trial run's ``time.*`` metrics): median and p90 over the trials after the first
  on each worker process (a fork trial is always a fresh child: all of them count);
* the first trials' start-up: the overhead of each worker's first trial (median), and the sweep's set-up (command
  start to the first submit);
* the hardware ceiling before the sweeps and after each launcher's two (``benchmarks/hardware.py``): what two
  processes at once get from this machine's cores, the most any 2-slot / 1-slot ratio can reach.

    .venv/bin/python benchmarks/bench_ray.py                         # 20 trials on the default market (long)
    .venv/bin/python benchmarks/bench_ray.py --trials 12 --small     # 60 instruments x 600 days
    .venv/bin/python benchmarks/bench_ray.py --small --only fork,ray_local

The cluster is tests/ray_cluster.py's (two ``ray start`` nodes of 1 CPU on 127.0.0.1, their own temp dir).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hardware import CEILING_TASKS, print_ceiling  # noqa: E402 - benchmarks/hardware.py, next to this script
from ray_cluster import ray_cluster, ray_env  # noqa: E402 - the test suite's cluster and services
from tracking_services import mlflow_server  # noqa: E402

SMALL = ["dataset.n_instruments=60", "dataset.n_days=600", "strategy.topk=10", "strategy.n_drop=2"]
LAUNCHERS = ("fork", "ray_local", "ray_cluster")


def sweep(workdir: Path, label: str, slots: int, trials: int, url: str, launcher: list[str], env: dict) -> dict:
    """One sweep of ``trials`` with ``slots`` at a time on ``launcher`` (its overrides); its measurements."""
    from mlflow.tracking import MlflowClient

    name = f"{label}-{slots}"
    directory = workdir / name
    cmd = [
        sys.executable,
        "-m",
        "qframe",
        "-m",
        "tuner=lightgbm",
        *launcher,
        f"hydra.sweep.dir={directory}",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.n_jobs={slots}",
        "hydra.sweeper.max_failure_rate=1",
        "model.num_threads=1",
        f"tracking_uri={url}",
        f"experiment_name=bench-{name}",
        f"workdir={workdir / '.qframe'}",
        *EXTRA,
    ]
    env = {k: v for k, v in env.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    t0 = time.time()
    with open(workdir / f"{name}.log", "w") as out:
        code = subprocess.call(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"the {name} sweep failed; see {workdir / f'{name}.log'}")
    state = json.loads((directory / "sweep_state.json").read_text())
    client = MlflowClient(url)
    experiment = client.get_experiment_by_name(f"bench-{name}")
    runs = client.search_runs([experiment.experiment_id], "tags.qframe.trial LIKE '%'", max_results=1000)
    by_trial = {int(r.data.tags["qframe.trial"]): r for r in runs}
    first_seen: set[tuple[str, str]] = set()
    warm, cold, spans = [], [], []
    for t in sorted((t for t in state["trials"] if t["status"] == "complete"), key=lambda t: t["started"]):
        run = by_trial[t["number"]]
        model = sum(run.data.metrics.get(f"time.{k}", 0.0) for k in ("fit", "predict", "backtest_risk"))
        overhead = t["ended"] - t["started"] - model
        spans.append((t["started"], t["ended"]))
        worker = (run.data.tags["qframe.node"], run.data.tags["qframe.pid"])
        if label == "fork" or worker in first_seen:  # a forked trial is always a fresh child
            warm.append(overhead)
        else:
            first_seen.add(worker)
            cold.append(overhead)
        if label == "fork" and len(spans) == 1:
            cold.append(overhead)
    span = max(e for _, e in spans) - min(s for s, _ in spans)
    return {
        "launcher": label,
        "slots": slots,
        "completed": len(spans),
        "workers": len(first_seen) if label != "fork" else len(spans),
        "overhead_median": statistics.median(warm) if warm else float("nan"),
        "overhead_p90": statistics.quantiles(warm, n=10)[-1] if len(warm) > 1 else float("nan"),
        "first_overhead": statistics.median(cold) if cold else float("nan"),
        "setup_s": min(s for s, _ in spans) - t0,
        "trials_per_min": 60 * len(spans) / span,
        "wall_s": time.time() - t0,
    }


@contextlib.contextmanager
def launcher_env(label: str, workdir: Path) -> Iterator[tuple[list[str], dict]]:
    """The launcher's overrides and the sweep's environment (a cluster started for ``ray_cluster``)."""
    if label == "fork":
        yield ["hydra/launcher=qframe"], dict(os.environ)
    elif label == "ray_local":
        temp = Path(tempfile.mkdtemp(prefix="qfbr", dir="/tmp"))  # short: Ray's socket paths
        try:
            yield ["hydra/launcher=qframe_ray", f"hydra.launcher.temp_dir={temp}"], ray_env(temp)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    else:
        with ray_cluster(nodes=2, num_cpus=1) as cluster:
            yield ["hydra/launcher=qframe_ray", f"hydra.launcher.address={cluster.address}"], cluster.env


def main() -> None:
    global EXTRA
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--small", action="store_true", help="a 60 x 600 market instead of the default 300 x 2500")
    ap.add_argument("--only", default=",".join(LAUNCHERS), help=f"launchers to run, of {', '.join(LAUNCHERS)}")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("overrides", nargs="*", help="extra overrides for every trial")
    args = ap.parse_args()
    EXTRA = (SMALL if args.small else []) + args.overrides
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="qframe-bench-ray-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    rows = []
    ceilings: dict[str, list[dict[str, float]]] = {}
    print(f"load average at start: {os.getloadavg()}", flush=True)
    # before the tracking server starts: its start-up (a dozen processes importing MLflow) would be measured too
    before = print_ceiling("before the sweeps")
    with mlflow_server(f"sqlite:///{workdir / 'server.db'}", workdir / "server.log", workdir / "served", 2, 300) as s:
        for label in [name for name in args.only.split(",") if name]:
            with launcher_env(label, workdir) as (overrides, env):
                for slots in (1, 2):
                    rows.append(sweep(workdir, label, slots, args.trials, s.url, overrides, env))
                    print(json.dumps(rows[-1]), flush=True)
            after = print_ceiling(f"after {label}")
            ceilings[label], before = [before, after], after  # a launcher's pair: the ceilings just before and after
    print(f"load average at the end: {os.getloadavg()}")
    print(
        f"{'launcher':<12} {'slots':>5} {'done':>5} {'workers':>7} {'overhead med s':>14} {'p90 s':>7} "
        f"{'1st trial s':>11} {'set-up s':>9} {'trials/min':>10} {'wall s':>7}"
    )
    for r in rows:
        print(
            f"{r['launcher']:<12} {r['slots']:>5} {r['completed']:>5} {r['workers']:>7} {r['overhead_median']:>14.3f} "
            f"{r['overhead_p90']:>7.3f} {r['first_overhead']:>11.2f} {r['setup_s']:>9.1f} {r['trials_per_min']:>10.2f} "
            f"{r['wall_s']:>7.0f}"
        )
    for label in dict.fromkeys(r["launcher"] for r in rows):
        pair = {r["slots"]: r for r in rows if r["launcher"] == label}
        if 1 in pair and 2 in pair:
            most = ", ".join(
                f"{task} {min(c[task] for c in ceilings[label]):.2f}-{max(c[task] for c in ceilings[label]):.2f}x"
                for task in CEILING_TASKS
            )
            print(
                f"{label}: 2 slots vs 1: {pair[2]['trials_per_min'] / pair[1]['trials_per_min']:.2f}x trials/min; "
                f"what 2 processes give at most here (before and after): {most}"
            )


EXTRA: list[str] = []

if __name__ == "__main__":
    main()
