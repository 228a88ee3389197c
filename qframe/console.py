"""The live stage display of a ``qframe`` run in a terminal (rich), on stderr.

While a stage runs it shows a spinner, the stage, what it is doing (boosting round 120/1000, valid l2 0.998) and
its time; when it ends it collapses to one line: ``✓ features   3.1 s  computed: 370,000 rows x 158``. Nothing is
shown when stderr is not a terminal (a log file, a pipe, a sweep's trial): the summary's timing line says it all.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from qframe.core.progress import Progress as RunProgress
from qframe.core.progress import StageTime, format_seconds


class _BarWhenCounted(ProgressColumn):
    """A bar only for stages that know how far they are (fit rounds, epochs)."""

    def __init__(self) -> None:
        super().__init__()
        self.bar = BarColumn(bar_width=24)

    def render(self, task) -> Text:
        return self.bar.render(task) if task.total is not None else Text("")


class TerminalProgress(RunProgress):
    """Stages shown live on a terminal; each collapses to a timing line when done."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__()
        self.console = console or Console(stderr=True, highlight=False)
        self.display = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<11}"),
            _BarWhenCounted(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task = None
        self._last_refresh = 0.0
        self._started = False

    def start(self, name: str, detail: str = "") -> None:
        super().start(name, detail)
        if not self._started:
            self.display.start()
            self._started = True
        self._task = self.display.add_task(name, total=None, detail=detail)

    def update(self, detail: str | None = None, completed: float | None = None, total: float | None = None) -> None:
        super().update(detail, completed, total)
        if self._task is None:
            return
        now = time.perf_counter()
        if now - self._last_refresh < 0.1 and (total is None or completed != total):
            return  # a callback per boosting round: ten updates a second are plenty
        self._last_refresh = now
        fields = {} if detail is None else {"detail": detail}
        self.display.update(self._task, completed=completed, total=total, **fields)

    def finish(self, detail: str | None = None, tag: str = "") -> StageTime | None:
        stage = super().finish(detail, tag)
        if self._task is not None:
            self.display.remove_task(self._task)
            self._task = None
        if stage is not None:
            line = f"[green]✓[/] {stage.name:<11} {format_seconds(stage.seconds):>9}"
            self.display.console.print(line + (f"  {stage.detail}" if stage.detail else ""), highlight=False)
        return stage

    def note(self, text: str) -> None:
        self.display.console.print(f"[yellow]note:[/] {text}", highlight=False)

    def close(self) -> None:
        super().close()
        if self._started:
            self.display.stop()
            self._started = False


def progress_for_terminal(enabled: bool = True) -> RunProgress:
    """The live display when stderr is a terminal (and ``enabled``), else the silent recorder."""
    if enabled and sys.stderr.isatty():
        return TerminalProgress()
    return RunProgress()
