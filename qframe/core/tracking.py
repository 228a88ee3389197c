"""MLflow tracking: store set-up, run context, and what a qframe run records.

The default store is a sqlite database under the qframe work directory with an
absolute URI (Hydra jobs may change directory). It is created once, under a
file lock, before any run touches it: several processes creating a new sqlite
store at the same time crash on schema migration.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_TELEMETRY_ENABLED", "false")
# MLflow's download progress bars would break a run's (or an error's) one-line output
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from filelock import FileLock  # noqa: E402

import qframe  # noqa: E402
from qframe.core import mlflow_import, sqlite_store, stores  # noqa: E402
from qframe.core.context import RunLocation, TrialIdentity  # noqa: E402

# whoever imports MLflow first in this process (the set-up thread, a sweep's preload) imports it without FastAPI
mlflow_import.defer_packages()


def ensure_experiment(uri: str, experiment: str, artifact_root: Path) -> str:
    """Create the store (once, under a lock) and the experiment; return the experiment id.

    A new experiment's artifacts go to ``artifact_root / experiment`` (:func:`stores.artifact_location`), not to
    ``./mlruns`` of the current directory. A database driver that is not installed is one ConfigError line.
    """
    try:
        return _ensure_experiment(uri, experiment, artifact_root)
    except ModuleNotFoundError as exc:  # MLflow's SQL store imports the driver when it first opens the store
        error = stores.missing_driver(exc, uri)
        if error is None:
            raise
        raise error from None


def _ensure_experiment(uri: str, experiment: str, artifact_root: Path) -> str:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    # mlflow installs its own INFO handler; schema-creation chatter is not news to a user
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    db = sqlite_store.sqlite_file(uri)
    # the lock serialises store creation on this machine (MLflow's schema migration is not safe to run twice)
    lock_dir = db.parent if db is not None else Path.home() / ".cache" / "qframe"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / "mlflow-store.lock")):
        if db is not None:
            sqlite_store.seed(db, artifact_root / "Default")  # a new store as a copy of a migrated empty one
            sqlite_store.trust_known_head()  # its schema check: one query instead of alembic's scripts
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            return found.experiment_id
        location = stores.artifact_location(uri, experiment, artifact_root)
        try:
            return client.create_experiment(experiment, artifact_location=location)
        except MlflowException:
            # another machine created it since (a shared database or server: the lock is this machine's only)
            found = client.get_experiment_by_name(experiment)
            if found is None:
                raise
            return found.experiment_id


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


#: the libraries whose versions a run records (``qframe.versions``): what a re-run's numbers depend on
VERSIONED = ("numpy", "pandas", "lightgbm", "torch", "mlflow", "hydra-core")


def versions() -> str:
    """``{"numpy": "2.4.6", ...}`` (JSON) of :data:`VERSIONED`, from package metadata (nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return json.dumps(found)


def git_checkout() -> tuple[Path, str, bool] | None:
    """(directory, commit, dirty) of the checkout runs come from: the researcher's project first (cwd), else the
    qframe checkout itself; None outside git."""
    for where in (Path.cwd(), Path(qframe.__file__).parent):
        state = git_state(where)
        if state:
            return where, *state
    return None


def source_tags() -> dict[str, str]:
    """Tags saying where runs come from: qframe's version, the host, and the git state of the project."""
    tags = {"qframe.version": qframe.__version__, "qframe.host": socket.gethostname(), "qframe.versions": versions()}
    checkout = git_checkout()
    if checkout:
        _, commit, dirty = checkout
        tags["qframe.git_commit"] = tags["mlflow.source.git.commit"] = commit
        tags["qframe.git_dirty"] = str(dirty).lower()
    return tags


#: the artifact holding the uncommitted changes (``git diff HEAD``) of a run made from a dirty checkout
DIFF_ARTIFACT = "uncommitted.diff"


def uncommitted_diff() -> str | None:
    """``git diff HEAD`` (staged and unstaged changes to tracked files, as ``qframe.git_dirty`` counts them) of
    :func:`git_checkout`'s checkout; None when it is clean or not in git. With the recorded commit it is the
    code a run ran (the seeds' ``_log_uncommitted_code``): ``git checkout COMMIT && git apply uncommitted.diff``."""
    checkout = git_checkout()
    if not checkout or not checkout[2]:
        return None
    try:
        diff = subprocess.run(
            ["git", "-C", str(checkout[0]), "diff", "HEAD", "--binary"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return diff.stdout if diff.returncode == 0 and diff.stdout.strip() else None


def log_uncommitted_diff(log_file: Any, tags: Mapping[str, str]) -> bool:
    """Log :func:`uncommitted_diff` as :data:`DIFF_ARTIFACT` with ``log_file(path)`` when ``tags`` (a run's
    :func:`source_tags`) say the checkout is dirty; True when a diff was logged."""
    if tags.get("qframe.git_dirty") != "true":
        return False
    diff = uncommitted_diff()
    if diff is None:
        return False
    from qframe.core.scratch import artifact_dir

    with artifact_dir() as out:
        (out / DIFF_ARTIFACT).write_text(diff)
        log_file(out / DIFF_ARTIFACT)
    return True


def location_tags() -> dict[str, str]:
    """Where this process runs: ``qframe.host``, ``qframe.pid`` and ``qframe.node`` (the Ray node's id inside a
    Ray worker or driver, else the host), so a trial on a cluster says which machine ran it."""
    host = socket.gethostname()
    node = host
    ray = sys.modules.get("ray")  # imported by every Ray worker; never imported here for this
    if ray is not None and ray.is_initialized():
        node = ray.get_runtime_context().get_node_id()
    return {"qframe.host": host, "qframe.pid": str(os.getpid()), "qframe.node": node}


def run_tags(dataset_fingerprint: str, source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The tags of a run on a dataset with this fingerprint (``source``: :func:`source_tags`, if known already,
    e.g. by a fork launcher's parent) and where it runs (:func:`location_tags`, always this process's)."""
    source = source if source is not None else source_tags()
    return {**source, **location_tags(), "qframe.dataset_fingerprint": dataset_fingerprint}


def preload(location: RunLocation) -> tuple[dict[str, str], str]:
    """Resolve once what every run forked from this process needs from tracking: (source tags, experiment id).

    Each run would otherwise spawn git twice, have MLflow's run-context providers import GitPython, open the
    store (an SQL store checks its schema: ~0.7 s) and look its experiment up. The store's connections are closed
    before returning and its pool is reset in every forked child: no database connection is shared across a fork.
    """
    tags = source_tags()
    from mlflow.tracking.context.registry import resolve_tags

    resolve_tags()  # the providers cache what they find (git info) in this process
    experiment_id = ensure_experiment(location.tracking_uri, location.experiment, location.artifact_root)
    release_connections(location.tracking_uri)
    return tags, experiment_id


_RELEASED_ENGINES: set[int] = set()


def release_connections(uri: str) -> None:
    """Close the pooled connections of ``uri``'s store in this process, and drop them (unclosed) in every child
    forked later: no database connection is used on both sides of a fork. The store object stays, with its
    schema checked and its SQL compiled, for the children to inherit."""
    from mlflow.tracking import MlflowClient

    engine = getattr(MlflowClient(tracking_uri=uri)._tracking_client.store, "engine", None)
    if engine is None:  # not an SQL store
        return
    engine.dispose()
    if id(engine) not in _RELEASED_ENGINES:
        _RELEASED_ENGINES.add(id(engine))
        os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))


class DeferredRun:
    """An MLflow run whose store set-up runs in a background thread while the caller loads data.

    Importing MLflow and opening (or creating) its store takes ~2 s; data loading and features need none of it.
    The caller calls :meth:`settle` before computing features: that Python-heavy thread would take the GIL
    from the feature threads at every numpy call (features 2.7 s alone, 5-6 s beside it, on 2 cores).
    ``params`` (what the run was run with) are logged in one batch with the first metrics, or when the run fails.
    The run itself starts at :meth:`start`; leaving the ``with`` block ends it FINISHED, or FAILED (KILLED on
    Ctrl-C) with the error as the ``qframe.error`` tag — a run that fails before :meth:`start` is still
    recorded as FAILED. A sweep's trial (``trial``) nests under the sweep's parent run; ``experiment_id``, when
    known already (resolved by a sweep's parent), spares the set-up.
    """

    def __init__(
        self,
        location: RunLocation,
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        trial: TrialIdentity | None = None,
        experiment_id: str | None = None,
    ) -> None:
        self.uri, self.experiment = location.tracking_uri, location.experiment
        self.artifact_root = location.artifact_root
        self.run_name = run_name
        self.trial = trial or TrialIdentity()
        self.run: Any = None
        self.waited = 0.0
        # logged with the first batch of metrics, or when the run fails: a failed run shows what it ran with
        self._params = {k: str(v)[:6000] for k, v in (params or {}).items()}
        self._experiment_id = experiment_id
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if self._experiment_id is None:
            self._thread = threading.Thread(target=self._set_up, name="qframe-tracking-setup", daemon=True)
            self._thread.start()

    def _set_up(self) -> None:
        try:
            # the slow part, done here off the main thread: MLflow's import and its store's (SQLAlchemy)
            with mlflow_import.quiet_gc():
                mlflow_import.import_mlflow()
                self._experiment_id = ensure_experiment(self.uri, self.experiment, self.artifact_root)
                from mlflow.tracking.context.registry import resolve_tags

                resolve_tags()  # the run-context providers cache what they find (GitPython's git info) here
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread by start()
            self._error = exc

    def settle(self) -> None:
        """Wait for the background set-up to finish (its errors are raised by :meth:`start`); the time waited
        adds to :attr:`waited`."""
        t0 = time.perf_counter()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.waited += time.perf_counter() - t0

    def start(self, tags: Mapping[str, str] | None = None) -> Any:
        """Wait for the set-up and start the MLflow run (nested under a sweep's parent run inside a sweep).

        ``tags`` are written with the run itself; the params with the first :meth:`log`: a run costs few writes.
        """
        self.settle()  # first: `import mlflow` would wait for the set-up thread's, uncounted
        if self._error is not None:
            raise self._error
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        tags = dict(tags or {})
        if self.trial.parent_run_id:
            # the tag is what nests a run (start_run(parent_run_id=...) sets it after reading the whole parent run
            # back to check it, ~45 ms a trial)
            tags["mlflow.parentRunId"] = self.trial.parent_run_id
            if self.trial.number is not None:
                tags["qframe.trial"] = str(self.trial.number)
                if self.trial.attempt is not None:
                    tags["qframe.attempt"] = str(self.trial.attempt)
        self.run = mlflow.start_run(experiment_id=self._experiment_id, run_name=self.run_name, tags=tags or None)
        if not self.trial.parent_run_id:  # a sweep's trials share the diff their parent run holds
            log_uncommitted_diff(lambda path: self._repository().log_artifact(str(path)), tags)
        return self.run

    def log(self, metrics: Mapping[str, float] | None = None, params: Mapping[str, Any] | None = None) -> None:
        """Log metrics and params (with the run's own params, the first time) in one batch."""
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        pending = {**self._params, **{k: str(v)[:6000] for k, v in (params or {}).items()}}
        now = int(time.time() * 1000)
        MlflowClient(self.uri).log_batch(
            self.run.info.run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, v) for k, v in pending.items()],
        )
        self._params = {}

    def log_artifacts(self, local_dir: Path) -> None:
        """Upload ``local_dir``'s files to the run's artifact location.

        Straight to the artifact repository of the run's known artifact URI: ``mlflow.log_artifacts`` would first
        read the whole run back from the store to look that URI up (~30 ms).
        """
        self._repository().log_artifacts(str(local_dir))

    def _repository(self) -> Any:
        """The artifact repository of the started run."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
        from mlflow.utils.uri import add_databricks_profile_info_to_artifact_uri

        artifact_uri = add_databricks_profile_info_to_artifact_uri(self.run.info.artifact_uri, self.uri)
        return get_artifact_repository(artifact_uri, tracking_uri=self.uri)

    def __enter__(self) -> DeferredRun:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        try:
            return self._end(exc)
        finally:
            if self.run is not None:
                # the store's connections closed with the run: nothing of it is left for the process's exit
                # (the `qframe` command skips the exit's collection, qframe.cli.freeze_for_exit); a failure here
                # must not hide the run's own error
                with contextlib.suppress(Exception):
                    release_connections(self.uri)

    def _end(self, exc: BaseException | None) -> bool:
        """End the run FINISHED, or FAILED / KILLED with the reason (see the class doc)."""
        import mlflow

        if exc is None:
            mlflow.end_run(status="FINISHED")
            return False
        if self.run is None:
            try:
                self.start()
            except BaseException:  # noqa: BLE001 - tracking itself is broken: the original error matters more
                return False
        killed = isinstance(exc, KeyboardInterrupt)
        try:  # the reason, for sweeps and the UI; never hide the original error behind a tracking one
            if self._params:
                self.log()  # a failed or killed run still shows what it was run with
            reason = (str(exc) or "interrupted") if killed else f"{type(exc).__name__}: {exc}"
            mlflow.set_tags({"qframe.error": reason[:5000], **getattr(exc, "tags", {})})
        except BaseException:  # noqa: BLE001 - a second interrupt while recording: end the run all the same
            pass
        mlflow.end_run(status="KILLED" if killed else "FAILED")
        return False
