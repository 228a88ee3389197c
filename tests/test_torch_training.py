"""The parts of the torch trainer on their own: losses and validation scores, early-stopping bookkeeping,
checkpoints, and who hears of each epoch (the workflow's progress, MLflow)."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from qframe.core.errors import ConfigError  # noqa: E402
from qframe.core.evaluation import mean_daily_ic  # noqa: E402
from qframe.core.progress import Progress  # noqa: E402
from qframe.plugins.models.torch_checkpoint import Checkpoint  # noqa: E402
from qframe.plugins.models.torch_metrics import ic_loss, training_loss, validation_scores  # noqa: E402
from qframe.plugins.models.torch_models import TrainingProgress  # noqa: E402
from qframe.plugins.models.torch_nets import build_net  # noqa: E402
from qframe.plugins.models.torch_reporting import EpochProgress, log_epoch_metrics  # noqa: E402


def _days(seed=0):
    rng = np.random.default_rng(seed)
    day = np.repeat([4, 9, 11, 30], [30, 25, 1, 40])  # day 11 has one row: no correlation
    pred = rng.normal(size=len(day))
    y = 0.4 * pred + rng.normal(size=len(day))
    return pred, y, day


def test_ic_loss_is_minus_the_evaluation_ic_and_trains():
    pred, y, day = _days()
    codes = torch.from_numpy(np.unique(day, return_inverse=True)[1])
    p = torch.tensor(pred, requires_grad=True)
    loss = ic_loss(p, torch.tensor(y), codes, 4)
    assert float(loss.detach()) == pytest.approx(-mean_daily_ic(pred, y, day), rel=1e-9)
    loss.backward()
    # a small step against the gradient raises the daily IC
    stepped = (p - 0.5 * p.grad).detach().numpy()
    assert mean_daily_ic(stepped, y, day) > mean_daily_ic(pred, y, day)


def test_training_loss_by_day_codes():
    pred, y, day = _days(1)
    p, t = torch.tensor(pred), torch.tensor(y)
    assert float(training_loss(p, t, None, "mse")) == pytest.approx(np.mean((pred - y) ** 2), rel=1e-12)
    # day codes need not be dense; without them the batch is one cross-section
    assert float(training_loss(p, t, day * 1000, "ic")) == pytest.approx(-mean_daily_ic(pred, y, day), rel=1e-9)
    assert float(training_loss(p, t, None, "ic")) == pytest.approx(-np.corrcoef(pred, y)[0, 1], rel=1e-9)


def test_validation_scores_on_the_labelled_rows():
    pred, y, day = _days(2)
    y = y.astype(np.float32)  # labels come as float32, predictions as float64
    y[::5] = np.nan
    ok = np.isfinite(y)
    mse, ic = validation_scores(pred, y, day, "mse")
    assert mse == pytest.approx(np.mean((pred[ok] - y[ok]) ** 2), rel=1e-12)
    assert ic == mean_daily_ic(pred, y, day)
    assert validation_scores(pred, y, day, "ic") == (-ic, ic)


def test_training_progress_books_the_best_epoch_and_stops():
    progress = TrainingProgress()
    improved = []
    for epoch, score in enumerate([1.0, 0.8, 0.9, float("nan"), 0.85], start=1):
        assert not progress.done
        improved.append(progress.end_epoch({"epoch": epoch, "valid_loss": score}, score, False, patience=3))
    assert improved == [True, True, False, False, False]
    assert (progress.best_epoch, progress.best_score, progress.bad_epochs, progress.epoch) == (2, 0.8, 3, 5)
    assert progress.done and [h["epoch"] for h in progress.history] == [1, 2, 3, 4, 5]
    higher = TrainingProgress()
    flags = [higher.end_epoch({"epoch": e}, s, True, patience=0) for e, s in enumerate([0.1, 0.3, 0.2, 0.1], 1)]
    assert flags == [True, True, False, False] and higher.best_epoch == 2 and not higher.done  # 0: never stops


def test_checkpoint_restores_the_same_network_only(tmp_path):
    spec = {"input_dim": 3, "hidden_sizes": [4], "activation": "relu", "dropout": 0.0, "batch_norm": False}
    torch.manual_seed(0)
    net = build_net("mlp", spec)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.ones(2, 3)).sum().backward()
    opt.step()
    best = {k: v.clone() for k, v in net.state_dict().items()}
    state = {"epoch": 4, "best_epoch": 2, "history": [{"epoch": 1, "train_loss": math.nan}]}
    Checkpoint(tmp_path / "new", spec).save(net, opt, None, best, state)
    assert (tmp_path / "new" / "checkpoint.json").read_text() == '{"epoch": 4, "best_epoch": 2}'
    again = build_net("mlp", spec)
    again_opt = torch.optim.Adam(again.parameters(), lr=0.1)
    restored, restored_best = Checkpoint(tmp_path / "new", spec).restore(again, again_opt, None, torch.device("cpu"))
    assert restored["epoch"] == 4 and math.isnan(restored["history"][0]["train_loss"])
    assert all(torch.equal(again.state_dict()[k], v) for k, v in net.state_dict().items())
    assert again_opt.state_dict()["state"][0]["step"] == 1
    assert all(torch.equal(restored_best[k], v) for k, v in best.items())
    wider = {**spec, "hidden_sizes": [8]}
    with pytest.raises(ConfigError, match="is of another network"):
        Checkpoint(tmp_path / "new", wider).restore(build_net("mlp", wider), again_opt, None, torch.device("cpu"))


def test_epoch_progress_is_told_to_the_workflow_progress():
    progress = Progress()
    progress.start("model")
    record = {"epoch": 2, "train_loss": 0.5, "lr": 0.001, "valid_loss": 0.25, "valid_ic": 0.125}
    with EpochProgress("mlp", 5, start=1, show_bar=True, reporter=progress) as shown:
        assert not shown.show_bar  # the workflow's display replaces the model's own bar
        shown.update(record)
    assert progress.finish().detail == "epoch 2/5  train_loss 0.5  valid_loss 0.25  valid_ic 0.125"


def test_epoch_metrics_go_to_the_active_mlflow_run_without_nan(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        log_epoch_metrics({"epoch": 1, "train_loss": 0.5})  # no active run: nothing to do
        with mlflow.start_run() as run:
            log_epoch_metrics({"epoch": 1, "train_loss": 0.5, "lr": 0.01, "valid_loss": math.nan})
            log_epoch_metrics({"epoch": 2, "train_loss": 0.4, "lr": 0.01, "valid_loss": 0.9})
        client = mlflow.tracking.MlflowClient()
        history = {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)]
                   for k in ("epoch.train_loss", "epoch.valid_loss")}  # fmt: skip
    finally:
        mlflow.set_tracking_uri(before)
    assert history == {"epoch.train_loss": [(1, 0.5), (2, 0.4)], "epoch.valid_loss": [(2, 0.9)]}
    assert "epoch.epoch" not in client.get_run(run.info.run_id).data.metrics
