"""MLflow tracking: store set-up, run context, and what a qframe run records.

The default store is a sqlite database under the qframe work directory with an
absolute URI (Hydra jobs may change directory). It is created once, under a
file lock, before any run touches it: several processes creating a new sqlite
store at the same time crash on schema migration.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_TELEMETRY_ENABLED", "false")

from filelock import FileLock  # noqa: E402

import qframe  # noqa: E402


def resolve_tracking_uri(configured: str | None, workdir: Path) -> str:
    """Config first, then ``MLFLOW_TRACKING_URI``, then ``sqlite:///<workdir>/mlflow.db``."""
    if configured:
        return str(configured)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(workdir / 'mlflow.db').resolve()}"


def ensure_experiment(uri: str, experiment: str, artifact_root: Path) -> str:
    """Create the store (once, under a lock) and the experiment; return the experiment id."""
    from mlflow.tracking import MlflowClient

    # mlflow installs its own INFO handler; schema-creation chatter is not news to a user
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    lock_dir = artifact_root.parent if uri.startswith("sqlite:") else Path.home() / ".cache" / "qframe"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / "mlflow-store.lock")):
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            return found.experiment_id
        location = (artifact_root / experiment).resolve().as_uri() if uri.startswith(("sqlite:", "file:")) else None
        return client.create_experiment(experiment, artifact_location=location)


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``; lists are JSON."""
    out: dict[str, str] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value, default=str)[:6000]
        else:
            out[name] = str(value)[:6000]
    return out


def git_state(directory: Path) -> tuple[str, bool] | None:
    """(commit, dirty) of the git checkout holding ``directory``, or None."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return commit.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None


def run_tags(dataset_fingerprint: str) -> dict[str, str]:
    tags = {
        "qframe.version": qframe.__version__,
        "qframe.dataset_fingerprint": dataset_fingerprint,
        "qframe.host": socket.gethostname(),
    }
    # the researcher's project first (cwd), else the qframe checkout itself
    for where in (Path.cwd(), Path(qframe.__file__).parent):
        state = git_state(where)
        if state:
            tags["qframe.git_commit"], dirty = state
            tags["qframe.git_dirty"] = str(dirty).lower()
            tags["mlflow.source.git.commit"] = state[0]
            break
    return tags


class DeferredRun:
    """An MLflow run whose store set-up runs in a background thread while the caller loads data.

    Importing MLflow and opening (or creating) its store takes ~2 s; data loading and features need none of it.
    The run itself starts at :meth:`start`; leaving the ``with`` block ends it FINISHED, or FAILED (KILLED on
    Ctrl-C) with the error as the ``qframe.error`` tag — a run that fails before :meth:`start` is still
    recorded as FAILED.
    """

    def __init__(self, uri: str, experiment: str, artifact_root: Path, run_name: str | None = None) -> None:
        self.uri, self.experiment, self.artifact_root, self.run_name = uri, experiment, artifact_root, run_name
        self.run: Any = None
        self.waited = 0.0
        self._experiment_id: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._set_up, name="qframe-tracking-setup", daemon=True)
        self._thread.start()

    def _set_up(self) -> None:
        try:
            import mlflow  # noqa: F401 - the slow part, done here off the main thread

            self._experiment_id = ensure_experiment(self.uri, self.experiment, self.artifact_root)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread by start()
            self._error = exc

    def start(self) -> Any:
        """Wait for the set-up and start the MLflow run (nested under a sweep's parent run inside a sweep)."""
        import mlflow

        t0 = time.perf_counter()
        self._thread.join()
        self.waited = time.perf_counter() - t0
        if self._error is not None:
            raise self._error
        mlflow.set_tracking_uri(self.uri)
        # inside a qframe sweep the trial's run nests under the sweep's parent run (set by qframe.tuning)
        parent = os.environ.get("QFRAME_PARENT_RUN_ID") or None
        trial = os.environ.get("QFRAME_TRIAL_NUMBER")
        tags = {"qframe.trial": trial} if parent and trial else None
        self.run = mlflow.start_run(
            experiment_id=self._experiment_id, run_name=self.run_name, parent_run_id=parent, tags=tags
        )
        return self.run

    def __enter__(self) -> DeferredRun:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        import mlflow

        if exc is None:
            mlflow.end_run(status="FINISHED")
            return False
        if self.run is None:
            try:
                self.start()
            except BaseException:  # noqa: BLE001 - tracking itself is broken: the original error matters more
                return False
        if isinstance(exc, KeyboardInterrupt):
            mlflow.end_run(status="KILLED")
            return False
        try:  # the reason, for sweeps and the UI; never hide the original error behind a tracking one
            mlflow.set_tag("qframe.error", f"{type(exc).__name__}: {exc}"[:5000])
        except Exception:  # noqa: BLE001
            pass
        mlflow.end_run(status="FAILED")
        return False
