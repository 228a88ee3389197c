"""A research log: one CSV row per finished run, for a spreadsheet or ``pandas.read_csv``."""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from qframe.core.components import component_name
from qframe.core.workflow import metric_names


class CsvLogRecorder:
    """Appends ``time, run_id, experiment, run_name, dataset, model, strategy, objective_name, objective`` and every
    metric to ``path`` (default ``<workdir>/runs.csv``; a relative path starts at the current directory).

    The columns are fixed, so rows of different runs line up; the header is written with the first row, and a log
    begun with other columns (an older qframe's) keeps them. Appends from the parallel trials of a sweep are
    serialised by a file lock.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path

    def columns(self) -> list[str]:
        return ["time", "run_id", "experiment", "run_name", "dataset", "model", "strategy", "objective_name",
                "objective", *metric_names()]  # fmt: skip

    def __call__(self, result: Any, cfg: dict[str, Any]) -> None:
        path = Path(self.path).expanduser() if self.path else Path(cfg.get("workdir") or ".qframe") / "runs.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        row = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "run_id": result.run_id,
            "experiment": cfg.get("experiment_name"),
            "run_name": cfg.get("run_name"),
            "dataset": component_name(cfg.get("dataset")),
            "model": component_name(cfg.get("model")),
            "strategy": component_name(cfg.get("strategy")),
            "objective_name": result.objective_name,
            "objective": _cell(result.objective),
            **{k: _cell(v) for k, v in result.metrics.items()},
        }
        buffer = io.StringIO()
        with FileLock(str(path) + ".lock"):
            header = _header(path)
            # a log begun by an older qframe keeps its columns: rows line up with its header, new metrics left out
            writer = csv.DictWriter(buffer, fieldnames=header or self.columns(), extrasaction="ignore")
            if header is None:
                writer.writeheader()
            writer.writerow(row)
            with path.open("a", encoding="utf-8", newline="") as f:
                f.write(buffer.getvalue())


def _header(path: Path) -> list[str] | None:
    """The columns of the log at ``path``; None when there is none yet."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open(encoding="utf-8", newline="") as f:
        return next(csv.reader(f), None) or None


def _cell(value: float) -> str:
    return "" if not math.isfinite(value) else repr(float(value))
