"""A trial's lease: a file in its job directory that says the trial is alive, and then how it ended.

The sweep knows the process of a trial it forked on this host (:mod:`~qframe.tuning.owners`); a trial that a Ray or
Slurm launcher runs on another host is known only by what it writes. While it runs, the trial rewrites
``trial_lease.json`` every :data:`BEAT_SECONDS` (host, PID, time); when it ends it writes its outcome there. A sweep
resumed after its own process died reads the leases of the trials it had running:

* a lease that says *done* gives the trial's result: it is adopted, not run again (so a result that arrives late
  never makes a second run for the trial);
* a lease renewed less than :data:`STALE_AFTER` seconds ago means the trial still runs somewhere: the sweep refuses
  to resume (one line naming the host and PID) instead of retrying a trial that is running;
* no lease, or a stale one, or one of a process of this host that is gone: the attempt died, and the trial is retried.

The sweep directory must be shared with the hosts that run trials (as Hydra's Slurm launcher requires anyway); where
it is not, no lease reaches the sweep and an interrupted remote trial is retried.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from qframe.core.atomic import atomic_path

LEASE_FILE = "trial_lease.json"
#: seconds between two renewals of a running trial's lease
BEAT_SECONDS = 5.0
#: a lease not renewed for this long belongs to a trial whose process is gone
STALE_AFTER = 30.0


class TrialLease:
    """Held by a trial's process while it runs (a context manager); :meth:`finish` records the outcome."""

    def __init__(self, job_dir: Path, trial: int, job: int, interval: float = BEAT_SECONDS) -> None:
        from qframe.launch.lifecycle import host

        self.path = Path(job_dir) / LEASE_FILE
        self.record: dict[str, Any] = {"trial": trial, "job": job, "host": host(), "pid": os.getpid(), "done": False}
        self.interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> TrialLease:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write()
        self._thread = threading.Thread(target=self._renew, name="qframe-trial-lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if not self.record["done"]:
            error = f"{type(exc).__name__}: {exc}" if exc is not None else "the trial returned no result"
            self.finish(None, error)

    def finish(self, value: float | None, error: str | None = None) -> None:
        """Stop renewing and record how the trial ended: its objective ``value``, or ``error``."""
        self._stop.set()
        with self._lock:
            finite = value is not None and math.isfinite(value)
            self.record.update(done=True, value=float(value) if finite else None, error=error)
            if value is not None and not finite:
                self.record["error"] = error or f"the objective is {value}"
            self._write_locked()

    def _renew(self) -> None:
        while not self._stop.wait(self.interval):
            self._write()

    def _write(self) -> None:
        with self._lock:
            if not self._stop.is_set() or self.record["done"]:
                self._write_locked()

    def _write_locked(self) -> None:
        self.record["beat"] = time.time()
        try:
            with atomic_path(self.path) as tmp:
                tmp.write_text(json.dumps(self.record))
        except OSError:
            pass  # a lease that cannot be written makes an interrupted trial look dead: it is retried, no worse


def job_lease(environ: Mapping[str, str], multirun: bool) -> AbstractContextManager[TrialLease | None]:
    """The lease a Hydra job holds while it runs, when it is a qframe sweep's trial (its identity in ``environ``:
    :func:`qframe.core.context.trial_environment`); for any other job, nothing (``None``)."""
    from qframe.core.context import trial_identity

    identity = trial_identity(environ)
    if not (multirun and identity.in_sweep):
        return nullcontext()
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    return TrialLease(Path(hydra_cfg.runtime.output_dir), int(identity.number), int(hydra_cfg.job.num))


def read_leases(sweep_dir: Path) -> dict[int, dict[str, Any]]:
    """The leases found in the job directories of ``sweep_dir``, by job number (unreadable ones are skipped)."""
    found: dict[int, dict[str, Any]] = {}
    for path in Path(sweep_dir).glob(f"**/{LEASE_FILE}"):
        try:
            record = json.loads(path.read_text())
            found[int(record["job"])] = record
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return found


def is_fresh(lease: dict[str, Any], now: float | None = None) -> bool:
    """Whether ``lease``'s trial may still run: renewed lately, and (on this host) its process alive."""
    from qframe.launch.lifecycle import host, is_alive

    now = time.time() if now is None else now
    if lease.get("done") or now - float(lease.get("beat", 0.0)) > STALE_AFTER:
        return False
    if lease.get("host") == host():
        return is_alive(int(lease.get("pid", -1)))
    return True
