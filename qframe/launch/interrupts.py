"""SIGTERM and SIGINT in the sweep process (qframe's sweeper, or a grid on the fork launcher): both stop it the same
orderly way.

Each raises :class:`SweepInterrupted` (a ``KeyboardInterrupt``, so every ``except KeyboardInterrupt`` cleanup runs:
trials killed, their runs and the parent run KILLED, the state saved); the sweep then exits with one line and the
signal's status (130 for SIGINT, 143 for SIGTERM). A second signal during that cleanup is ignored, so the cleanup
finishes.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SweepInterrupted(KeyboardInterrupt):
    """The sweep process got ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """While inside: SIGINT and SIGTERM raise :class:`SweepInterrupted` (once; repeats are ignored)."""
    fired = False

    def interrupt(signum: int, _frame: Any) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise SweepInterrupted(signum)

    previous = {signum: signal.signal(signum, interrupt) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
