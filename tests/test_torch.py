"""The PyTorch models (mlp, gru, alstm): planted signal found, early stopping, checkpoints and resume, determinism,
saving without pickle, config errors, MLflow step metrics; all on CPU with small data."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from qframe.core.errors import ConfigError  # noqa: E402
from qframe.core.evaluation import signal_analysis  # noqa: E402
from qframe.core.handler import prepare  # noqa: E402
from qframe.core.panel import Panel  # noqa: E402
from qframe.core.registry import get_registry  # noqa: E402
from qframe.plugins.datasets.synthetic import SyntheticDataset  # noqa: E402
from qframe.plugins.models.torch_models import ALSTMModel, GRUModel, MLPModel, daily_ic, load_model  # noqa: E402

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# one thread: deterministic reductions, and no oversubscription on a 2-core CI machine running other work
FAST = {"progress": False, "num_threads": 1}


def toy_panel(n_days: int = 80, n_inst: int = 50, n_feat: int = 12, seed: int = 0) -> Panel:
    """Random features with a nonlinear planted label; rows sorted by date (every instrument every day)."""
    rng = np.random.default_rng(seed)
    day = np.repeat(np.arange(n_days), n_inst).astype(np.int32)
    inst = np.tile(np.arange(n_inst), n_days).astype(np.int32)
    X = rng.normal(size=(len(day), n_feat)).astype(np.float32)
    y = (0.5 * X[:, 0] + 0.4 * np.tanh(2 * X[:, 1]) + rng.normal(size=len(day))).astype(np.float32)
    return Panel(X, y, day, inst, [f"f{i}" for i in range(n_feat)], pd.bdate_range("2020-01-01", periods=n_days),
                 pd.Index([f"S{i}" for i in range(n_inst)]))  # fmt: skip


def split(panel: Panel, frac: float = 0.75) -> tuple[Panel, Panel]:
    cut = int(np.searchsorted(panel.day, int(panel.day[-1] * frac)))
    return panel.rows(0, cut), panel.rows(cut, len(panel))


# ---- the planted signal of the synthetic market ------------------------------------------------------------------
# A stronger leak than the default market (signal_ic 0.2, volume_leak 0.6) so a few epochs on 100 x 500 days suffice.
LEARN = [{"name": "dropna_label"}, {"name": "cs_zscore_norm", "fields": "label"}]


def synthetic(features: dict, seed: int = 1):
    market = SyntheticDataset(n_instruments=100, n_days=500, seed=seed, signal_ic=0.2, volume_leak=0.6).load()
    handler = {"features": features, "label": {"horizon": 1}, "processors": [], "learn_processors": LEARN}
    return prepare(market, get_registry(), {**handler, "cache": False}, {"fractions": [0.6, 0.2, 0.2]}, None)


def test_ic_over_test_segment(prepared, model) -> float:
    train, valid, test = (prepared.segments[s] for s in ("train", "valid", "test"))
    model.fit_panel(train, valid)
    _, summary = signal_analysis(test.series(model.predict_panel(test), "score"), prepared.raw_test_label)
    return summary["IC"]


test_ic_over_test_segment.__test__ = False  # a helper, not a test


def test_mlp_finds_the_planted_signal():
    # Test-segment IC (raw label) over market seeds 1-4: 0.079-0.137 (measured); ~100 test days of ~50 names give
    # a standard error of ~0.014 for the mean daily IC, and a model without the signal sits at 0. Band: > 0.05.
    prepared = synthetic({"name": "alpha158"})
    model = MLPModel(max_epochs=8, batch_size=1024, **FAST)
    assert test_ic_over_test_segment(prepared, model) > 0.05


def test_gru_finds_the_planted_signal_on_alpha360():
    # Qlib's layout: Alpha360's 6 series (20 days here, to stay fast) as a 20-step sequence of 6 features.
    # Seeds 1-4: 0.069-0.091 test IC (measured). Band: > 0.045.
    prepared = synthetic({"name": "alpha360", "window": 20})
    model = GRUModel(hidden_size=32, num_layers=1, max_epochs=4, batch_size=512, **FAST)
    assert test_ic_over_test_segment(prepared, model) > 0.045


def test_gru_with_the_time_series_sampler_finds_the_signal():
    # window mode: the sampler feeds the last 10 days of all Alpha158 features (windows 5, 20 here).
    # Seeds 1-4: 0.076-0.108 test IC (measured). Band: > 0.045.
    prepared = synthetic({"name": "alpha158", "windows": [5, 20]})
    model = GRUModel(window=10, hidden_size=16, num_layers=1, max_epochs=3, batch_size=512, **FAST)
    assert test_ic_over_test_segment(prepared, model) > 0.045


# ---- training mechanics on a toy panel -----------------------------------------------------------------------------
def test_early_stopping_restores_the_best_weights():
    train, valid = split(toy_panel(n_days=40))
    # a wide net with a high learning rate on 1,500 rows overfits within a few epochs
    model = MLPModel(hidden_sizes=[256, 256], dropout=0.0, lr=0.01, max_epochs=60, early_stop=3, lr_patience=0,
                     batch_size=128, **FAST)  # fmt: skip
    model.fit_panel(train, valid)
    losses = [h["valid_loss"] for h in model.history]
    info = model.info()
    assert info["epochs"] < 60 and info["epochs"] - info["best_epoch"] == 3  # stopped early, 3 epochs after the best
    pred = model.predict_panel(valid)
    final_loss = float(np.mean((pred - valid.y.astype(np.float64)) ** 2))
    assert final_loss == pytest.approx(min(losses), rel=1e-6)
    assert final_loss < losses[-1]  # the last epoch was worse: the weights were really restored


def test_early_stopping_on_valid_ic():
    train, valid = split(toy_panel(n_days=40))
    model = MLPModel(early_stop_metric="ic", max_epochs=12, early_stop=2, batch_size=256, **FAST)
    model.fit_panel(train, valid)
    ics = [h["valid_ic"] for h in model.history]
    assert daily_ic(model.predict_panel(valid), valid.y, valid.day) == pytest.approx(max(ics), rel=1e-6)


def test_same_seed_gives_identical_predictions():
    train, valid = split(toy_panel())
    params = {"hidden_sizes": [64, 32], "dropout": 0.2, "max_epochs": 3, "batch_size": 256, **FAST}
    runs = []
    for seed in (7, 7, 8):
        model = MLPModel(seed=seed, **params)
        model.fit_panel(train, valid)
        runs.append(model.predict_panel(valid))
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    gru = [GRUModel(window=5, hidden_size=8, num_layers=1, max_epochs=2, batch_size=512, **FAST) for _ in range(2)]
    preds = []
    for model in gru:
        model.fit_panel(train, valid)
        preds.append(model.predict_panel(valid))
    assert np.array_equal(preds[0], preds[1])


def test_ic_loss_trains_on_whole_days():
    train, valid = split(toy_panel())
    model = MLPModel(loss="ic", early_stop_metric="ic", max_epochs=4, batch_size=400, **FAST)
    model.fit_panel(train, valid)
    assert daily_ic(model.predict_panel(valid), valid.y, valid.day) > 0.2  # toy label: IC of the truth ~0.55


def test_saved_as_state_dict_and_json_and_reloaded(tmp_path):
    train, valid = split(toy_panel())
    for model in (
        MLPModel(max_epochs=2, **FAST),
        ALSTMModel(d_feat=3, hidden_size=8, max_epochs=2, **FAST),  # 12 features = 3 series x 4 days
        GRUModel(window=4, hidden_size=8, num_layers=1, max_epochs=2, **FAST),
    ):
        model.fit_panel(train, valid)
        out = tmp_path / model.kind
        out.mkdir()
        files = model.save(out)
        assert sorted(f.name for f in files) == ["model.json", "model.pt"]
        state = torch.load(out / "model.pt", weights_only=True)  # plain tensors only: no pickled module
        assert all(isinstance(v, torch.Tensor) for v in state.values())
        assert json.loads((out / "model.json").read_text())["kind"] == model.kind
        again = load_model(out)
        np.testing.assert_array_equal(again.predict_panel(valid, history=[train]),
                                      model.predict_panel(valid, history=[train]))  # fmt: skip


# ---- checkpoints: kill a real training process and resume --------------------------------------------------------
TRAIN_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_torch import FAST, MLPModel, split, toy_panel
train, valid = split(toy_panel(n_days=120, n_inst=60))
MLPModel(checkpoint_dir={ckpt!r}, max_epochs={epochs}, early_stop=0, batch_size=256, hidden_sizes=[128, 64],
         dropout=0.1, **FAST).fit_panel(train, valid)
"""


