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


class FailedTrial(NamedTuple):
    """What the sweep recorded of a failed trial: its run must say the same."""

    reason: str
    params: dict[str, str]  # the trial's searched params, by config key
    attempt: int | None = None  # its last attempt (earlier ones were retried: qframe.tuning.retries)


@_released
def start_parent(
    uri: str,
    experiment: str,
    artifact_root: str,
    run_id: str | None,
    name: str,
    params: dict,
    failed: dict[int, FailedTrial],
    interrupted: set[int],
    tags: dict[str, str] | None = None,
) -> str:
    """Create (or reopen, on resume) the sweep's parent run; returns its id. Reopened, the trial runs the sweep's
    death left behind are made to agree with its record (``failed``; ``interrupted``: to be retried, KILLED).
    ``tags``: the new run's, besides ``qframe.kind=sweep`` (a pipeline's stage: its parent and stage name)."""
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
            _settle_trial_runs(client, run_id, failed, interrupted, "the sweep died while it ran")
            return run_id
    from mlflow.entities import Param

    source = tracking.source_tags()
    run = client.create_run(experiment_id, run_name=name, tags={**source, "qframe.kind": "sweep", **(tags or {})})
    try:
        client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        # the code the trials run, once for the sweep (its trials log none of their own)
        tracking.log_uncommitted_diff(lambda path: client.log_artifact(run.info.run_id, str(path)), source)
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
def finish_parent(
    uri: str,
    run_id: str,
    files: list[str],
    failed: dict[int, FailedTrial],
    interrupted: set[int],
    status: str,
    retried: dict[tuple[int, int], str] | None = None,
) -> None:
    """Log the sweep's files, make every trial's run agree with the sweep's record (``failed``, and ``interrupted``:
    running when the sweep was stopped, to be retried on resume; ``retried``: the reason of each earlier attempt, by
    (trial, attempt)), end the parent."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for path in files:
        if Path(path).is_file():
            client.log_artifact(run_id, path)
    _settle_trial_runs(client, run_id, failed, interrupted, "the sweep was stopped while it ran", retried)
    client.set_terminated(run_id, status)


def _settle_trial_runs(
    client: Any,
    run_id: str,
    failed: dict[int, FailedTrial],
    interrupted: set[int],
    why_interrupted: str,
    retried: dict[tuple[int, int], str] | None = None,
) -> None:
    """Make the trial runs under ``run_id`` say what the sweep recorded: each failed trial's latest run FAILED with
    the sweep's reason and the trial's params (a run created for a trial that died before starting one); an
    interrupted trial's KILLED (``why_interrupted``); any other run still RUNNING (an earlier attempt of a retried
    trial, whose process died) FAILED: with its reason where ``retried`` has it (by trial and attempt)."""
    parent = client.get_run(run_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'", max_results=5000
    )
    retried = retried or {}
    latest: dict[int, Any] = {}  # a retried trial has a run per attempt: its last attempt's counts
    for child in sorted(children, key=lambda run: run.info.start_time or 0):
        trial, attempt = child.data.tags.get("qframe.trial", ""), child.data.tags.get("qframe.attempt", "")
        if not trial.isdigit():
            continue
        last = failed[int(trial)].attempt if int(trial) in failed else None
        if attempt.isdigit() and (int(trial), int(attempt)) in retried or (last and attempt and attempt != str(last)):
            continue  # an earlier attempt's run
        latest[int(trial)] = child
    for number, record in failed.items():
        run = latest.get(number)
        if run is None:  # killed before it could start its run (while loading inputs, say)
            _record_failed_trial(client, parent.info.experiment_id, run_id, number, record)
        else:
            _fail_run(client, run, record)
    settled = {latest[number].info.run_id for number in failed if number in latest}
    stopped = {latest[number].info.run_id for number in interrupted if number in latest}
    for child in children:
        # nothing runs once the sweep ends (or before a resumed one starts): these processes are gone
        if child.info.status != "RUNNING" or child.info.run_id in settled:
            continue
        if child.info.run_id in stopped:
            client.set_tag(child.info.run_id, "qframe.error", f"interrupted: {why_interrupted}")
            client.set_terminated(child.info.run_id, "KILLED")
            continue
        key = (child.data.tags.get("qframe.trial", ""), child.data.tags.get("qframe.attempt", ""))
        reason = retried.get((int(key[0]), int(key[1]))) if key[0].isdigit() and key[1].isdigit() else None
        if reason is not None:
            client.set_tag(child.info.run_id, "qframe.error", f"retried: {reason}"[:5000])
            client.set_terminated(child.info.run_id, "FAILED")
        else:
            client.set_tag(child.info.run_id, "qframe.error", "the trial's process died")
            client.set_terminated(child.info.run_id, "FAILED")


def _fail_run(client: Any, run: Any, record: FailedTrial) -> None:
    """``run`` (a trial's) FAILED with the sweep's reason (NaN objective, killed by a signal or a timeout) and,
    when its process died before logging them, the trial's params."""
    from mlflow.entities import Param

    if not run.data.params and record.params:
        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in record.params.items()])
    logged = run.data.tags.get("qframe.error", "")
    if logged.splitlines()[:1] != [record.reason]:  # keep a longer message that starts with the same reason
        client.set_tag(run.info.run_id, "qframe.error", record.reason[:5000])
    if run.info.status != "FAILED":
        client.set_terminated(run.info.run_id, "FAILED")


