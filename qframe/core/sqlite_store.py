"""A new sqlite MLflow store in ~0.01 s instead of ~3 s: a copy of an empty store, migrated once per MLflow version.

Creating a sqlite store runs every one of MLflow's schema migrations (alembic), about 3 s, and is what makes the first
run in a new directory slow. The first time, an empty store is created the normal way, with MLflow's own client,
in a private per-user directory under the system temp dir; every new store after that is a copy of it, with the
``Default`` experiment's artifact location and time stamps set for the new store. Anything unexpected (an MLflow
whose empty store holds more than the ``Default`` experiment, a directory owned by someone else, an I/O error) skips
the shortcut: MLflow then creates the store itself, as it always would.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from filelock import FileLock

from qframe.core.atomic import atomic_path

log = logging.getLogger("qframe")


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///<absolute path>`` URI, else None."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri.startswith(prefix + ":memory:"):
        return None
    path = Path(uri[len(prefix) :])  # sqlite:////abs/path: the fourth slash starts the absolute path
    return path if path.is_absolute() else None


def _template_dir() -> Path | None:
    """A directory only this user can write, for the template; None where that cannot be guaranteed."""
    if not hasattr(os, "getuid"):
        return None
    directory = Path(tempfile.gettempdir()) / f"qframe-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    info = directory.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        return None  # someone else's directory: do not copy a database from it
    return directory


def _is_empty_store(path: Path) -> bool:
    with sqlite3.connect(path) as con:
        experiments = con.execute("SELECT experiment_id, name FROM experiments").fetchall()
        runs = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    return experiments == [(0, "Default")] and runs == 0


def _template() -> Path | None:
    """The migrated empty store of this MLflow version, created on first use (under a lock; an MLflow whose new store
    is not empty raises, and leaves no template)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    directory = _template_dir()
    if directory is None:
        return None
    template = directory / f"mlflow-{mlflow.__version__}-empty.db"
    with FileLock(str(template) + ".lock"):
        if not template.exists():
            with atomic_path(template) as building:
                MlflowClient(tracking_uri=f"sqlite:///{building}").search_experiments()  # MLflow creates, migrates
                if not _is_empty_store(building):
                    raise ValueError(f"MLflow {mlflow.__version__}'s new store is not empty")  # left unreplaced
    return template


def seed(db: Path, default_artifacts: Path) -> bool:
    """Create ``db`` as a copy of the empty template store; False (nothing done) when the shortcut does not apply.

    The caller holds the store's creation lock. ``default_artifacts`` becomes the ``Default`` experiment's artifact
    location (MLflow would have used ``./mlruns/0`` of the directory the process happened to start in).
    """
    if db.exists():
        return False
    try:
        template = _template()
        if template is None:
            return False
        db.parent.mkdir(parents=True, exist_ok=True)
        # not qframe.core.atomic.atomic_path: its temporary file is private (0600), and the store gets the mode
        # of a file MLflow would have created (the umask's), so that others may read it as before
        partial = db.with_name(f".{db.name}.seeding-{os.getpid()}")
        shutil.copyfile(template, partial)
        now = int(time.time() * 1000)
        with sqlite3.connect(partial) as con:
            con.execute(
                "UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ? "
                "WHERE experiment_id = 0",
                (default_artifacts.resolve().as_uri(), now, now),
            )
        os.replace(partial, db)
        return True
    except Exception as exc:  # noqa: BLE001 - a shortcut only: MLflow creates the store itself instead
        log.debug("seeding %s from a template store failed (%s: %s); MLflow creates it", db, type(exc).__name__, exc)
        for leftover in db.parent.glob(f".{db.name}.seeding-{os.getpid()}"):
            leftover.unlink(missing_ok=True)
        return False
