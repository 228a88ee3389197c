"""Stage-by-stage progress of a run, as the core reports it.

The core calls a :class:`Progress` it is given (``run_workflow(..., progress=...)``); this base class only keeps
the time and a short detail of each stage, which the end-of-run summary prints. A front end (the ``qframe``
command's terminal display, :mod:`qframe.console`) subclasses it to show the stages live.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class StageTime:
    """One finished stage: its name, how long it took, and what it did (e.g. "from the cache")."""

    name: str
    seconds: float
    detail: str = ""
    tag: str = ""  # the few words the end-of-run timing line keeps, e.g. "from the cache"


class Progress:
    """Receives the stages of a run; records them and shows nothing."""

    def __init__(self) -> None:
        self.stages: list[StageTime] = []
        self._current: tuple[str, float, str] | None = None

    def start(self, name: str, detail: str = "") -> None:
        """A stage begins (ending the previous one if it is still open)."""
        if self._current is not None:
            self.finish()
        self._current = (name, time.perf_counter(), detail)

    def update(self, detail: str | None = None, completed: float | None = None, total: float | None = None) -> None:
        """News from inside the current stage: a detail line, and how far it is (e.g. boosting round 120 of 1000)."""
        if self._current is not None and detail is not None:
            name, started, _ = self._current
            self._current = (name, started, detail)

    def finish(self, detail: str | None = None, tag: str = "") -> StageTime | None:
        """End the current stage; ``detail`` replaces what it says about itself, ``tag`` is kept for the summary."""
        if self._current is None:
            return None
        name, started, last = self._current
        self._current = None
        stage = StageTime(name, time.perf_counter() - started, last if detail is None else detail, tag)
        self.stages.append(stage)
        return stage

    def note(self, text: str) -> None:
        """Something the user should know now (the summary repeats the run's notes at the end)."""

    def close(self) -> None:
        """The run is over: stop any display."""
        if self._current is not None:
            self.finish()

    def summary(self) -> str:
        """``data 0.9 s, features 3.1 s (computed), ...``: one line for the end of a run."""
        parts = []
        for s in self.stages:
            parts.append(f"{s.name} {format_seconds(s.seconds)}" + (f" ({s.tag})" if s.tag else ""))
        return ", ".join(parts)


def format_seconds(seconds: float) -> str:
    """0.04 s, 3.1 s, 2 min 05 s."""
    if seconds < 0.1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"
