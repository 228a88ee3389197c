"""Real tracking services for tests and ``benchmarks/bench_stores.py``: a fresh PostgreSQL database, and an
``mlflow server`` on a free loopback port (PostgreSQL backend, served artifacts), stopped with its workers.

PostgreSQL is the one at ``QFRAME_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``, an
administrative connection: databases are created and dropped through it). Where it cannot be reached,
:func:`postgres_missing` says whether that is a machine without PostgreSQL (a reason to skip) or a broken set-up
(a reason to fail).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

ADMIN_URI = os.environ.get("QFRAME_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
#: programs of a PostgreSQL installation: one on PATH means PostgreSQL is installed here and must be reachable
POSTGRES_PROGRAMS = ("postgres", "pg_ctl", "pg_ctlcluster", "psql")
SERVER_START_TIMEOUT = 90


def qframe_env() -> dict[str, str]:
    """This environment less qframe's and MLflow's tracking variables: a qframe process told only its arguments."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    out["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return out


def run_qframe(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m qframe ARGS`` in ``cwd`` with :func:`qframe_env`, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "qframe", *args],
        cwd=cwd,
        env=qframe_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def postgres_missing() -> str | None:
    """None when PostgreSQL answers at :data:`ADMIN_URI`; else why, prefixed ``not installed:`` only when no
    PostgreSQL program is on this machine (a developer's laptop), so a caller may skip just then."""
    import psycopg  # the test extra's driver: its absence is a broken install, never a skip

    try:
        with psycopg.connect(ADMIN_URI, connect_timeout=5) as con:
            con.execute("SELECT 1")
        return None
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL at {ADMIN_URI} does not answer: {str(exc).strip().splitlines()[0]}"
    installed = [p for p in POSTGRES_PROGRAMS if shutil.which(p)]
    if installed or os.environ.get("CI"):
        return f"{reason} (PostgreSQL is installed here: {', '.join(installed) or 'CI'}; start it)"
    return f"not installed: {reason}"


def require_postgres() -> None:
    """Skip the calling test where no PostgreSQL is installed; fail it where one is but does not answer."""
    import pytest

    missing = postgres_missing()
    if missing and missing.startswith("not installed"):
        pytest.skip(missing)
    if missing:
        pytest.fail(missing)


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URI, autocommit=True, connect_timeout=10) as con:
        con.execute(sql)


def database_uri(name: str) -> str:
    """``ADMIN_URI`` with its database replaced by ``name``."""
    return ADMIN_URI.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def fresh_database(prefix: str = "qframe_test") -> Iterator[str]:
    """A new, empty database (its URI), dropped afterwards (with any connection still open to it)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield database_uri(name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: per process (an xdist worker): ADMIN_URI -> the name of the database MLflow migrated once, which
#: :func:`migrated_database` copies (dropped when the process exits)
_TEMPLATES: dict[str, str] = {}


def _template() -> str:
    """The name of a database holding MLflow's schema (its migrations run once per process: on PostgreSQL they
    are ~40 committed DDL steps, seconds of disk syncs that a server's start or a first client pays each time)."""
    if ADMIN_URI not in _TEMPLATES:
        import atexit
        import tempfile

        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        name = f"qframe_tpl_{uuid.uuid4().hex[:10]}"
        _admin(f'CREATE DATABASE "{name}"')
        atexit.register(_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with tempfile.TemporaryDirectory() as artifacts:
            store = SqlAlchemyStore(database_uri(name).replace("postgresql://", "postgresql+psycopg://"), artifacts)
            store.engine.dispose()  # a template database must have no connection when it is copied
        _TEMPLATES[ADMIN_URI] = name
    return _TEMPLATES[ADMIN_URI]


@contextlib.contextmanager
def migrated_database(prefix: str = "qframe_test") -> Iterator[str]:
    """Like :func:`fresh_database`, but already holding MLflow's schema (and its Default experiment), copied from
    a database migrated once per process: for tests of what runs do with a store, not of how a store is created."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{_template()}"')
    try:
        yield database_uri(name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Server(NamedTuple):
    url: str
    pgid: int  # the server's process group: it and its workers


@contextlib.contextmanager
def mlflow_server(
    backend_uri: str, log: Path, artifacts: Path | None, workers: int = 1, start_timeout: float = SERVER_START_TIMEOUT
) -> Iterator[Server]:
    """``mlflow server`` on 127.0.0.1 and a free port, serving ``artifacts`` (None: ``--no-serve-artifacts``);
    yields it once ``/health`` answers (within ``start_timeout`` seconds); stops it and its workers (its whole
    process group) afterwards.

    One worker by default: each is a process importing MLflow (seconds on a loaded 2-core machine), and a test's
    writers are a handful."""
    port = free_port()
    serving = (
        ["--serve-artifacts", "--artifacts-destination", str(artifacts)] if artifacts else ["--no-serve-artifacts"]
    )
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        backend_uri,
        *serving,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=out, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while not _healthy(url):
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not healthy in {start_timeout:g} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield Server(url, proc.pid)
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to ``proc``'s process group, SIGKILL after 20 s; returns once no process of the group is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 20
    while group_alive(proc.pid) and time.monotonic() < deadline + 10:  # workers may outlive the leader a moment
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.2)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
