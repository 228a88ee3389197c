"""A run's scratch directories (``qframe-artifacts-<pid>-*`` in the temp dir): made, removed, and swept up.

A run writes its artifacts to a scratch directory before uploading them; leaving the ``with`` block removes it,
on success and on an exception. A process killed by a signal (a sweep's trial killed for a timeout, ``kill -9``)
cannot: its directory carries its pid, so a later run, or the sweep that forked it, removes the directories of
processes that no longer exist.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

PREFIX = "qframe-artifacts-"


@contextlib.contextmanager
def artifact_dir() -> Iterator[Path]:
    """A scratch directory for one run's artifacts, removed when the block ends; orphans are swept first."""
    remove_orphans()
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}{os.getpid()}-") as tmp:
        yield Path(tmp)


def remove_orphans() -> int:
    """Remove the scratch directories of processes that no longer exist; returns how many were removed."""
    removed = 0
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = path.name[len(PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: not ours to judge
    return True
