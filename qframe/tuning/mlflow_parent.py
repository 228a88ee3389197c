"""The sweep's MLflow parent run, in the sweep process: the store and experiment it goes to, its start, its update
after every trial and its end.

The sweep process forks a child per trial (with qframe's launcher), so it never keeps a database connection
open across a fork: every function here releases the store's connections before it returns
(:func:`qframe.core.tracking.release_connections`). The SQL the children will run is then already compiled in
the store they inherit. Trial runs nest under the parent through the identity the sweeper sets in each trial's
``hydra.job.env_set`` (:func:`qframe.core.context.trial_environment`, read back by the app).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from qframe.core.errors import QFrameError
from qframe.tuning.settings import SweepSettings
from qframe.tuning.space import Space
from qframe.tuning.state import SweepState


class ParentRun(NamedTuple):
    """A tracked sweep's parent run."""

    uri: str
    run_id: str


def _released(fn: Callable) -> Callable:
    """Run ``fn(uri, ...)``, then close the store's connections; a tracking error becomes one QFrameError line."""

    @functools.wraps(fn)
    def wrapper(uri: str, *args: Any) -> Any:
        from qframe.core.tracking import release_connections

        try:
            return fn(uri, *args)
        except Exception as exc:  # noqa: BLE001 - tracking problems are reported, one line
            first = f"{type(exc).__name__}: {exc}".splitlines()[0]
            raise QFrameError(f"MLflow tracking of the sweep failed: {first}") from None
        finally:
            try:
                release_connections(uri)
            except Exception:  # noqa: BLE001 - nothing to release when the store could not be opened
                pass

    return wrapper


@_released
def start_parent(
    uri: str, experiment: str, artifact_root: str, run_id: str | None, name: str, params: dict, failures: dict
) -> str:
    """Create (or reopen, on resume) the sweep's parent run; returns its id. Reopened, the trial runs its death left
    RUNNING are ended (``failures``: the failed trials' reasons)."""
    from mlflow.tracking import MlflowClient

    from qframe.core import tracking

    experiment_id = tracking.ensure_experiment(uri, experiment, Path(artifact_root))
    client = MlflowClient(tracking_uri=uri)
    if run_id:
        try:
            client.update_run(run_id, status="RUNNING")
        except Exception:  # noqa: BLE001 - a deleted/unknown parent: start a new one
            pass
        else:
            # the runs of trials the sweep's death interrupted (their processes are gone: the trials are retried)
            _end_dangling_trial_runs(client, run_id, failures, "the sweep died while it ran")
            return run_id
    from mlflow.entities import Param

    run = client.create_run(experiment_id, run_name=name, tags={"qframe.kind": "sweep"})
    try:
        client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    except BaseException:
        client.set_terminated(run.info.run_id, "FAILED")
        raise
    return run.info.run_id


@_released
def log_best(uri: str, run_id: str, step: int, value: float, timestamp: float) -> None:
    """The best objective so far, as the parent's metric ``best objective`` at ``step`` (the trial number)."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=uri).log_metric(run_id, "best objective", value, int(timestamp * 1000), step)


@_released
def finish_parent(uri: str, run_id: str, files: list[str], failures: dict, status: str) -> None:
    """Log the sweep's files, end dangling trial runs, end the parent."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for path in files:
        if Path(path).is_file():
            client.log_artifact(run_id, path)
    interrupted = "the sweep was stopped while it ran" if status == "KILLED" else None
    _end_dangling_trial_runs(client, run_id, failures, interrupted)
    client.set_terminated(run_id, status)


def _end_dangling_trial_runs(client: Any, run_id: str, failures: dict, interrupted: str | None) -> None:
    """End the trial runs left RUNNING under ``run_id``: a trial process killed by a signal or a timeout could not
    end its own. A failed trial's run is FAILED with its reason; an interrupted one's (``interrupted``: why; the
    trial runs again when the sweep is resumed) is KILLED."""
    parent = client.get_run(run_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'", max_results=5000
    )
    for child in children:
        trial = child.data.tags.get("qframe.trial")
        reason = failures.get(int(trial)) if trial is not None else None
        if child.info.status == "RUNNING":  # nothing runs once the sweep ends: this trial's process died
            if reason is None and interrupted:
                client.set_tag(child.info.run_id, "qframe.error", f"interrupted: {interrupted}")
                client.set_terminated(child.info.run_id, "KILLED")
                continue
            client.set_tag(child.info.run_id, "qframe.error", (reason or "the trial's process died")[:5000])
            client.set_terminated(child.info.run_id, "FAILED")
        elif child.info.status == "FAILED" and reason is not None and "qframe.error" not in child.data.tags:
            client.set_tag(child.info.run_id, "qframe.error", reason[:5000])


def tracking_target(config: Any, settings: SweepSettings) -> tuple[str, str, str] | None:
    """(tracking uri, experiment, artifact root) when the task is a qframe run with tracking, else None."""
    from omegaconf import OmegaConf

    if not settings.mlflow or OmegaConf.select(config, "workdir", default=None) is None:
        return None
    from qframe.core.context import locate

    keys = ("workdir", "tracking_uri", "experiment_name", "artifact_root")
    # the trials' own derivation, from the same config and environment (the sweeper runs at the boundary)
    location = locate({k: OmegaConf.select(config, k, default=None) for k in keys}, os.environ)
    return location.tracking_uri, location.experiment, str(location.artifact_root)


def start_sweep_run(
    config: Any, settings: SweepSettings, state: SweepState, space: Space, objective: str | None
) -> ParentRun | None:
    """Start (or, on resume, reopen) the parent run of the sweep ``config`` describes; None: the sweep is untracked.
    Its id goes into ``state``."""
    target = tracking_target(config, settings)
    if target is None:
        return None
    uri, experiment, artifact_root = target
    params = {f"space.{k.lstrip('+~')}": v for k, v in space.describe().items()}
    params.update(
        algo=settings.algo,
        n_trials=settings.n_trials,
        n_jobs=settings.n_jobs,
        direction=settings.direction,
        objective=objective,
        seed=settings.seed,
        fixed=" ".join(space.fixed),
        sweep_dir=str(config.hydra.sweep.dir),
    )
    name = f"sweep {Path(str(config.hydra.sweep.dir)).name}"
    run_id = start_parent(uri, experiment, artifact_root, state.parent_run_id, name, params, _failures(state))
    state.parent_run_id = run_id
    return ParentRun(uri, run_id)


def log_best_so_far(parent: ParentRun, trial: int, best: float, ended: float) -> None:
    """:func:`log_best`, a failure of which is a warning: a progress metric is not worth the sweep."""
    try:
        log_best(parent.uri, parent.run_id, trial, best, ended)
    except QFrameError as exc:
        print(f"qframe: warning: {exc}", file=sys.stderr)


def finish_sweep_run(parent: ParentRun, state: SweepState, paths: dict[str, Path], status: str) -> None:
    """End the parent run with the sweep's output files and each failed trial's reason."""
    files = [str(paths[k]) for k in ("results", "parquet", "csv", "history")]
    finish_parent(parent.uri, parent.run_id, files, _failures(state), status)


def _failures(state: SweepState) -> dict[int, str]:
    """Each failed trial's reason, by trial number."""
    return {t.number: t.error or "failed" for t in state.trials if t.status == "failed"}
