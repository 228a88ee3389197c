"""Rolling retraining (``trainer=rolling``): the windows, the isolated window jobs, the one judged run, resume, Ray.

Real runs on a tiny synthetic market (40 instruments x 320 days: a 64-day test segment, 4 windows of 20 days) in a
real sqlite MLflow store; ridge (numpy) in this process, so forking the window jobs from it is safe.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

try:
    import tracking_services as services
except ImportError:
    sys.path.insert(0, str(Path(__file__).parent))
    import tracking_services as services

from qframe.core.errors import ConfigError
from qframe.core.windows import MIN_TRAIN_DAYS, Window, check_windows, rolling_windows
from qframe.plugins.features.alpha158 import Alpha158
from qframe.plugins.models.linear import LinearModel

SMALL = ["dataset.n_instruments=40", "dataset.n_days=320", "strategy.topk=5", "strategy.n_drop=1"]
ROLLING = ["trainer=rolling", "trainer.step=20", "trainer.train_days=120", "trainer.valid_days=40"]
QUICK = ["model=linear", "evaluation.controls.enabled=false", "recording.plots=false"]
CAL = pd.bdate_range("2020-01-01", periods=300)


def composed(overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from qframe.app import conf_dir
    from qframe.cli import preset_parts_for_removed_groups

    # as the qframe command does: `~model` also needs the preset's model/handler parts off
    overrides = preset_parts_for_removed_groups(overrides)
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides), resolve=True)


def config(workdir: Path, *extra: str) -> dict:
    return composed([*SMALL, *ROLLING, *QUICK, *extra, f"workdir={workdir}"])


def children(result) -> pd.DataFrame:
    """The window runs of a rolling run: one row each, its recorded spans and status."""
    from mlflow.tracking import MlflowClient

    runs = MlflowClient(result.tracking_uri).search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    rows = [
        {
            "window": int(r.data.params["window.index"]),
            "run_id": r.info.run_id,
            "status": r.info.status,
            **{s: r.data.params[f"window.{s}"] for s in ("train", "valid", "test")},
        }
        for r in runs
    ]
    return pd.DataFrame(rows).sort_values("window").reset_index(drop=True)


def predictions(result) -> pd.Series:
    path = Path(result.artifact_uri.removeprefix("file://")) / "pred.parquet"
    return pd.read_parquet(path).set_index(["datetime", "instrument"])["score"]


# ---------------------------------------------------------------------------------------------------------------------
# window generation


def test_sliding_windows_tile_the_test_span_with_the_label_gap():
    windows = rolling_windows(CAL, (200, 300), 2, step=30, window="sliding", train_days=100, valid_days=20)
    assert [w.test for w in windows] == [(200, 230), (230, 260), (260, 290), (290, 300)]  # the last one is cut
    for w in windows:
        # the gap is the horizon: the last valid label (close of day + horizon + 1) is known on the first test day
        assert w.valid[1] + 2 == w.test[0]
        assert w.train[1] == w.valid[0] and w.valid[1] - w.valid[0] == 20
        assert w.train[1] - w.train[0] == 100  # sliding: the same length each time
    assert windows[1].train[0] - windows[0].train[0] == 30


def test_expanding_windows_keep_the_first_start():
    windows = rolling_windows(CAL, (200, 300), 1, step=50, window="expanding", train_days=100, valid_days=20)
    assert [w.train[0] for w in windows] == [windows[0].train[0]] * 2
    assert windows[1].train[1] - windows[0].train[1] == 50
    assert windows[0].valid[1] + 1 == windows[0].test[0]


def test_calendar_edges_cut_the_first_train_span_or_refuse():
    # the first windows reach before the calendar's start: cut at day 0 while they keep enough train days
    windows = rolling_windows(CAL, (60, 120), 1, step=20, train_days=500, valid_days=20)
    assert windows[0].train == (0, 39) and windows[-1].train == (0, 79)
    with pytest.raises(ConfigError, match="trainer.train_days"):
        rolling_windows(CAL, (25 + MIN_TRAIN_DAYS - 1, 120), 1, step=20, train_days=500, valid_days=20, gap=5)
    with pytest.raises(ConfigError, match="shorter than the label horizon"):
        rolling_windows(CAL, (200, 300), 5, step=20, train_days=100, valid_days=20, gap=2)
    with pytest.raises(ConfigError, match="trainer.window"):
        rolling_windows(CAL, (200, 300), 1, window="growing")


def test_a_generators_leaky_or_overlapping_windows_are_refused():
    leaky = [Window(0, (0, 50), (50, 100), (100, 120))]  # valid ends the day before the test: the label crosses
    with pytest.raises(ConfigError, match="label horizon"):
        check_windows(leaky, (100, 200), 1, "plugin")
    overlapping = [Window(0, (0, 50), (50, 90), (100, 130)), Window(1, (0, 50), (50, 90), (120, 140))]
    with pytest.raises(ConfigError, match="overlaps"):
        check_windows(overlapping, (100, 200), 1, "plugin")


# ---------------------------------------------------------------------------------------------------------------------
# the forked jobs


def _marking(args: tuple[Path, bool]) -> int:
    """A task that leaves a marker when it starts, then fails or succeeds."""
    marker, fails = args
    marker.touch()
    if fails:
        raise ValueError("this task fails")
    return 1


def _appears(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.05)
    return path.exists()


def test_the_next_job_starts_before_a_finished_one_is_handled_unless_it_failed(tmp_path):
    """With one slot, the second task is already running while the caller handles the first's outcome (its keep
    and child run overlap the next fit); after a failure nothing starts until the caller has seen it."""
    from qframe.launch.pool import fork_map

    ok = fork_map(_marking, [(k, (tmp_path / f"ok-{k}", False)) for k in range(2)], slots=1, poll=0.05)
    first = next(ok)
    assert first.ok and first.key == 0
    assert _appears(tmp_path / "ok-1", 20)  # started while the caller still holds outcome 0
    assert [o.key for o in ok] == [1]
    failing = fork_map(
        _marking, [(0, (tmp_path / "bad-0", True)), (1, (tmp_path / "bad-1", False))], slots=1, poll=0.05
    )
    first = next(failing)
    assert not first.ok and "this task fails" in first.error
    assert not _appears(tmp_path / "bad-1", 1.0)
    failing.close()
    assert not (tmp_path / "bad-1").exists()


# ---------------------------------------------------------------------------------------------------------------------
# a study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A rolling study run in this process: (workdir, config, result)."""
    from qframe.core.workflow import run_workflow

    workdir = tmp_path_factory.mktemp("rolling") / ".qframe"
    cfg = config(workdir)
    return workdir, cfg, run_workflow(cfg)


