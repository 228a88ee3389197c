"""The sweep's MLflow parent run, written from short-lived forked helpers.

The sweep process forks a child per trial; it must hold no open database connection (nor MLflow's threads) when it
does. So every MLflow call of the sweep itself runs in a forked helper that exits when done: the parent never opens
the store. Trial runs nest under the parent through ``QFRAME_PARENT_RUN_ID`` (read by :mod:`qframe.core.tracking`).
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qframe.core.errors import QFrameError

PARENT_RUN_ENV = "QFRAME_PARENT_RUN_ID"
TRIAL_ENV = "QFRAME_TRIAL_NUMBER"


def _forget_stores() -> None:
    # a store cached by the forking process (in-process trials) would share its sqlite connections with us
    try:
        from mlflow.tracking._tracking_service import utils

        utils._tracking_store_registry._get_store_with_resolved_uri.cache_clear()
    except Exception:  # noqa: BLE001 - an MLflow without that cache has nothing to forget
        pass


def _helper(conn: Any, fn: Callable, args: tuple) -> None:
    try:
        _forget_stores()
        conn.send(("ok", fn(*args)))
    except BaseException as exc:  # noqa: BLE001 - reported to the sweep, which decides
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))
    conn.close()


def in_fork(fn: Callable, *args: Any) -> Any:
    """Run ``fn(*args)`` in a forked child and return its result (QFrameError if it raised)."""
    ctx = multiprocessing.get_context("fork")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_helper, args=(child_conn, fn, args), name="qframe-mlflow")
    proc.start()
    child_conn.close()
    try:
        status, payload = parent_conn.recv()
    except EOFError:
        status, payload = "error", f"the MLflow helper died (exit code {proc.exitcode})"
    proc.join()
    if status != "ok":
        raise QFrameError(f"MLflow tracking of the sweep failed: {payload.splitlines()[0]}")
    return payload


def start_parent(uri: str, experiment: str, artifact_root: str, run_id: str | None, name: str, params: dict) -> str:
    """Create (or reopen, on resume) the sweep's parent run; returns its id. Runs in a helper."""
    from mlflow.tracking import MlflowClient

    from qframe.core import tracking

    experiment_id = tracking.ensure_experiment(uri, experiment, Path(artifact_root))
    client = MlflowClient(tracking_uri=uri)
    if run_id:
        try:
            client.update_run(run_id, status="RUNNING")
            return run_id
        except Exception:  # noqa: BLE001 - a deleted/unknown parent: start a new one
            pass
    from mlflow.entities import Param

    run = client.create_run(experiment_id, run_name=name, tags={"qframe.kind": "sweep"})
    try:
        client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    except BaseException:
        client.set_terminated(run.info.run_id, "FAILED")
        raise
    return run.info.run_id


def finish_parent(
    uri: str, run_id: str, best: list[tuple[int, float, float]], files: list[str], failures: dict, status: str
) -> None:
    """Log the best-so-far curve and artifacts, fail dangling trial runs, end the parent. Runs in a helper."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    if best:
        metrics = [Metric("best objective", v, int(ts * 1000), step) for step, v, ts in best]
        for i in range(0, len(metrics), 500):
            client.log_batch(run_id, metrics=metrics[i : i + 500])
    for path in files:
        if Path(path).is_file():
            client.log_artifact(run_id, path)
    # a trial process killed by a signal or a timeout could not end its own run
    parent = client.get_run(run_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'", max_results=5000
    )
    for child in children:
        trial = child.data.tags.get("qframe.trial")
        if child.info.status == "RUNNING" and trial is not None and int(trial) in failures:
            client.set_tag(child.info.run_id, "qframe.error", failures[int(trial)][:5000])
            client.set_terminated(child.info.run_id, "FAILED")
        elif child.info.status == "FAILED" and trial is not None and int(trial) in failures:
            if "qframe.error" not in child.data.tags:
                client.set_tag(child.info.run_id, "qframe.error", failures[int(trial)][:5000])
    client.set_terminated(run_id, status)


def warm_store(uri: str) -> None:
    """Open the tracking store once in the sweep process, then close its connections, before trials are forked.

    Opening an MLflow SQL store verifies its schema (~0.7 s); a forked trial inherits the opened store object and
    skips that. The engine's connections are closed here and the pool is reset again in every child, so no
    database connection is ever shared across a fork.
    """
    if not uri.startswith(("sqlite:", "postgresql", "mysql", "mssql")):
        return
    from mlflow.tracking import MlflowClient

    store = MlflowClient(tracking_uri=uri)._tracking_client.store
    engine = getattr(store, "engine", None)
    if engine is None:
        return
    engine.dispose()
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
