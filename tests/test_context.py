"""RunContext: what a run is told explicitly (location, trial identity, shared inputs) instead of reading globals."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_plugins import compose  # the resolved config of the `qframe` command, small market

from qframe.core.context import (
    RunContext,
    TrialIdentity,
    default_workdir,
    locate,
    trial_environment,
    trial_identity,
)


def test_locate_prefers_the_config_then_the_given_environment_then_the_workdir_store(tmp_path):
    here = locate({"workdir": str(tmp_path / "w")})
    assert here.workdir == (tmp_path / "w").resolve()
    assert here.tracking_uri == f"sqlite:///{(tmp_path / 'w').resolve() / 'mlflow.db'}"
    assert here.experiment == "qframe" and here.artifact_root == here.workdir / "artifacts"
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5999"}
    assert locate({"workdir": str(tmp_path)}, env).tracking_uri == "http://127.0.0.1:5999"
    configured = {"workdir": str(tmp_path), "tracking_uri": "sqlite:////x.db", "experiment_name": "e"}
    assert (locate(configured, env).tracking_uri, locate(configured, env).experiment) == ("sqlite:////x.db", "e")
    # no workdir: $QFRAME_HOME of the given environment, else ./.qframe, as the config's default and `qframe runs`
    home = {"QFRAME_HOME": str(tmp_path / "home")}
    assert locate({}, home).workdir == (tmp_path / "home").resolve() == default_workdir(home)
    assert locate({}, {}).workdir == default_workdir() == (Path.cwd() / ".qframe").resolve()
    from qframe.experiments.store import resolve_uri

    home_dir = (tmp_path / "home").resolve()
    assert resolve_uri(environ=home) == (f"sqlite:///{home_dir / 'mlflow.db'}", home_dir)
    assert resolve_uri(workdir=tmp_path / "w", environ=home)[1] == here.workdir


def test_a_trials_identity_survives_the_trip_through_the_job_environment():
    assert trial_identity(trial_environment(7, "abc123")) == TrialIdentity(7, "abc123", 1)
    assert trial_identity(trial_environment(0, None, 3)) == TrialIdentity(0, None, 3)
    assert trial_identity({}) == TrialIdentity() and not TrialIdentity().in_sweep
    assert trial_identity({"QFRAME_TRIAL_NUMBER": "3"}) == TrialIdentity()  # not in a sweep without the marker


def test_the_app_task_declares_the_prefork_interface_and_a_plain_function_does_not():
    from qframe.app import QFrameTask
    from qframe.launch.protocols import ForkAwareTask

    task = QFrameTask()
    assert isinstance(task, ForkAwareTask)
    assert "qframe.core.workflow" in task.preload_modules
    assert not isinstance(lambda cfg: 0.0, ForkAwareTask)


def test_a_trial_context_nests_the_run_and_leaves_plots_out(tmp_path):
    """A run told it is trial 4 of a tracked sweep nests under the parent run and, by default, draws no plots;
    the same config run without a context is a single run with plots."""
    from mlflow.tracking import MlflowClient

    from qframe.core.tracking import ensure_experiment
    from qframe.core.workflow import run_workflow

    cfg = compose(tmp_path)
    location = locate(cfg)
    experiment_id = ensure_experiment(location.tracking_uri, location.experiment, location.artifact_root)
    client = MlflowClient(location.tracking_uri)
    parent = client.create_run(experiment_id, run_name="sweep")
    trial = run_workflow(cfg, RunContext(location, TrialIdentity(4, parent.info.run_id)))
    single = run_workflow(cfg)

    run = client.get_run(trial.run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id and run.data.tags["qframe.trial"] == "4"
    assert not {"cumulative_return.png", "report.html"} & {a.path for a in client.list_artifacts(trial.run_id)}
    alone = client.get_run(single.run_id)
    assert "mlflow.parentRunId" not in alone.data.tags
    assert {"cumulative_return.png", "report.html"} <= {a.path for a in client.list_artifacts(single.run_id)}
    # the same run, less the honest controls a single run adds (a trial leaves them out: evaluation.controls=auto)
    assert not any(k.startswith("controls.") for k in trial.metrics)
    assert any(k.startswith("controls.") for k in single.metrics)
    same = {k: v for k, v in single.metrics.items() if not k.startswith("controls.")}
    assert trial.metrics == pytest.approx(same, nan_ok=True)


def test_shared_inputs_reach_only_runs_of_the_same_inputs(tmp_path):
    """Preloaded inputs are used by a run with the same dataset/handler/segments (no data or feature stage) and
    ignored by one that changes them."""
    from qframe.core.workflow import preload_inputs, run_workflow

    cfg = compose(tmp_path)
    shared = preload_inputs(cfg, locate(cfg))
    reused = run_workflow(cfg, RunContext(locate(cfg), shared=shared))
    assert "features" not in reused.timings and reused.settings["features_from_cache"]
    # a parallel sweep's trial gets its share of the feature threads (app.apply_thread_budget): the same inputs
    budgeted = {**cfg, "handler": {**cfg["handler"], "num_threads": 1}}
    assert "features" not in run_workflow(budgeted, RunContext(locate(budgeted), shared=shared)).timings
    other = compose(tmp_path, "dataset.n_instruments=30")
    loaded = run_workflow(other, RunContext(locate(other), shared=shared))
    assert "features" in loaded.timings