def assert_each_test_day_predicted_once_out_of_sample(
    windows: pd.DataFrame, scores: pd.Series, cal: pd.DatetimeIndex, test: tuple, horizon: int
) -> None:
    """Every day of the ``test`` segment (``[lo, hi]``) is predicted, each (day, instrument) once, by exactly one
    window (``windows``: the recorded child runs), whose train and valid spans, labels included, end before it."""
    assert scores.index.is_unique
    test_lo, test_hi = (pd.Timestamp(d) for d in test)
    expected_days = cal[(cal >= test_lo) & (cal <= test_hi)]
    assert sorted(set(scores.index.get_level_values("datetime"))) == list(expected_days)
    pos = {d: i for i, d in enumerate(cal)}
    owners = []
    for day in expected_days:
        # the window whose recorded test span holds the day: exactly one
        holding = [
            row
            for row in windows.itertuples()
            if pd.Timestamp(row.test.split("..")[0]) <= day <= pd.Timestamp(row.test.split("..")[1])
        ]
        assert len(holding) == 1, day
        row = holding[0]
        fit_end = max(pd.Timestamp(row.train.split("..")[1]), pd.Timestamp(row.valid.split("..")[1]))
        # its last fit label (close of fit_end + horizon + 1) was known on the day it predicts
        assert pos[fit_end] + horizon + 1 <= pos[day]
        owners.append(row.window)
    assert owners == sorted(owners)


def test_every_test_date_is_predicted_once_out_of_sample(study):
    from qframe.core import rolling
    from qframe.core.registry import get_registry

    workdir, cfg, result = study
    _, inputs, _ = rolling.load_inputs(cfg, get_registry(), workdir / "cache", rolling.Progress())
    windows = children(result)
    assert list(windows["window"]) == [0, 1, 2, 3] and set(windows["status"]) == {"FINISHED"}
    horizon = cfg["handler"]["label"]["horizon"]
    test = result.settings["segments"]["test"]
    assert_each_test_day_predicted_once_out_of_sample(
        windows, predictions(result), inputs.panel.calendar, test, horizon
    )


