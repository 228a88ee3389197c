"""``trial_timeout`` for launchers that cannot kill a job (basic, joblib, Ray): the job interrupts itself.

qframe's fork launcher kills an overdue child from outside; no other launcher has a per-job timeout. There the task
function is wrapped: a ``SIGALRM`` timer raises :class:`TrialTimeout` in the job's main thread, which Hydra's
``run_job`` records as the job's failure, so the sweep goes on. It interrupts Python code (LightGBM's boosting loop
returns to Python every round), not a single C call that never returns.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


class TrialTimeout(Exception):
    """The trial ran longer than ``hydra.sweeper.trial_timeout``."""


class TimedTask:
    """A Hydra task function that raises :class:`TrialTimeout` after ``seconds`` (picklable for remote launchers)."""

    def __init__(self, task_function: Any, seconds: float) -> None:
        self.task_function = task_function
        self.seconds = float(seconds)

    def __call__(self, cfg: Any) -> Any:
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
            return self.task_function(cfg)  # no alarm outside the main thread: run without a limit

        def expire(signum: int, frame: Any) -> None:
            raise TrialTimeout(f"timed out after {self.seconds:g} s (interrupted)")

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        try:
            return self.task_function(cfg)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
