"""A forked job's lifetime is bounded by its parent's: process groups, the parent-death signal, identity checks.

Each job's child leads its own process group, so that killing the job (a timeout, the sweep stopping) kills what it
started too (``os.killpg``). When the sweep process dies (``kill -9`` included) the child kills its whole group, what
it started included: on Linux the kernel signals it at once (``PR_SET_PDEATHSIG``, :data:`DEATH_SIGNAL`, whose
handler kills the group at the child's next line of Python), and a watchdog thread in the child does the same within
0.2 s while its main thread is inside C code (a LightGBM fit, a sleep), where no Python handler runs. A child
therefore never outlives its sweep: it cannot log a result after the sweep is gone.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
#: what the kernel sends a job when its sweep dies: not SIGKILL, which would leave what the job started running
DEATH_SIGNAL = signal.SIGRTMIN + 1 if hasattr(signal, "SIGRTMIN") else signal.SIGTERM
#: the signals that stop a sweep; held back while it forks (see :func:`signals_held`)
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
#: set in each job's environment: what the job starts carries it, so that it can be found once the job has died
GROUP_ENV = "QFRAME_JOB_GROUP"


def bind_to_parent(parent_pid: int) -> None:
    """In a freshly forked child: lead a new process group and die with ``parent_pid``."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass  # the parent set it already (both do, whichever runs first)
    os.environ[GROUP_ENV] = group_marker(os.getpid(), start_time(os.getpid()))
    # the sweep's own signal handlers must not run here; SIGTERM (the sweep stopping in order) ends the job as
    # Ctrl-C would, so that what it records (its MLflow run: KILLED) is settled before its group is killed
    signal.signal(signal.SIGTERM, _stopped)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # held back by the parent around the fork
    signal.signal(DEATH_SIGNAL, _parent_died)
    _set_parent_death_signal()
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="qframe-parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        kill_group(os.getpid())


class JobStopped(KeyboardInterrupt):
    """A job's process got SIGTERM: the sweep that runs it is stopping."""


def _stopped(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the cleanup the first one started must finish
    raise JobStopped("stopped: the sweep was interrupted")


def stop_gently(pids: list[int], grace: float) -> None:
    """SIGTERM each job process of ``pids`` and give them up to ``grace`` seconds to end (their groups are killed
    by the caller afterwards, whatever happened)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + grace
    for pid in pids:
        while is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)


def _parent_died(signum: int, frame: object) -> None:
    kill_group(os.getpid())


def _set_parent_death_signal() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(DEATH_SIGNAL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.2)
    kill_group(os.getpid())


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while forking: Python runs a signal's handler at the next line of Python code,
    which may be inside an at-fork hook (logging's), where the exception the sweep's handler raises is swallowed; held
    back, the signal arrives after the fork, in the sweep's own code."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def lead_group(pid: int) -> None:
    """In the parent, right after forking ``pid``: make it a group leader too, so that a kill that comes before the
    child ran its first line still reaches its group."""
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child did it first, or has already exited


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (the job and everything it started); gone already: nothing."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)  # not (yet) a group leader
        except (ProcessLookupError, PermissionError):
            pass


def group_marker(pid: int, started: str | None) -> str:
    """The value of :data:`GROUP_ENV` in the job process ``pid`` (started at ``started``) and what it starts."""
    return f"{host()}:{pid}:{started}"


def kill_marked_group(pgid: int, marker: str) -> None:
    """SIGKILL the processes of group ``pgid`` whose environment carries ``marker`` (Linux ``/proc``; elsewhere
    nothing): a job's leftovers, never an unrelated group that reuses the number."""
    needle = f"{GROUP_ENV}={marker}".encode()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit() or _field(int(entry), 2) != str(pgid):
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                marked = needle in fh.read().split(b"\0")
        except OSError:
            continue
        if marked:
            try:
                os.kill(int(entry), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _field(pid: int, index: int) -> str | None:
    """Field ``index`` (0: the state) after the command name of ``/proc/<pid>/stat``, None where unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[index] if index < len(fields) else None


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot; Linux), None where unknown: with the PID it names
    one process, even after the PID is reused."""
    return _field(pid, 19)


def is_alive(pid: int, started: str | None = None) -> bool:
    """Whether process ``pid`` (started at ``started``, see :func:`start_time`) runs on this host now."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if started is not None and start_time(pid) not in (None, started):
        return False  # the PID is another process's now
    return _field(pid, 0) != "Z"  # a zombie has ended; only its exit status is left


def host() -> str:
    return socket.gethostname()
