"""A recorder that appends one JSON line per finished run to a file."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any


class JsonlRecorder:
    """Appends ``{time, run_id, model, objective_name, objective, metrics, tracking_uri}`` as one line to ``path``.

    ``path`` defaults to ``<workdir>/runs.jsonl``; a relative path is taken from the current directory.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path

    def __call__(self, result: Any, cfg: dict[str, Any]) -> None:
        path = Path(self.path) if self.path else Path(cfg.get("workdir") or ".qframe") / "runs.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "run_id": result.run_id,
            "model": (cfg.get("model") or {}).get("name"),
            "objective_name": result.objective_name,
            "objective": _number(result.objective),
            "metrics": {k: _number(v) for k, v in result.metrics.items()},
            "tracking_uri": result.tracking_uri,
        }
        with path.open("a", encoding="utf-8") as f:  # one write of one line: appends from parallel runs stay whole
            f.write(json.dumps(line) + "\n")


def _number(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None  # JSON has no NaN