def test_the_result_is_the_concatenation_of_the_windows_own_fits(study):
    """Each window refitted here by hand (its spans, its processors, a fresh ridge) and the slices concatenated:
    the run's predictions, and its IC, are exactly those."""
    from qframe.core import rolling
    from qframe.core.evaluation import signal_analysis
    from qframe.core.registry import get_registry

    workdir, cfg, result = study
    _, inputs, _ = rolling.load_inputs(cfg, get_registry(), workdir / "cache", rolling.Progress())
    by_hand = pd.concat([rolling.run_window(cfg, inputs.panel, w, str(workdir / "hand"))[0] for w in inputs.windows])
    recorded = predictions(result)
    pd.testing.assert_index_equal(recorded.index, by_hand.index)
    np.testing.assert_allclose(recorded.to_numpy(), by_hand.to_numpy(), rtol=1e-6, atol=1e-7)
    _, summary = signal_analysis(by_hand, inputs.raw_test_label)
    assert result.metrics["IC"] == pytest.approx(summary["IC"], rel=1e-6)
    table = pd.read_csv(Path(result.artifact_uri.removeprefix("file://")) / "windows.csv")
    assert list(table["status"]) == ["done"] * 4 and table["predictions"].sum() == len(recorded)


class KillingLinear(LinearModel):
    """Ridge whose third fit (the third window run) kills its own process once: a window that crashes."""

    def __init__(self, log: str, **params) -> None:
        super().__init__(**params)
        self.log = Path(log)

    def fit(self, X, y, X_valid, y_valid):
        fits = self.log.read_text().count("\n") if self.log.exists() else 0
        with self.log.open("a") as f:
            f.write(f"{len(y)}\n")
        marker = self.log.with_suffix(".killed")
        if fits == 2 and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().fit(X, y, X_valid, y_valid)


def _killing(tmp_path: Path) -> list[str]:
    return [
        "~model",
        f"+model={{_target_: test_rolling.KillingLinear, log: '{tmp_path / 'fits.log'}', alpha: 0.1}}",
    ]


def test_a_killed_window_fails_the_run_and_the_same_command_resumes(study, tmp_path):
    from qframe.core.rolling import WindowFailed
    from qframe.core.workflow import run_workflow

    cfg = config(tmp_path / ".qframe", *_killing(tmp_path))
    with pytest.raises(WindowFailed, match=r"rolling window 2 .*SIGKILL.*run the same command again"):
        run_workflow(cfg)
    assert (tmp_path / "fits.log").read_text().count("\n") == 3  # windows 0, 1 and the killed 2
    result = run_workflow(cfg)
    # only the killed window and the one never started were fitted again
    assert (tmp_path / "fits.log").read_text().count("\n") == 5
    assert result.settings["model_info"]["windows_resumed"] == 2
    np.testing.assert_allclose(predictions(result).to_numpy(), predictions(study[2]).to_numpy(), rtol=1e-6)
    # the kept windows are a cache entry: `qframe cache clear` removes them
    from qframe import cache_cli

    workdir = tmp_path / ".qframe"
    assert [e.kind for e in cache_cli.entries(workdir)].count("rolling") == 1
    assert cache_cli.main(["clear", "--kind", "rolling", "--workdir", str(workdir)]) == 0
    assert not list((workdir / "cache" / "rolling").glob("*/window-*"))


def test_skip_leaves_a_failed_window_out(tmp_path):
    from qframe.core.workflow import run_workflow

    cfg = config(tmp_path / ".qframe", *_killing(tmp_path), "trainer.on_window_failure=skip")
    result = run_workflow(cfg)
    windows = children(result)
    assert list(windows["status"]) == ["FINISHED", "FINISHED", "FAILED", "FINISHED"]
    days = set(predictions(result).index.get_level_values("datetime"))
    lo, hi = (pd.Timestamp(d) for d in windows.loc[2, "test"].split(".."))
    assert not any(lo <= d <= hi for d in days) and len(days) > 0
    assert result.settings["model_info"]["windows_skipped"] == 1


def test_settings_are_checked_before_any_work(tmp_path):
    from qframe.core.workflow import run_workflow

    with pytest.raises(ConfigError, match="on_window_failure"):
        run_workflow(config(tmp_path, "trainer.on_window_failure=retry"))
    with pytest.raises(ConfigError, match="from_run .* trainer=rolling"):
        run_workflow(config(tmp_path, "from_run=last"))


