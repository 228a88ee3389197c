"""The ``qframe`` command end to end, in subprocesses, with the MLflow run read back."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["dataset.n_instruments=40", "dataset.n_days=320", "strategy.topk=5", "strategy.n_drop=1"]
# Qlib's L1/L2 penalties are sized for ~1M rows; on 5k rows they would leave the trees without a split
SMALL_LGB = ["model.num_boost_round=30", "model.lambda_l1=1", "model.lambda_l2=1"]


def qframe(args, cwd, env_extra=None, pythonpath=None, timeout=300):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "qframe", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def runs_in(store: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments])
    return client, runs


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory):
    """qframe built as a regular wheel and installed (without deps) into its own directory."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp.glob("qframe-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "qframe/conf/config.yaml" in names and "qframe/conf/model/lightgbm.yaml" in names
    site = tmp / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    return site


def test_wheel_install_runs_workflow_from_any_directory(wheel_site, tmp_path):
    """Installed as a wheel and started elsewhere, qframe finds its configs, runs, and records in MLflow."""
    where = subprocess.run(
        [sys.executable, "-c", "import qframe.app as a; print(a.__file__); print(a.conf_dir())"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(wheel_site)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(wheel_site) in where and str(ROOT / "conf") not in where

    proc = qframe([*SMALL, *SMALL_LGB], cwd=tmp_path, pythonpath=wheel_site)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for needle in ("IC", "Rank ICIR", "excess_return_with_cost", "information_ratio", "max_drawdown", "mlflow ui"):
        assert needle in out
    store = tmp_path / ".qframe" / "mlflow.db"
    assert f"sqlite:///{store}" in out

    client, runs = runs_in(store)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "lightgbm"
    assert run.data.params["strategy.topk"] == "5"
    assert run.data.params["dataset.n_instruments"] == "40"
    for metric in ("IC", "Rank IC", "ICIR", "excess_return_with_cost.information_ratio", "benchmark.max_drawdown"):
        assert metric in run.data.metrics
    for tag in ("qframe.version", "qframe.dataset_fingerprint", "qframe.host"):
        assert run.data.tags.get(tag)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "pred.parquet", "backtest_report.parquet", "cumulative_return.png", "ic.png"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} == {"model/model.lgb.txt"}
    model_file = Path(client.download_artifacts(run.info.run_id, "model/model.lgb.txt", str(tmp_path)))
    assert model_file.read_text().startswith("tree")  # LightGBM's native text format, not a pickle


def test_second_run_reuses_feature_cache_and_linear_model(tmp_path):
    first = qframe([*SMALL, "model=linear"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    second = qframe([*SMALL, "model=linear", "strategy.topk=10"], cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    client, runs = runs_in(tmp_path / ".qframe" / "mlflow.db")
    assert sorted(r.data.params["strategy.topk"] for r in runs) == ["10", "5"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert len(list((tmp_path / ".qframe" / "cache").glob("*.arrow"))) >= 1


def test_qlib_directory_and_long_table_end_to_end(tmp_path):
    """The fixture's Qlib bin directory and its long Parquet table both run through the whole workflow."""
    fixture = Path(__file__).parent / "fixtures" / "qlib_small"
    common = [
        "model=linear",
        "strategy.topk=5",
        "strategy.n_drop=1",
        "evaluation.annualization=238",
        "segments.train=[null,2020-08-31]",
        "segments.valid=[2020-09-01,2020-10-31]",
        "segments.test=[2020-11-01,null]",
    ]
    qlib = qframe(
        ["dataset=qlib", f"dataset.provider_uri={fixture / 'qlib_bin'}", "dataset.market=csi300", *common], cwd=tmp_path
    )
    assert qlib.returncode == 0, qlib.stderr[-3000:]
    table = qframe(
        [
            "dataset=csv",
            f"dataset.path={fixture / 'ohlcv.parquet'}",
            f"dataset.benchmark_path={fixture / 'benchmark.parquet'}",
            *common,
        ],
        cwd=tmp_path,
    )
    assert table.returncode == 0, table.stderr[-3000:]
    _, runs = runs_in(tmp_path / ".qframe" / "mlflow.db")
    assert sorted(r.data.params["dataset.name"] for r in runs) == ["csv", "qlib"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.params["evaluation.annualization"] == "238" for r in runs)


def test_cfg_job_prints_composed_config(tmp_path):
    proc = qframe(["--cfg", "job", "model=linear"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "name: linear" in proc.stdout and "name: topk_dropout" in proc.stdout and "name: synthetic" in proc.stdout


def one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    err = proc.stderr.strip()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("qframe: error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_unknown_component_names_valid_options(tmp_path):
    one_line_error(qframe(["model=lgbm"], cwd=tmp_path), "lgbm", "lightgbm", "linear")
    one_line_error(qframe(["strategy=topk"], cwd=tmp_path), "topk_dropout")


def test_missing_required_path(tmp_path):
    one_line_error(qframe(["dataset=csv"], cwd=tmp_path), "dataset.path")


def test_missing_data_file_marks_run_failed(tmp_path):
    line = one_line_error(qframe(["dataset=csv", "dataset.path=nowhere.csv"], cwd=tmp_path), "nowhere.csv")
    assert "not found" in line.lower() or "no such" in line.lower() or "does not exist" in line.lower()
    _, runs = runs_in(tmp_path / ".qframe" / "mlflow.db")
    assert [r.info.status for r in runs] == ["FAILED"]


def test_segments_outside_data(tmp_path):
    proc = qframe(
        [
            *SMALL,
            "segments.test=[2040-01-01,2041-01-01]",
            "segments.train=[null,2014-06-30]",
            "segments.valid=[2014-07-01,2014-09-30]",
        ],
        cwd=tmp_path,
    )
    one_line_error(proc, "segments.test", "outside")


def test_unknown_objective_and_bad_settings(tmp_path):
    one_line_error(qframe(["objective=sharpe"], cwd=tmp_path), "objective", "excess_return_with_cost.information_ratio")
    one_line_error(qframe(["evaluation.accumulation=log"], cwd=tmp_path), "accumulation", "sum", "product")


def test_debug_switch_shows_traceback(tmp_path):
    proc = qframe(["dataset=csv", "dataset.path=nowhere.csv"], cwd=tmp_path, env_extra={"QFRAME_DEBUG": "1"})
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr


def test_sweeper_params_on_the_command_line_are_force_added():
    from qframe.cli import sweeper_param_overrides

    argv = ["-m", "hydra.sweeper.params.model.lr=interval(0.1,0.2)", "++hydra.sweeper.params.x=1", "model.lr=0.1"]
    assert sweeper_param_overrides(argv) == [
        "-m",
        "++hydra.sweeper.params.model.lr=interval(0.1,0.2)",
        "++hydra.sweeper.params.x=1",
        "model.lr=0.1",
    ]