def test_killed_training_resumes_from_the_last_checkpoint(tmp_path):
    ckpt = tmp_path / "ckpt"
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAIN_SCRIPT.format(tests=str(TESTS), ckpt=str(ckpt), epochs=10_000)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            progress = ckpt / "checkpoint.json"
            if progress.exists() and json.loads(progress.read_text())["epoch"] >= 3:
                break
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.02)
        assert proc.poll() is None  # still training when killed
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    saved = json.loads((ckpt / "checkpoint.json").read_text())["epoch"]
    assert saved >= 3

    train, valid = split(toy_panel(n_days=120, n_inst=60))
    common = {"early_stop": 0, "batch_size": 256, "hidden_sizes": [128, 64], "dropout": 0.1, **FAST}
    resumed = MLPModel(checkpoint_dir=str(ckpt), resume=True, max_epochs=saved + 2, **common)
    resumed.fit_panel(train, valid)
    assert resumed.info()["resumed_from_epoch"] == saved
    assert [h["epoch"] for h in resumed.history] == list(range(1, saved + 3))  # the killed run's epochs, then 2 more
    # the resumed training took the same path as one that was never interrupted
    straight = MLPModel(checkpoint_dir=str(tmp_path / "straight"), max_epochs=saved + 2, **common)
    straight.fit_panel(train, valid)
    np.testing.assert_array_equal(resumed.predict_panel(valid), straight.predict_panel(valid))


