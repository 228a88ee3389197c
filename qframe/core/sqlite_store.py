"""A new sqlite MLflow store in ~0.01 s instead of ~3 s: a copy of an empty store, migrated once per MLflow version.

Creating a sqlite store runs every one of MLflow's schema migrations (alembic), about 3 s, and is what makes the first
run in a new directory slow. The first time, an empty store is created the normal way, with MLflow's own client,
in a private per-user directory under the system temp dir; every new store after that is a copy of it, with the
``Default`` experiment's artifact location and time stamps set for the new store. Anything unexpected (an MLflow
whose empty store holds more than the ``Default`` experiment, a directory owned by someone else, an I/O error) skips
the shortcut: MLflow then creates the store itself, as it always would.

Opening a store, MLflow checks its schema against the newest of its migrations (``_verify_schema``: alembic reads
its ~100 migration scripts for the head revision, ~35 ms a process). :func:`trust_known_head` answers that check for
a sqlite store with one query: a store whose ``alembic_version`` is the revision of this MLflow version's template
(the head MLflow itself migrated the template to) passes, as it would have; any other store, or no template, gets
MLflow's own check (and its error for an out-of-date store).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

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


def _template_path() -> Path | None:
    """Where this MLflow version's template store is (or goes); None without a private directory for it."""
    import mlflow

    directory = _template_dir()
    return None if directory is None else directory / f"mlflow-{mlflow.__version__}-empty.db"


def _template() -> Path | None:
    """The migrated empty store of this MLflow version, created on first use (under a lock; an MLflow whose new store
    is not empty raises, and leaves no template)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    template = _template_path()
    if template is None:
        return None
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


def revision(path: Path) -> str | None:
    """The schema revision (``alembic_version``) of the sqlite store at ``path``; None when it has none."""
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as con:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


#: the MLflow versions whose store calls ``mlflow.store.db.utils._verify_schema(engine)`` once it is open
_KNOWN_VERSIONS = ("3.17.",)


def trust_known_head() -> bool:
    """Answer MLflow's schema check of sqlite stores at this version's head with one query (see the module doc);
    True when installed (once per process), False for an MLflow version not known to check that way."""
    import mlflow

    if not mlflow.__version__.startswith(_KNOWN_VERSIONS):
        return False
    import mlflow.store.db.utils as db_utils

    mlflow_check = db_utils._verify_schema
    if getattr(mlflow_check, "qframe_known_head", False):
        return True

    def _verify_schema(engine: Any) -> None:
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        if database and database != ":memory:":
            template = _template_path()
            if template is not None and template.exists():
                head = revision(template)
                if head is not None and revision(Path(database)) == head:
                    return
        mlflow_check(engine)

    _verify_schema.qframe_known_head = True  # type: ignore[attr-defined]
    db_utils._verify_schema = _verify_schema
    return True
