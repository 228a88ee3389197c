"""What kind of MLflow store a tracking URI names: where a new experiment's artifacts go, and the driver it needs.

Three kinds (``docs/tracking.md``): a local sqlite store (one process at a time writes well), a database such as
PostgreSQL (many writers on one machine), and a tracking server (``http(s)://``, several machines). MLflow puts
a new experiment's artifacts under ``./mlruns`` of whatever directory the process started in unless told
otherwise; qframe tells it: ``<artifact root>/<experiment>`` (the work directory's ``artifacts/`` unless
``artifact_root`` is set), except on a tracking server that serves artifacts itself (``mlflow server
--serve-artifacts``, MLflow's default), whose own destination is kept.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from qframe.core.errors import ConfigError

#: the install command of the PostgreSQL driver (psycopg 3: SQLAlchemy 2.1's driver for a plain postgresql:// URI)
POSTGRES_INSTALL = "pip install -c constraints.txt '.[postgres]' (in qframe's checkout)"

#: a database driver module MLflow's SQL store imports -> (database, how to install it)
DRIVERS = {
    "psycopg": ("PostgreSQL", POSTGRES_INSTALL),
    "psycopg2": (
        "PostgreSQL",
        "pip install psycopg2-binary, or use a plain postgresql:// URI (psycopg 3: " + POSTGRES_INSTALL + ")",
    ),
    "pymysql": ("MySQL", "pip install pymysql"),
    "MySQLdb": ("MySQL", "pip install mysqlclient, or use a mysql+pymysql:// URI with pymysql installed"),
    "pyodbc": ("SQL Server", "pip install pyodbc"),
}

#: stores whose artifacts qframe places: files, sqlite, and the databases MLflow's SQL store supports
LOCAL_SCHEMES = ("file", "sqlite", "postgresql", "mysql", "mssql")


def scheme(uri: str) -> str:
    """The store's kind of URI: ``postgresql`` for ``postgresql+psycopg://...``, ``file`` for a bare path."""
    head, sep, _ = uri.partition(":")
    if not sep or len(head) == 1:  # a path, or a Windows drive letter
        return "file"
    return head.split("+", 1)[0].lower()


def is_server(uri: str) -> bool:
    """A tracking server's URI (``http(s)://host:port``)."""
    return scheme(uri) in ("http", "https")


def missing_driver(exc: ModuleNotFoundError, uri: str) -> ConfigError | None:
    """The one-line error for a database driver that is not installed, or None when ``exc`` is about another
    module."""
    root = (exc.name or "").split(".", 1)[0]
    if root not in DRIVERS:
        return None
    database, install = DRIVERS[root]
    where = uri.split("@", 1)[-1] if "@" in uri else uri  # no password in the message
    return ConfigError(
        f"tracking_uri names a {database} store ({where}) but its driver {root!r} is not installed: {install}"
    )


def serves_artifacts(uri: str, timeout: float = 10.0) -> bool:
    """Whether the tracking server at ``uri`` serves artifacts (``mlflow server`` without ``--no-serve-artifacts``).

    Its artifact proxy answers a listing of the root; a server that does not serve artifacts answers 503.
    """
    url = uri.rstrip("/") + "/api/2.0/mlflow-artifacts/artifacts"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            json.load(response)
            return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def artifact_location(uri: str, experiment: str, artifact_root: Path) -> str | None:
    """Where a new experiment of ``uri``'s store keeps its artifacts; None: the store's own choice (a tracking
    server serving artifacts, or a kind of store qframe does not know, e.g. ``databricks``)."""
    if scheme(uri) in LOCAL_SCHEMES or (is_server(uri) and not serves_artifacts(uri)):
        return (artifact_root / experiment).resolve().as_uri()
    return None
