"""Benchmark: four sweeps of two slots each writing one tracking store at once (sqlite, PostgreSQL, tracking server).

Per store: a fresh directory (one workdir for all the sweeps, removed afterwards; its feature cache warmed by one
single run first), a fresh database (PostgreSQL; the server's backend too), then four (``--sweeps``) ``qframe -m``
ridge sweeps started together, each ``--trials`` trials with ``hydra.sweeper.n_jobs=2`` (eight trials at a time).
Counted from each sweep's state and from the store: trials started, completed and failed; child runs recorded under
each sweep's parent; trials with no run (lost) or with more than one (duplicated); "database is locked" in any
output. Per-trial overhead (median, p90) = a trial's wall time as the sweeper saw it minus its model's fit, predict
and backtest time (as in ``bench_sweep.py``): on a 2-core machine eight trials at a time share two cores, so it is
comparable between the stores, not with ``bench_sweep.py``'s numbers.

    .venv/bin/python benchmarks/bench_stores.py                    # 6 trials a sweep, every store
    .venv/bin/python benchmarks/bench_stores.py --stores sqlite --trials 4
    .venv/bin/python benchmarks/bench_stores.py --sweeps 1         # one sweep: each store's overhead unloaded
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import tracking_services as services  # noqa: E402 - the tests' PostgreSQL and mlflow server helpers

SMALL = ["dataset.n_instruments=40", "dataset.n_days=320", "strategy.topk=5", "strategy.n_drop=1", "model=linear"]
MODEL_TIME = ("fit", "predict", "backtest_risk")


@contextlib.contextmanager
def store(kind: str, root: Path) -> Iterator[str]:
    """The tracking URI of a fresh store of ``kind``."""
    if kind == "sqlite":
        yield f"sqlite:///{root / '.qframe' / 'mlflow.db'}"
        return
    with services.fresh_database("qframe_bench") as database:
        if kind == "postgres":
            yield database
        else:
            with services.mlflow_server(database, root / "server.log", root / "served", workers=2) as server:
                yield server.url


def sweep_counts(uri: str, sweep_dir: Path) -> dict:
    """What one sweep's state and the store say about its trials."""
    from mlflow.tracking import MlflowClient

    state = json.loads((sweep_dir / "sweep_state.json").read_text())
    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(state["parent_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=1000
    )
    runs_per_trial = Counter(int(r.data.tags["qframe.trial"]) for r in children)
    model_time = {
        int(r.data.tags["qframe.trial"]): sum(r.data.metrics.get(f"time.{k}", 0.0) for k in MODEL_TIME)
        for r in children
    }
    trials = state["trials"]
    complete = [t for t in trials if t["status"] == "complete"]
    return {
        "started": len(trials),
        "completed": len(complete),
        "failed": sum(t["status"] == "failed" for t in trials),
        "runs": len(children),
        "lost": sum(runs_per_trial[t["number"]] == 0 for t in trials),
        "duplicated": sum(n > 1 for n in runs_per_trial.values()),
        "overheads": [t["ended"] - t["started"] - model_time.get(t["number"], 0.0) for t in complete],
    }


def bench(kind: str, sweeps: int, trials: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"qframe-bench-{kind}-"))
    try:
        return _bench(kind, root, sweeps, trials)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _bench(kind: str, root: Path, sweeps: int, trials: int) -> dict:
    with store(kind, root) as uri:
        common = [*SMALL, f"tracking_uri={uri}"]
        warm = subprocess.run(
            [sys.executable, "-m", "qframe", *common], cwd=root, env=services.qframe_env(), capture_output=True
        )
        if warm.returncode != 0:
            raise SystemExit(f"{kind}: the warm-up run failed:\n{warm.stderr.decode()[-3000:]}")
        dirs = [root / f"sweep{i}" for i in range(sweeps)]
        logs = [root / f"sweep{i}.log" for i in range(sweeps)]
        t0 = time.monotonic()
        procs = []
        for sweep_dir, log in zip(dirs, logs, strict=True):
            command = [
                *("-m", "hydra/sweeper=hyperopt", f"hydra.sweeper.n_trials={trials}", "hydra.sweeper.n_jobs=2"),
                *("hydra.sweeper.max_failure_rate=1", "model.alpha=interval(0.1,10)", f"hydra.sweep.dir={sweep_dir}"),
            ]
            with log.open("w") as out:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "qframe", *command, *common],
                        cwd=root,
                        env=services.qframe_env(),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        codes = [p.wait() for p in procs]
        wall = time.monotonic() - t0
        per_sweep = [sweep_counts(uri, d) for d in dirs]
    text = "".join(log.read_text() for log in logs)
    total = {k: sum(s[k] for s in per_sweep) for k in ("started", "completed", "failed", "runs", "lost", "duplicated")}
    overheads = [o for s in per_sweep for o in s["overheads"]]
    return {
        "store": kind,
        **total,
        "exit_codes": codes,
        "locked": text.count("database is locked"),
        "overhead_median": statistics.median(overheads),
        "overhead_p90": statistics.quantiles(overheads, n=10)[-1],
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=4, help="sweeps at once, two slots each")
    ap.add_argument("--trials", type=int, default=6, help="trials per sweep")
    ap.add_argument("--stores", nargs="+", default=["sqlite", "postgres", "server"])
    args = ap.parse_args()
    if set(args.stores) - {"sqlite"} and (missing := services.postgres_missing()):
        raise SystemExit(missing)
    rows = [bench(kind, args.sweeps, args.trials) for kind in args.stores]
    print(
        "| store | started | completed | failed | child runs | lost | duplicated | 'database is locked' "
        "| overhead median (s) | overhead p90 (s) | wall (s) | exit codes |"
    )
    print("|---|" + "---:|" * 10 + "---|")
    for r in rows:
        print(
            f"| {r['store']} | {r['started']} | {r['completed']} | {r['failed']} | {r['runs']} | {r['lost']} "
            f"| {r['duplicated']} | {r['locked']} | {r['overhead_median']:.3f} | {r['overhead_p90']:.3f} "
            f"| {r['wall_s']:.1f} | {' '.join(map(str, r['exit_codes']))} |"
        )


if __name__ == "__main__":
    main()
