"""Trial resources: what a memory limit per trial costs, and how fast a trial over it fails.

Runs the sweeper tests' toy app (``tests/sweep_toy``: no data, a known objective) as a real sweep, 16 trials at
2 at a time, three ways: no limit (``trial_memory=null``), the default (``auto``), and 200 MB with a trial that
writes 300 MB. Prints each sweep's wall time, its time per trial and the peak RSS of its processes, and which
mechanism enforced the limit (cgroup v2 or the address-space limit). With GPUs (``--gpus``), a sweep with
``trial_gpus=1`` on every device, and the devices each job saw.

    python benchmarks/bench_limits.py [--gpus]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "tests" / "sweep_toy" / "toy_app.py"


def sweep(tmp: Path, name: str, *args: str, jobs: int = 2) -> tuple[float, str, Path]:
    """Run one toy sweep; (wall seconds, its stdout, its job log)."""
    log = tmp / f"{name}.log"
    argv = [sys.executable, str(TOY), "-m", f"hydra.sweep.dir={tmp / name}", f"log={log}",
            "hydra.launcher.preload=false", "hydra.sweeper.n_trials=16", f"hydra.sweeper.n_jobs={jobs}",
            "hydra.sweeper.max_failure_rate=1", *args]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("QFRAME_")}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    return wall, proc.stdout, log


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gpus", action="store_true", help="also run trial_gpus=1 on every visible device")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"{'sweep':<34} {'wall s':>7} {'s/trial':>8} {'peak RSS MB':>12}")
        for name, args in [
            ("no limit", ["hydra.sweeper.trial_memory=null"]),
            ("default limit (auto)", []),
            ("200 MB, trial 0 writes 300 MB", ["hydra.sweeper.trial_memory=200MB", "failures=[alloc]", "alloc_mb=300"]),
        ]:
            wall, out, _ = sweep(tmp, re.sub(r"\W+", "_", name), *args)
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(f"{name:<34} {wall:7.2f} {wall / 16:8.3f} {peak:12.0f}")
            for line in out.splitlines():
                if "may use up to" in line or "memory limit exceeded" in line:
                    print(f"    {line.strip()[:160]}")
        if opts.gpus:
            from qframe.launch.devices import visible_devices

            devices = visible_devices()
            n = len(devices)
            wall, out, log = sweep(tmp, "gpus", "hydra.sweeper.trial_gpus=1", "sleep=0.5", jobs=n)
            seen = [line.split()[3] for line in log.read_text().splitlines() if line.startswith("pid ")]
            print(f"trial_gpus=1 on {n} GPUs ({','.join(devices)}): {wall:.2f} s; devices the jobs saw: {seen}")


if __name__ == "__main__":
    main()
