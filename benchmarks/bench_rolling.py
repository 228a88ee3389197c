"""Rolling retraining against a single run: framework cost per window, peak RSS, windows per minute at 1 and 2 slots.

``python benchmarks/bench_rolling.py [--compare-with DIR] [overrides...]`` (``trainer.*`` ones go to the studies
only) runs, in one fresh work directory, each in its own process: a single run (warms the market and feature caches,
then once more warm), a rolling study with ``trainer.slots=1`` and one with ``trainer.slots=2`` (``trainer.step=60``;
the default market and LightGBM unless overridden). It prints each run's stage times, the sum of the windows' own
fit + predict, the framework's cost per window beyond them, peak RSS (the run's process and its largest window job)
and windows per minute. ``--compare-with DIR``: a 1-slot study of another version of qframe too (``DIR`` holds its
``qframe`` package, e.g. ``git archive <commit> | tar -x -C DIR``), run just before this version's, same caches.

Framework cost per window = (rolling run's wall − Σ windows' fit + predict − (single run's wall − its fit + predict))
/ windows: what a window costs besides its model, over a single run's fixed cost (data, features, evaluation). Also
measured inside the study (its windows stage and window records, less the windows' fit + predict) when the study
reports its ``windows record`` time.

The hardware ceiling (before and after the runs): the same pure-CPU work (1-thread LightGBM fits; a numpy loop) done
twice by 1 process and once each by 2 processes at once: the most 2 slots can give on this machine's cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hardware import CEILING_TASKS, print_ceiling  # benchmarks/hardware.py, next to this script

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
    if "prepare_seconds" in t:
        out["prepare_seconds"] = float(t["prepare_seconds"].sum())
else:
    out["model_seconds"] = result.timings.get("fit", 0) + result.timings.get("predict", 0)
print("RESULT " + json.dumps(out))
"""


def run(args: list[str], qframe_path: str | None = None) -> dict:
    """One run in a fresh process; ``qframe_path``: another checkout's qframe (its directory first on the path)."""
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
    if qframe_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [qframe_path, env.get("PYTHONPATH")]))
    # run from a neutral directory: `python -c` puts its working directory first on the path, before PYTHONPATH
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env, cwd=tempfile.gettempdir()
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


# ---------------------------------------------------------------------------------------------------------------------
def framework_cost(r: dict, fixed: float) -> tuple[float, float | None]:
    """(per window from the walls: beyond the windows' fit + predict and the single run's fixed cost; per window
    measured inside the study: its windows stage and window records beyond the windows' fit + predict)."""
    n = r["windows"]
    by_walls = (r["wall"] - r["model_seconds"] - fixed) / n
    record = r["timings"].get("windows record")
    inside = None if record is None else (r["timings"]["fit"] + record - r["model_seconds"]) / n
    return by_walls, inside


def main() -> None:
    args = sys.argv[1:]
    before = None
    if "--compare-with" in args:
        i = args.index("--compare-with")
        before = args[i + 1]
        del args[i : i + 2]
    # trainer.* overrides go to the rolling studies only (a single run has no such keys)
    extra = [a for a in args if not a.startswith("trainer.")]
    studies = [a for a in args if a.startswith("trainer.")]
    workdir = Path(tempfile.mkdtemp(prefix="bench-rolling-")) / ".qframe"
    base = [f"workdir={workdir}", "evaluation.controls.enabled=false", *extra]
    print(f"load average at start: {os.getloadavg()}")
    ceilings = [print_ceiling("before the runs")]
    run(base)  # cold: market generated, features computed and cached
    single = run(base)
    study = [*base, "trainer=rolling", "trainer.step=60", *studies]
    rolling = {}
    compared = None
    for slots in (1, 2):
        if before and slots == 1:
            # slots do not change a window's predictions, so a study would resume from the other's kept windows
            shutil.rmtree(workdir / "cache" / "rolling", ignore_errors=True)
            compared = run([*study, "trainer.slots=1"], qframe_path=before)
        shutil.rmtree(workdir / "cache" / "rolling", ignore_errors=True)
        rolling[slots] = run([*study, f"trainer.slots={slots}"])
    ceilings.append(print_ceiling("after the runs"))
    print(f"load average at the end: {os.getloadavg()}")
    fixed = single["wall"] - single["model_seconds"]
    stages = {k: round(v, 2) for k, v in single["timings"].items()}
    print(
        f"single run (warm): wall {single['wall']:.2f} s, fit + predict {single['model_seconds']:.2f} s, "
        f"peak RSS {single['rss_self_mb']:.0f} MB; stages {json.dumps(stages)}"
    )
    labelled = [(f"rolling, {slots} slot(s)", r) for slots, r in rolling.items()]
    if compared is not None:
        labelled.insert(0, (f"rolling, 1 slot, {before}", compared))
    for label, r in labelled:
        n = r["windows"]
        by_walls, inside = framework_cost(r, fixed)
        peak = max(r["rss_self_mb"], r["rss_children_mb"])
        per_min = n / (r["timings"]["fit"] / 60)
        measured = "" if inside is None or r is not rolling.get(1) else f" ({inside:.2f} s/window inside the study"
        if measured and "prepare_seconds" in r:
            measured += f", of which {r['prepare_seconds'] / n:.2f} s the window's preparation before its fit"
        measured += ")" if measured else ""
        print(
            f"{label}: {n} windows, wall {r['wall']:.2f} s, windows' fit + predict "
            f"{r['model_seconds']:.2f} s, framework cost {by_walls:.2f} s/window{measured}, "
            f"windows stage {r['timings']['fit']:.2f} s "
            f"({per_min:.1f} windows/min), peak RSS {r['rss_self_mb']:.0f} MB (run) / {r['rss_children_mb']:.0f} MB "
            f"(largest window job) = {peak / single['rss_self_mb']:.2f}x the single run; objective {r['objective']:.4f}"
        )
    speed = (rolling[2]["windows"] / rolling[2]["timings"]["fit"]) / (
        rolling[1]["windows"] / rolling[1]["timings"]["fit"]
    )
    most = ", ".join(
        f"{task} {min(c[task] for c in ceilings):.2f}-{max(c[task] for c in ceilings):.2f}x" for task in CEILING_TASKS
    )
    print(f"2 slots vs 1: {speed:.2f}x windows per minute; what 2 processes give at most here: {most}")


if __name__ == "__main__":
    main()