def _record_failed_trial(client: Any, experiment_id: str, parent_id: str, number: int, record: FailedTrial) -> None:
    """A FAILED run for a trial that has none, nested under the parent, with the trial's params and reason."""
    from mlflow.entities import Param

    tags = {"mlflow.parentRunId": parent_id, "qframe.trial": str(number), "qframe.error": record.reason[:5000]}
    run = client.create_run(experiment_id, run_name=f"trial {number}", tags=tags)
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in record.params.items()])
    client.set_terminated(run.info.run_id, "FAILED")


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
    config: Any,
    settings: SweepSettings,
    state: SweepState,
    space: Space,
    objective: str | None,
    name: str | None = None,
    tags: dict[str, str] | None = None,
) -> ParentRun | None:
    """Start (or, on resume, reopen) the parent run of the sweep ``config`` describes; None: the sweep is untracked.
    Its id goes into ``state``. ``name`` and ``tags``: a pipeline stage's run (nested under the pipeline's)."""
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
    name = name or f"sweep {Path(str(config.hydra.sweep.dir)).name}"
    records = _trial_records(state)
    run_id = start_parent(uri, experiment, artifact_root, state.parent_run_id, name, params, *records, tags)
    state.parent_run_id = run_id
    return ParentRun(uri, run_id)


@_released
def trial_run_id(uri: str, parent_id: str, number: int) -> str | None:
    """The MLflow run of trial ``number`` under ``parent_id`` (its last attempt's), None: it has none."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(parent_id)
    found = client.search_runs(
        [parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent_id}' AND tags.`qframe.trial` = '{number}' "
        "AND attributes.status = 'FINISHED'",
        max_results=50,
    )
    latest = max(found, key=lambda run: run.info.start_time or 0, default=None)
    return latest.info.run_id if latest is not None else None


@_released
def start_pipeline_run(
    uri: str, experiment: str, artifact_root: str, run_id: str | None, name: str, params: dict
) -> str:
    """Create (or reopen, on resume) a pipeline's own MLflow run (``qframe.kind=pipeline``); returns its id."""
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    from qframe.core import tracking

    experiment_id = tracking.ensure_experiment(uri, experiment, Path(artifact_root))
    client = MlflowClient(tracking_uri=uri)
    if run_id:
        try:
            client.update_run(run_id, status="RUNNING")
            return run_id
        except Exception:  # noqa: BLE001 - a deleted/unknown run: start a new one
            pass
    run = client.create_run(experiment_id, run_name=name, tags={"qframe.kind": "pipeline"})
    client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    return run.info.run_id


@_released
def finish_pipeline_run(uri: str, run_id: str, files: list[str], metrics: dict[str, float], status: str) -> None:
    """Log the pipeline's files and global-best metrics; end its run with ``status``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))
    for path in files:
        if Path(path).is_file():
            client.log_artifact(run_id, path)
    client.set_terminated(run_id, status)


def log_best_so_far(parent: ParentRun, trial: int, best: float, ended: float) -> None:
    """:func:`log_best`, a failure of which is a warning: a progress metric is not worth the sweep."""
    try:
        log_best(parent.uri, parent.run_id, trial, best, ended)
    except QFrameError as exc:
        print(f"qframe: warning: {exc}", file=sys.stderr)


def finish_sweep_run(parent: ParentRun, state: SweepState, paths: dict[str, Path], status: str) -> None:
    """End the parent run with the sweep's output files; each failed trial's run FAILED with its reason and
    params, each interrupted one's KILLED."""
    files = [str(paths[k]) for k in ("results", "parquet", "csv", "history")]
    retried = {(t.number, int(a["attempt"])): str(a["error"]) for t in state.trials for a in t.history}
    finish_parent(parent.uri, parent.run_id, files, *_trial_records(state), status, retried)


def _trial_records(state: SweepState) -> tuple[dict[int, FailedTrial], set[int]]:
    """What the runs must agree with: each failed trial's reason and params, and the trials still running."""
    failed = {
        t.number: FailedTrial(
            t.error or "failed", {k.lstrip("+~"): str(v)[:6000] for k, v in t.params.items()}, t.attempts
        )
        for t in state.trials
        if t.status == "failed"
    }
    return failed, {t.number for t in state.trials if t.status == "running"}