def test_a_rolling_run_is_an_ordinary_run(study):
    """``from_run`` re-evaluates its concatenated predictions; ``qframe runs`` lists it, not its window runs."""
    from qframe.core.workflow import run_workflow

    workdir, _, result = study
    again = run_workflow(composed([*SMALL, *QUICK, f"from_run={result.run_id}", f"workdir={workdir}"]))
    assert again.metrics["IC"] == pytest.approx(result.metrics["IC"], rel=1e-9)
    proc = services.run_qframe(["runs"], workdir.parent)
    assert proc.returncode == 0, proc.stderr
    assert result.run_id in proc.stdout
    assert not any(run_id in proc.stdout for run_id in children(result)["run_id"])


def test_each_window_run_records_the_process_it_ran_in(study):
    """Forked windows: each window's run is tagged with its own process, on this host (no Ray: node = host)."""
    from mlflow.tracking import MlflowClient

    _, _, result = study
    client = MlflowClient(result.tracking_uri)
    study_tags = client.get_run(result.run_id).data.tags
    windows = [client.get_run(run_id).data.tags for run_id in children(result)["run_id"]]
    assert {w["qframe.host"] for w in windows} == {w["qframe.node"] for w in windows} == {study_tags["qframe.host"]}
    assert study_tags["qframe.pid"] not in {w["qframe.pid"] for w in windows}


# ---------------------------------------------------------------------------------------------------------------------
# the command


