"""Rolling retraining against a single run: framework cost per window, peak RSS, windows per minute at 1 and 2 slots.

``python benchmarks/bench_rolling.py [overrides...]`` (``trainer.*`` ones go to the studies only) runs, in one fresh
work directory, each in its own process: a single run (warms the market and feature caches, then once more warm),
a rolling study with ``trainer.slots=1`` and one with ``trainer.slots=2`` (``trainer.step=60``; the default market
and LightGBM unless overridden). It prints each run's stage times, the sum of the windows' own fit + predict, the
framework's cost per window beyond them, peak RSS (the run's process
and its largest window job) and windows per minute.

Framework cost per window = (rolling run's wall − Σ windows' fit + predict − (single run's wall − its fit + predict))
/ windows: what a window costs besides its model, over a single run's fixed cost (data, features, evaluation).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from qframe.app import conf_dir
from qframe.core.workflow import run_workflow

with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
    cfg = OmegaConf.to_container(compose("config", sys.argv[1:]), resolve=True)
t0 = time.perf_counter()
result = run_workflow(cfg)
wall = time.perf_counter() - t0
out = {"wall": wall, "timings": result.timings, "objective": result.objective,
       "rss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
       "rss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
table = Path(result.artifact_uri.removeprefix("file://")) / "windows.csv"
if table.exists():
    t = pd.read_csv(table)
    out["windows"] = len(t)
    out["model_seconds"] = float((t["fit_seconds"] + t["predict_seconds"]).sum())
else:
    out["model_seconds"] = result.timings.get("fit", 0) + result.timings.get("predict", 0)
print("RESULT " + json.dumps(out))
"""


def run(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    # trainer.* overrides go to the rolling studies only (a single run has no such keys)
    extra = [a for a in sys.argv[1:] if not a.startswith("trainer.")]
    studies = [a for a in sys.argv[1:] if a.startswith("trainer.")]
    workdir = Path(tempfile.mkdtemp(prefix="bench-rolling-")) / ".qframe"
    base = [f"workdir={workdir}", "evaluation.controls.enabled=false", *extra]
    run(base)  # cold: market generated, features computed and cached
    single = run(base)
    rolling = {}
    for slots in (1, 2):
        # slots do not change a window's predictions, so a study would resume from the other's kept windows
        shutil.rmtree(workdir / "cache" / "rolling", ignore_errors=True)
        rolling[slots] = run([*base, "trainer=rolling", "trainer.step=60", *studies, f"trainer.slots={slots}"])
    fixed = single["wall"] - single["model_seconds"]
    stages = {k: round(v, 2) for k, v in single["timings"].items()}
    print(
        f"single run (warm): wall {single['wall']:.2f} s, fit + predict {single['model_seconds']:.2f} s, "
        f"peak RSS {single['rss_self_mb']:.0f} MB; stages {json.dumps(stages)}"
    )
    for slots, r in rolling.items():
        n = r["windows"]
        cost = (r["wall"] - r["model_seconds"] - fixed) / n
        peak = max(r["rss_self_mb"], r["rss_children_mb"])
        per_min = n / (r["timings"]["fit"] / 60)
        print(
            f"rolling, {slots} slot(s): {n} windows, wall {r['wall']:.2f} s, windows' fit + predict "
            f"{r['model_seconds']:.2f} s, framework cost {cost:.2f} s/window, "
            f"windows stage {r['timings']['fit']:.2f} s "
            f"({per_min:.1f} windows/min), peak RSS {r['rss_self_mb']:.0f} MB (run) / {r['rss_children_mb']:.0f} MB "
            f"(largest window job) = {peak / single['rss_self_mb']:.2f}x the single run; objective {r['objective']:.4f}"
        )
    speed = (rolling[2]["windows"] / rolling[2]["timings"]["fit"]) / (
        rolling[1]["windows"] / rolling[1]["timings"]["fit"]
    )
    print(f"2 slots vs 1: {speed:.2f}x windows per minute")


if __name__ == "__main__":
    main()
