"""Which failed attempts of a trial are transient (run the trial again), and the record of each earlier attempt.

Transient, and so retried up to ``hydra.sweeper.max_retries`` times:

* the trial's process was killed by a signal that is not its own fault (SIGKILL or SIGTERM from outside, the
  machine's OOM killer, a node going away), i.e. any signal but :data:`OWN_FAULTS`;
* a lost worker: a launcher says the process running the trial died (:data:`LOST_WORKER`, by exception name);
* a timeout, only with ``hydra.sweeper.retry_timeouts=true``.

Never retried: an exception from the trial's code, a NaN or non-number objective, a segfault or abort of the
trial itself, an exit without a result, the trial's memory limit (it would fail the same way again).

A retried trial keeps its number and parameters and gets a new attempt number and job number; the search algorithm
sees the trial as pending until its last attempt ends, and never sees a failed attempt's loss. Each earlier attempt
is kept in the trial's ``history`` (:func:`attempt_record`): the trials table has a row per attempt and MLflow a run
per attempt (tag ``qframe.attempt``, from :data:`qframe.core.context.ATTEMPT_ENV`).
"""

from __future__ import annotations

import signal
from typing import Any

from qframe.tuning.settings import SweepSettings
from qframe.tuning.state import Trial

#: signals that are the trial's own doing: running it again fails again
OWN_FAULTS = frozenset(
    int(s) for s in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT, signal.SIGSYS)
)
#: exception names by which launchers report a worker process (or node) lost while it ran a job
LOST_WORKER = (
    "TerminatedWorkerError",  # joblib/loky
    "BrokenProcessPool",  # concurrent.futures
    "WorkerCrashedError",  # ray
    "NodeDiedError",  # ray
    "RayActorError",  # ray
    "WorkerLostError",  # celery
)


def transient(finished: Any, settings: SweepSettings) -> bool:
    """Whether a failed job (a ``Finished`` of the fork launcher, or one built from a batch's ``JobReturn``) failed
    for a transient reason under ``settings``."""
    kind = getattr(finished, "kind", "exception")
    if kind == "signal":
        return finished.signum is not None and int(finished.signum) not in OWN_FAULTS
    if kind == "timeout":
        return bool(settings.retry_timeouts)
    if kind in ("exception", "lost"):
        error = finished.error or ""
        return any(error.startswith(name) or f".{name}" in error.split(":", 1)[0] for name in LOST_WORKER)
    return False  # "exit", "memory", a NaN objective (an "ok" job)


def may_retry(trial: Trial, finished: Any, settings: SweepSettings) -> bool:
    """Whether ``trial``'s attempt that ended as ``finished`` is run again: transient, and retries are left."""
    if finished.ok or not transient(finished, settings):
        return False
    return sum(1 for a in trial.history if a["status"] == "retried") < int(settings.max_retries)


def attempt_record(
    trial: Trial, error: str, ended: float | None, working_dir: str | None, status: str = "retried"
) -> dict[str, Any]:
    """What the trial's history keeps of its attempt that just ended: transiently (``retried``), or with the sweep
    (``interrupted``, found by a resumed sweep)."""
    return {
        "attempt": trial.attempts,
        "job": trial.job,
        "status": status,
        "error": error,
        "started": trial.started,
        "ended": ended,
        "working_dir": working_dir,
    }
