"""What a cold process pays in imports before any work: fresh interpreters, interleaved, median of N.

    python benchmarks/bench_imports.py [--repeat 5] [--run]

Each case runs in a new interpreter with ``-X importtime``: the wall time of the whole process and the sum of the
modules' own import times (what ``-X importtime`` prints, in seconds), with the libraries of interest and what they
cost. ``lightgbm (plain)`` vs ``lightgbm (qframe)`` is the A/B of importing it without its scikit-learn estimators
(qframe/plugins/models/lightgbm_import.py). ``--run`` adds a small LightGBM run (40 x 320 market, 30 rounds), its
first in the temporary directory (the store is created) and the later ones warm: a run's wall there is mostly its
imports, MLflow's set-up and the process's exit. The interpreter's ``python`` is the one timed: another checkout's
venv python running this script measures that checkout.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

SMALL_RUN = [
    "dataset.n_instruments=40",
    "dataset.n_days=320",
    "strategy.topk=5",
    "strategy.n_drop=1",
    "model=lightgbm_small",
    "model.num_boost_round=30",
]
CASES = {
    "import qframe.cli": ["-c", "import qframe.cli"],
    "qframe --help": ["-m", "qframe", "--help"],
    "qframe model=nosuch (error line)": ["-m", "qframe", "model=nosuch"],
    "lightgbm (plain)": ["-c", "import lightgbm"],
    "lightgbm (qframe)": ["-c", "from qframe.plugins.models.lightgbm import LightGBMModel"],
}
LIBRARIES = (
    "numpy",
    "pandas",
    "hydra",
    "lightgbm",
    "sklearn",
    "scipy",
    "mlflow",
    "sqlalchemy",
    "alembic",
    "fastapi",
    "git",
    "matplotlib",
    "torch",
)
LINE = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|( *)(\S+)")


#: exit status a case is expected to end with, when not 0
EXIT = {"qframe model=nosuch (error line)": 2}


def measure(args: list[str], cwd: str, expect: int = 0) -> tuple[float, float, dict[str, float]]:
    """(wall s, sum of self import times s, {library: its modules' self time s}) of one fresh process."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if proc.returncode != expect:
        raise SystemExit(f"{args} failed:\n{proc.stderr[-2000:]}")
    total, per = 0.0, dict.fromkeys(LIBRARIES, 0.0)
    for line in proc.stderr.splitlines():
        m = LINE.match(line)
        if m:
            seconds = int(m.group(1)) / 1e6
            total += seconds
            top = m.group(3).split(".", 1)[0]
            if top in per:
                per[top] += seconds
    return wall, total, per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--run", action="store_true", help="also a small LightGBM run")
    opts = parser.parse_args()
    cases = dict(CASES)
    if opts.run:
        cases["small run (lightgbm)"] = ["-m", "qframe", *SMALL_RUN]
    results: dict[str, list[tuple[float, float, dict[str, float]]]] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(opts.repeat):  # interleaved: a load change hits every case alike
            for name, args in cases.items():
                results[name].append(measure(args, cwd, EXIT.get(name, 0)))
    print(f"| case (median of {opts.repeat}) | wall s | imports s | " + " | ".join(LIBRARIES) + " |")
    print("|---|---:|---:|" + "---:|" * len(LIBRARIES))
    for name, rows in results.items():
        libs = [statistics.median(r[2][lib] for r in rows) for lib in LIBRARIES]
        print(
            f"| {name} | {statistics.median(r[0] for r in rows):.2f} | {statistics.median(r[1] for r in rows):.2f} | "
            + " | ".join(f"{v:.2f}" if v else "" for v in libs)
            + " |"
        )


if __name__ == "__main__":
    main()
