"""The durable state of a sweep: every trial with its params, result, status and job number.

Written after every finished trial by atomic replace (write a temporary file, fsync, rename), so a sweep killed at
any moment leaves either the previous or the new state, never a torn file. A resumed sweep reads it back.

A running sweep holds a lock on ``.sweep.lock`` in its directory (``flock``: the kernel releases it when the
process dies, ``kill -9`` included), so that a resume never continues a sweep that is still running elsewhere. The
file names its owner (PID, host, since when) for the one line another process gets; a lock whose owner died is free,
and the next sweep takes it over. Each running trial records its owner too (:class:`Trial` ``owner``): the sweep's
PID and host, the trial process's PID and kernel start time, so that a resumed sweep can tell whether the process of
an interrupted trial still lives.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qframe.core.atomic import atomic_path
from qframe.core.errors import ConfigError

STATE_FILE = "sweep_state.json"
LOCK_FILE = ".sweep.lock"
FORMAT = 1


@dataclass
class Trial:
    """One trial of the sweep."""

    number: int
    job: int
    status: str  # "running", "complete", "failed"
    params: dict[str, Any]
    vals: dict[str, list]  # hyperopt's raw values (choice indices), to rebuild its Trials on resume
    value: float | None = None
    error: str | None = None
    started: float | None = None
    ended: float | None = None
    attempts: int = 1
    working_dir: str | None = None
    owner: dict[str, Any] | None = None  # while running: {host, sweep_pid, pid, pid_started, since} (None: unknown)
    # its earlier attempts (qframe.tuning.retries): {attempt, job, status ("retried", "interrupted"), error, started,
    # ended, working_dir}, oldest first
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        return None if self.started is None or self.ended is None else self.ended - self.started


@dataclass
class SweepState:
    """Everything needed to resume a sweep and to report on it."""

    signature: str
    space: dict[str, str]
    fixed: list[str]
    settings: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)
    parent_run_id: str | None = None
    format: int = FORMAT

    def counts(self) -> dict[str, int]:
        out = {"complete": 0, "failed": 0, "running": 0}
        for t in self.trials:
            out[t.status] = out.get(t.status, 0) + 1
        return out

    def next_job(self) -> int:
        return max((t.job for t in self.trials), default=-1) + 1

    def save(self, path: Path) -> None:
        """Write atomically: the file on disk is always a complete state."""
        with atomic_path(path, durable=True) as tmp:
            tmp.write_text(json.dumps(asdict(self), indent=1, default=_json_default))

    @classmethod
    def load(cls, path: Path) -> SweepState:
        try:
            doc = json.loads(path.read_text())
            trials = [Trial(**t) for t in doc.pop("trials")]
            return cls(trials=trials, **doc)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"cannot resume from {path}: the sweep state is unreadable ({exc})") from None


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


class SweepLock:
    """The running sweep's lock on its directory; children forked for trials close their copy of it."""

    _held: list[int] = []  # descriptors this process holds locks through (closed in forked children)
    _hooked = False

    def __init__(self, sweep_dir: Path) -> None:
        import fcntl

        path = sweep_dir / LOCK_FILE
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise ConfigError(running_elsewhere(sweep_dir)) from None
        # ours now; a previous owner's record (a dead process: the kernel freed its lock) is replaced
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(_owner_record()).encode(), 0)
        SweepLock._held.append(self.fd)
        if not SweepLock._hooked:
            SweepLock._hooked = True
            # a trial's child must not keep the lock alive after the sweep process died
            os.register_at_fork(after_in_child=SweepLock._close_in_child)

    def release(self) -> None:
        if self.fd in SweepLock._held:
            SweepLock._held.remove(self.fd)
            os.close(self.fd)  # closing the last descriptor of the lock releases it

    @staticmethod
    def _close_in_child() -> None:
        for fd in SweepLock._held:
            try:
                os.close(fd)  # not LOCK_UN: that would release the parent's lock too
            except OSError:
                pass
        SweepLock._held = []


def _owner_record() -> dict[str, Any]:
    from qframe.launch.lifecycle import host

    return {"pid": os.getpid(), "host": host(), "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def running_elsewhere(sweep_dir: Path) -> str:
    """The one line for a sweep dir another process's sweep holds: who holds it, since when, what to do."""
    who = "owner unknown"
    # the holder writes its record just after taking the lock: a reader between the two sees an empty file
    deadline = time.monotonic() + 2.0
    while True:
        try:
            owner = json.loads((sweep_dir / LOCK_FILE).read_text())
            who = f"PID {owner['pid']} on {owner['host']}, since {owner['since']}"
            break
        except (OSError, ValueError, TypeError, KeyError):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
    return (
        f"the sweep in {sweep_dir} is running in another process ({who}); wait for it to end or stop it, "
        "or give this sweep another hydra.sweep.dir"
    )


def is_running(sweep_dir: Path) -> bool:
    """Whether a sweep process holds the lock of ``sweep_dir`` now (a read-only probe: nothing is written)."""
    import fcntl

    path = sweep_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # releases the probe's own lock, if it got one
    return False