def test_resume_without_a_checkpoint_is_a_config_error(tmp_path):
    train, valid = split(toy_panel(n_days=20))
    with pytest.raises(ConfigError, match="no checkpoint"):
        MLPModel(checkpoint_dir=str(tmp_path), resume=True, **FAST).fit_panel(train, valid)
    with pytest.raises(ConfigError, match="checkpoint_dir"):
        MLPModel(resume=True, **FAST).fit_panel(train, valid)


# ---- configuration errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "params", "key"),
    [
        ("mlp", {"optimizer": "rmsprop"}, "model.optimizer: unknown value 'rmsprop'; valid options: adam, adamw, sgd"),
        ("mlp", {"hidden_sizes": [64, 0]}, "model.hidden_sizes"),
        ("mlp", {"hidden_sizes": "512by256"}, "model.hidden_sizes"),
        ("mlp", {"lr": 0}, "model.lr"),
        ("mlp", {"loss": "mae"}, "model.loss"),
        ("mlp", {"device": "tpu"}, "model.device"),
        ("gru", {"hidden_size": 0}, "model.hidden_size"),
        ("alstm", {"rnn_type": "rnn"}, "model.rnn_type"),
    ],
)
def test_bad_config_is_a_clear_error(name, params, key):
    with pytest.raises(ConfigError) as err:
        get_registry().create("model", name, **params)
    assert key in str(err.value)


def test_hidden_sizes_scalar_forms_for_search_spaces():
    assert MLPModel(hidden_sizes="512x256").hidden_sizes == [512, 256]
    assert MLPModel(hidden_sizes=128).hidden_sizes == [128]


def test_window_longer_than_the_data_and_misfit_layout():
    train, valid = split(toy_panel(n_days=30))
    with pytest.raises(
        ConfigError,
        match=rf"model.window=40 days is longer than the train segment \({len(np.unique(train.day))} days\)",
    ):
        GRUModel(window=40, **FAST).fit_panel(train, valid)
    with pytest.raises(ConfigError, match="do not split into model.d_feat=5"):
        GRUModel(d_feat=5, **FAST).fit_panel(train, valid)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="model.device=cuda"):
            MLPModel(device="cuda", **FAST).fit_panel(train, valid)


def test_torch_is_not_imported_by_qframe_or_its_registry():
    code = (
        "import sys, qframe, qframe.app, qframe.cli\n"
        "from qframe.core.registry import get_registry\n"
        "assert {'mlp', 'gru', 'alstm'} <= set(get_registry().names('model'))\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- end to end: the qframe command records per-epoch metrics and the model --------------------------------------
def test_qframe_mlp_run_records_epoch_metrics_and_model(tmp_path):
    from mlflow.tracking import MlflowClient

    env = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    args = ["model=mlp", "model.max_epochs=3", "model.progress=false", "model.num_threads=1",
            "dataset.n_instruments=40", "dataset.n_days=320", "strategy.topk=5", "strategy.n_drop=1"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "qframe", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / '.qframe' / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    history = client.get_metric_history(run.info.run_id, "epoch.valid_loss")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert {"epoch.train_loss", "epoch.valid_ic", "epoch.lr"} <= set(run.data.metrics)
    assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} == {"model/model.pt", "model/model.json"}
    progress = tmp_path / ".qframe" / "checkpoints" / run.info.run_id / "checkpoint.json"
    assert json.loads(progress.read_text())["epoch"] == 3
