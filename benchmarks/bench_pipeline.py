"""What a tuning pipeline (``hydra.sweeper.stages``, docs/sweeps.md "Pipelines") costs on the default market
(synthetic, 300 x 2500, Alpha158): the wall time of each stage (its first trial's start to its last trial's end, from
the stage's ``sweep_state.json``) and of the whole command.

* ``--strategy`` (the default): a one-trial ridge stage, then a strategy stage of ``--trials`` (100) trials that
  re-evaluates the ridge trial's predictions (``from_run``, no fit): the target is <= 60 s for 100 trials at
  ``n_jobs=1``;
* ``--shipped``: ``qframe -m tuner=pipeline`` as shipped (LightGBM 20 trials, MLP 5, strategy 50) at ``n_jobs`` 1 and
  2 (long: the LightGBM and MLP fits on the full market).

    python benchmarks/bench_pipeline.py [--strategy | --shipped] [--trials 100] [--jobs 1 2]
    python benchmarks/bench_pipeline.py --shipped --stage-trials lightgbm=4 mlp=2 strategy=20 -- dataset.n_days=1000

Overrides after ``--`` reach every run (a smaller market, say).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

STRATEGY_PIPELINE = (
    'hydra.sweeper.stages={{ridge:{{overrides:["model=linear"],params:{{model.alpha:"choice(0.1, 1.0)"}},n_trials:1}},'
    "strategy:{{from:ridge,spaces:[strategy],n_trials:{trials}}}}}"
)


def stage_times(sweep_dir: Path) -> dict[str, tuple[int, float]]:
    """{stage: (trials, wall seconds from its first start to its last end)}."""
    doc = yaml.safe_load((sweep_dir / "pipeline_results.yaml").read_text())
    out = {}
    for name in doc["order"]:
        trials = json.loads((sweep_dir / name / "sweep_state.json").read_text())["trials"]
        started = [t["started"] for t in trials if t["started"]]
        ended = [t["ended"] for t in trials if t["ended"]]
        out[name] = (len(trials), max(ended) - min(started))
    return out


def run(args: list[str], workdir: Path, label: str) -> None:
    sweep_dir = workdir / f"sweep-{label}"
    shutil.rmtree(sweep_dir, ignore_errors=True)  # a finished one there would only be reported, not run
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    argv = [sys.executable, "-m", "qframe", "-m", *args, f"hydra.sweep.dir={sweep_dir}", f"workdir={workdir}"]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{label}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    print(f"{label}: total {wall:.1f} s (the command, process start and data preparation included)")
    for name, (trials, seconds) in stage_times(sweep_dir).items():
        print(f"  stage {name}: {trials} trials in {seconds:.1f} s ({seconds / trials:.2f} s a trial)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--strategy", action="store_true", help="a ridge stage, then a re-evaluating strategy stage")
    mode.add_argument("--shipped", action="store_true", help="conf/tuner/pipeline.yaml as shipped")
    parser.add_argument("--trials", type=int, default=100, help="trials of the strategy stage (--strategy)")
    parser.add_argument("--jobs", type=int, nargs="+", default=None, help="n_jobs values (default: 1; --shipped 1 2)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temporary dir)")
    parser.add_argument("--stage-trials", nargs="+", default=[], metavar="STAGE=N", help="--shipped: fewer trials")
    parser.add_argument("overrides", nargs="*", help="overrides for every run (after --)")
    args = parser.parse_args()
    extra = [f"hydra.sweeper.stages.{item.split('=')[0]}.n_trials={item.split('=')[1]}" for item in args.stage_trials]
    extra += args.overrides
    jobs = args.jobs or ([1, 2] if args.shipped else [1])
    with tempfile.TemporaryDirectory(prefix="qframe-bench-pipeline-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for n in jobs:
            if args.shipped:
                run(["tuner=pipeline", f"hydra.sweeper.n_jobs={n}", *extra], workdir, f"shipped-n_jobs{n}")
            else:
                stages = STRATEGY_PIPELINE.format(trials=args.trials)
                common = ["hydra/sweeper=hyperopt", "hydra/launcher=qframe", stages, f"hydra.sweeper.n_jobs={n}"]
                common += extra
                run(common, workdir, f"strategy-{args.trials}-n_jobs{n}")


if __name__ == "__main__":
    main()
