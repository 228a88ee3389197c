"""Benchmark: ``qframe runs`` on a store of 2,000 runs (targets: listing, ``--filter``, ``leaderboard`` <= 2 s each
as commands; ``store.search`` of every run <= 1 s in process).

The store is made cheaply with MLflow's client: each run gets the params, metrics and tags of a real qframe run
(the ~110 flattened config keys of the default config, its 32 metrics, its tags) in one ``log_batch``, with five
models and random metrics, 10% of them trials nested under 20 sweep parents.

    .venv/bin/python benchmarks/bench_runs.py                 # 2,000 runs
    .venv/bin/python benchmarks/bench_runs.py --runs 500 --repeat 5
    .venv/bin/python benchmarks/bench_runs.py --store /tmp/runs-2000   # make the store once, reuse it after
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("lightgbm", "linear", "mlp", "gru", "alstm")


def make_store(workdir: Path, n_runs: int) -> None:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from qframe.core import tracking
    from qframe.core.workflow import metric_names

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    experiment_id = tracking.ensure_experiment(uri, "qframe", workdir / "artifacts")
    client = MlflowClient(uri)
    import yaml

    cfg = yaml.safe_load((ROOT / "conf" / "config.yaml").read_text())
    options = {"dataset": "synthetic", "handler": "alpha158", "strategy": "topk_dropout", "model": "lightgbm"}
    for group, option in options.items():
        cfg[group] = yaml.safe_load((ROOT / "conf" / group / f"{option}.yaml").read_text())
    cfg.pop("defaults", None)
    cfg.pop("hydra", None)
    base = tracking.flatten(cfg)
    rng = np.random.default_rng(0)
    source = tracking.source_tags()
    parents = [
        client.create_run(experiment_id, run_name=f"sweep {i}", tags={"qframe.kind": "sweep"}).info.run_id
        for i in range(20)
    ]
    now = int(time.time() * 1000)
    for i in range(n_runs):
        tags = dict(source)
        if i % 10 == 0:
            tags |= {"mlflow.parentRunId": parents[i % 20], "qframe.trial": str(i)}
        run = client.create_run(experiment_id, run_name=f"run-{i}", tags=tags, start_time=now - 1000 * (n_runs - i))
        params = {**base, "model.name": MODELS[i % 5], "strategy.topk": str(20 + i % 30)}
        metrics = [Metric(k, float(rng.normal(0.03, 0.02)), now, 0) for k in metric_names()]
        client.log_batch(
            run.info.run_id,
            metrics=metrics,
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag("qframe.overrides", f'["model={MODELS[i % 5]}"]')],
        )
        client.set_terminated(run.info.run_id, "FINISHED", end_time=now - 1000 * (n_runs - i) + 500)


def timed(command: list[str], repeat: int) -> tuple[float, str]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        assert proc.returncode == 0, proc.stderr
    return statistics.median(times), proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--store", type=Path, help="keep the store in this work directory (made there once, reused after)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qframe-bench-runs-") as tmp:
        workdir = args.store.resolve() if args.store else Path(tmp) / ".qframe"
        if (workdir / "mlflow.db").is_file():
            print(f"store reused: {workdir}")
        else:
            t0 = time.perf_counter()
            make_store(workdir, args.runs)
            print(f"store of {args.runs} runs (+20 sweep parents) made in {time.perf_counter() - t0:.1f} s")
        qframe = [str(Path(sys.executable).parent / "qframe"), "runs"]
        where = ["--workdir", str(workdir)]
        cases = {
            "qframe runs (50 newest)": [*qframe, *where],
            "qframe runs --filter 'metrics.IC > 0.03' --sort -metrics.IC": [
                *qframe,
                *where,
                "--filter",
                "metrics.IC > 0.03",
                "--sort=-metrics.IC",
            ],
            "qframe runs --limit 0 --csv (every run)": [*qframe, *where, "--limit", "0", "--csv"],
            "qframe runs leaderboard --by model.name (every run)": [*qframe, "leaderboard", *where],
            "qframe runs show last": [*qframe, "show", "last", *where],
            "python -c 'import qframe' (no MLflow import)": [sys.executable, "-c", "import qframe"],
        }
        print("| command | median s |\n|---|---:|")
        for name, command in cases.items():
            seconds, _ = timed(command, args.repeat)
            print(f"| `{name}` | {seconds:.2f} |")
        import qframe

        store = qframe.runs(workdir=workdir)
        store.search(limit=1)  # the client and its store opened once
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            frame = store.search(trials=True)
            times.append(time.perf_counter() - t0)
        print(
            f"| `store.search(trials=True)`: {len(frame)} rows x {frame.shape[1]} columns, in process | "
            f"{statistics.median(times):.2f} |"
        )


if __name__ == "__main__":
    main()