def test_ray_launcher_runs_the_windows_as_ray_tasks(tmp_path, study):
    """``hydra/launcher=ray``: three windows as tasks of a local Ray instance (its own temp dir); the same result
    as the forked windows (the study above, one window fewer)."""
    ray_tmp = tempfile.mkdtemp(prefix="qfray", dir="/tmp")  # Ray's socket paths must stay short
    env = {**services.qframe_env(), "RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "disabled"}
    args = [*SMALL, *ROLLING, *QUICK, "trainer.step=22", "hydra/launcher=ray", f"workdir={tmp_path / '.qframe'}"]
    proc = subprocess.run(
        [sys.executable, "-m", "qframe", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / '.qframe' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("qframe").experiment_id])
    windows = [r for r in runs if r.data.tags.get("qframe.window") is not None]
    assert len(windows) == 3 and {r.info.status for r in windows} == {"FINISHED"}
    (study_run,) = [r for r in runs if r.data.tags.get("qframe.window") is None]
    assert study_run.data.params["fit.executor"] == "ray"
    # each window ran in a Ray worker of the local instance: its node's id, a process other than the study's
    assert len({r.data.tags["qframe.node"] for r in windows}) == 1
    study_tags = study_run.data.tags
    assert windows[0].data.tags["qframe.node"] != study_tags["qframe.node"] == study_tags["qframe.host"]
    assert study_tags["qframe.pid"] not in {r.data.tags["qframe.pid"] for r in windows}
    assert not any(k.startswith("fit.qframe.") for k in windows[0].data.params)


def test_the_app_resolves_executor_auto_from_the_hydra_launcher():
    """``trainer.executor=auto`` reaches the core explicit: ``ray`` under Hydra's Ray launcher, ``fork`` under
    qframe's (the launchers' real targets, as composed); an explicit choice and a single run are left alone."""
    from hydra import compose, initialize_config_dir

    from qframe.app import conf_dir, resolve_executor

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        targets = {
            launcher: str(
                compose("config", [f"hydra/launcher={launcher}"], return_hydra_config=True).hydra.launcher._target_
            )
            for launcher in ("ray", "qframe")
        }
    resolved = {}
    for launcher, target in targets.items():
        for choice in ("auto", "fork", "ray"):
            cfg = config(Path("unused"), f"trainer.executor={choice}")
            resolve_executor(cfg, target)
            resolved[launcher, choice] = cfg["trainer"]["executor"]
    assert resolved == {
        ("ray", "auto"): "ray", ("ray", "fork"): "fork", ("ray", "ray"): "ray",
        ("qframe", "auto"): "fork", ("qframe", "fork"): "fork", ("qframe", "ray"): "ray",
    }  # fmt: skip
    cfg = composed(SMALL)
    resolve_executor(cfg, targets["ray"])
    assert "executor" not in cfg["trainer"]


def test_from_run_with_a_trainer_is_one_line_error(tmp_path):
    proc = services.run_qframe([*SMALL, "trainer=rolling", "from_run=last", f"workdir={tmp_path}"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qframe: error: from_run") and "trainer=rolling" in lines[0]


# ---------------------------------------------------------------------------------------------------------------------
# features once for every window


class CountingAlpha158(Alpha158):
    """Alpha158 that appends its process id to ``log`` at each computation: the feature stage, counted across
    processes (the study's, its window jobs, a sweep's forked jobs)."""

    def __init__(self, log: str, **params) -> None:
        super().__init__(**params)
        self.log = Path(log)

    def compute(self, market):
        with self.log.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return super().compute(market)


def _counting(log: Path) -> list[str]:
    # the feature cache off: a window or a job that needed the features would have to compute them again
    return ["~handler.features", f"+handler.features={{_target_: test_rolling.CountingAlpha158, log: '{log}'}}",
            "handler.cache=false"]  # fmt: skip


def study_run(workdir: Path) -> SimpleNamespace:
    """The one study run (not a window's) of the store in ``workdir``, shaped as a RunResult where tests read it."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("qframe").experiment_id])
    (run,) = [r for r in runs if r.data.tags.get("qframe.window") is None]
    return SimpleNamespace(
        tracking_uri=uri,
        experiment_id=run.info.experiment_id,
        run_id=run.info.run_id,
        artifact_uri=run.info.artifact_uri,
    )


def test_the_feature_stage_runs_once_for_every_window(tmp_path):
    """A 4-window study with the feature cache off computes its features once, in the study's process: no window
    job computes them (each gets the panel from its parent)."""
    from qframe.core.workflow import run_workflow

    log = tmp_path / "features.log"
    result = run_workflow(config(tmp_path / ".qframe", *_counting(log)))
    assert set(children(result)["status"]) == {"FINISHED"} and len(children(result)) == 4
    assert log.read_text().splitlines() == [str(os.getpid())]


def test_a_grid_of_studies_on_the_fork_launcher_computes_the_features_once(tmp_path):
    """``qframe -m trainer=rolling model.alpha=0.1,10``: the fork launcher's parent preloads the features once and
    both studies' 4 windows run on them (the cache off, so a job that missed the preloaded inputs would compute)."""
    log = tmp_path / "features.log"
    env = {**services.qframe_env(), "PYTHONPATH": str(Path(__file__).parent)}
    grid = ["-m", *SMALL, *ROLLING, *QUICK, "trainer.step=32", "model.alpha=0.1,10"]  # 2 windows a study
    args = [*grid, *_counting(log), f"workdir={tmp_path / '.qframe'}"]
    proc = subprocess.run(
        [sys.executable, "-m", "qframe", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(log.read_text().splitlines()) == 1, log.read_text()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / '.qframe' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("qframe").experiment_id])
    studies = [r for r in runs if r.data.tags.get("qframe.window") is None]
    windows = [r for r in runs if r.data.tags.get("qframe.window") is not None]
    assert len(studies) == 2 and {r.info.status for r in studies} == {"FINISHED"}
    assert len(windows) == 4 and {r.info.status for r in windows} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in windows} == {r.info.run_id for r in studies}


# ---------------------------------------------------------------------------------------------------------------------
# a sequence model


def test_a_windowed_gru_study_predicts_each_test_day_once_out_of_sample(tmp_path):
    """``trainer=rolling model=gru model.window=5``: real torch fits (2 epochs) in each window's forked job, the
    time-series sampler looking back from each test slice; every test day predicted once, by a window whose spans
    end before it (from the recorded spans)."""
    from qframe.core import rolling
    from qframe.core.registry import get_registry

    workdir = tmp_path / ".qframe"
    gru = ["model=gru", "handler=alpha158", "handler.features.windows=[5,10]", "model.window=5",
           "model.hidden_size=8", "model.num_layers=1", "model.max_epochs=2", "model.progress=false",
           "model.num_threads=1", "model.device=cpu"]  # fmt: skip
    # 2 windows of 32 days
    overrides = [
        *SMALL,
        *ROLLING,
        "trainer.step=32",
        "evaluation.controls.enabled=false",
        "recording.plots=false",
        *gru,
    ]
    proc = services.run_qframe([*overrides, f"workdir={workdir}"], tmp_path, timeout=600)  # 56 s at load 15 on 2 cores
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = study_run(workdir)
    windows = children(result)
    assert list(windows["window"]) == [0, 1] and set(windows["status"]) == {"FINISHED"}
    cfg = composed([*overrides, f"workdir={workdir}"])
    _, inputs, _ = rolling.load_inputs(cfg, get_registry(), workdir / "cache", rolling.Progress())
    scores = predictions(result)
    assert np.isfinite(scores.to_numpy()).all()
    test = inputs.bounds["test"]
    horizon = cfg["handler"]["label"]["horizon"]
    assert_each_test_day_predicted_once_out_of_sample(windows, scores, inputs.panel.calendar, test, horizon)
