"""Built-in task generators of ``trainer=rolling``: ``rolling`` (sliding or expanding walk-forward windows)."""

from __future__ import annotations

from qframe.core.hookspecs import hookimpl
from qframe.core.lazy import lazy


@hookimpl
def register_task_generators(register):
    register(
        "rolling",
        lazy("qframe.core.windows:rolling_windows"),
        "Walk-forward windows: refit every step days, sliding or expanding train",
    )
