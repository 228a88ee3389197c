"""Sample reweighting (``reweighter=``): the built-ins' weights by hand, and that ridge, LightGBM and the torch
models fit with them as a hand computation says; the errors that refuse what cannot be weighted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qframe.core import reweight
from qframe.core.errors import ConfigError
from qframe.core.panel import Panel
from qframe.core.registry import get_registry
from qframe.plugins.models.linear import LinearModel

TESTS = Path(__file__).parent


def panel(day, inst, y=None) -> Panel:
    """A feature-less panel with these day and instrument codes (rows sorted by day)."""
    day, inst = np.asarray(day, dtype=np.int32), np.asarray(inst, dtype=np.int32)
    y = np.zeros(len(day), dtype=np.float32) if y is None else np.asarray(y, dtype=np.float32)
    calendar = pd.bdate_range("2020-01-01", periods=int(day.max()) + 1)
    instruments = pd.Index([f"I{i}" for i in range(int(inst.max()) + 1)])
    return Panel(np.zeros((len(day), 0), dtype=np.float32), y, day, inst, [], calendar, instruments)


def two_regimes(n: int = 400, seed: int = 0):
    """One feature whose effect on the label flips sign halfway: y = +x on the older half, -x on the recent one."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    sign = np.where(np.arange(n) < n // 2, 1.0, -1.0)
    y = (sign * X[:, 0] + 0.1 * rng.normal(size=n)).astype(np.float32)
    return X, y


# --------------------------------------------------------------------------------------------------------------------
# the built-in reweighters


def test_time_decay_and_equal_instrument_weights_against_hand_computations():
    registry = get_registry()
    train = panel(day=[0, 0, 1, 3, 3, 5, 5, 5], inst=[0, 1, 0, 0, 2, 0, 1, 2], y=[1, 2, 3, 4, np.nan, 6, 7, 8])
    labelled = np.isfinite(train.y)

    decay = registry.create("reweighter", "time_decay", half_life_days=2)
    raw = 0.5 ** (np.array([5, 5, 4, 2, 2, 0, 0, 0]) / 2)  # age in trading days back from day 5
    np.testing.assert_allclose(decay.reweight(train), raw, rtol=1e-12)
    weights = reweight.sample_weights(decay, "time_decay", train)
    np.testing.assert_allclose(weights, raw * labelled.sum() / raw[labelled].sum(), rtol=1e-12)
    assert weights[labelled].mean() == pytest.approx(1.0, abs=1e-12)

    equal = registry.create("reweighter", "equal_instrument")
    # labelled rows per instrument: I0 4, I1 2, I2 1 (its row on day 3 has no label: weight 0)
    raw = np.array([1 / 4, 1 / 2, 1 / 4, 1 / 4, 0.0, 1 / 4, 1 / 2, 1.0])
    np.testing.assert_allclose(equal.reweight(train), raw, rtol=1e-12)
    weights = reweight.sample_weights(equal, "equal_instrument", train)
    assert weights[labelled].mean() == pytest.approx(1.0, abs=1e-12)
    totals = np.bincount(train.inst, weights=weights)
    np.testing.assert_allclose(totals, totals[0], rtol=1e-12)  # every instrument weighs the same in total

    assert reweight.sample_weights(registry.create("reweighter", "none"), "none", train) is None


def test_bad_reweighter_settings_and_weights_are_one_line_errors():
    registry = get_registry()
    for bad in (0, -5, "abc", True, float("inf")):
        with pytest.raises(ConfigError, match=r"^reweighter\.half_life_days must be a number of trading days > 0"):
            registry.create("reweighter", "time_decay", config_key="reweighter", half_life_days=bad)
    with pytest.raises(ConfigError, match=r"unknown parameter reweighter\.half_life of .*half_life_days"):
        reweight.build_reweighter({"reweighter": {"name": "time_decay", "half_life": 5}}, registry)
    with pytest.raises(ConfigError, match="unknown reweighter 'decay'; valid options: equal_instrument, none, time"):
        reweight.build_reweighter({"reweighter": "decay"}, registry)

    train = panel(day=[0, 1, 2], inst=[0, 0, 0], y=[1, 2, 3])

    class Returns:
        def __init__(self, weights):
            self.weights = weights

        def reweight(self, train):
            return self.weights

    for weights, problem in (
        ([1.0, 2.0], r"weights of shape \(2,\) for 3 train rows"),
        ([1.0, -1.0, 1.0], "negative, NaN or infinite"),
        ([1.0, np.nan, 1.0], "negative, NaN or infinite"),
        ([0.0, 0.0, 0.0], "every labelled train row weight 0"),
    ):
        with pytest.raises(ConfigError, match=f"^reweighter 'mine' .*{problem}"):
            reweight.sample_weights(Returns(weights), "mine", train)


# --------------------------------------------------------------------------------------------------------------------
# the models honour the weights


def test_weights_change_a_ridge_fit_exactly_as_weighted_least_squares_predicts():
    rng = np.random.default_rng(1)
    X, y = two_regimes()
    X[rng.random(X.shape) < 0.05] = np.nan  # missing features: 0 after standardising, as without weights
    y[::37] = np.nan  # unlabelled rows: not fitted
    w = np.where(np.arange(len(y)) < len(y) // 2, 0.2, 1.8) * rng.uniform(0.5, 1.5, len(y))
    empty = np.empty((0, 3), dtype=np.float32)

    def hand(alpha: float, intercept: bool) -> tuple[float, np.ndarray]:
        """argmin sum w (y - c - Z b)^2 / sum w + alpha |b|^2, Z standardised with the unweighted moments."""
        keep = np.isfinite(y)
        Xk, yk, wk = X[keep].astype(np.float64), y[keep].astype(np.float64), w[keep]
        Z = np.nan_to_num((Xk - np.nanmean(Xk, axis=0)) / np.nanstd(Xk, axis=0))
        A = np.column_stack([np.ones(len(Z)), Z]) if intercept else Z
        penalty = alpha * np.eye(A.shape[1])
        if intercept:
            penalty[0, 0] = 0.0  # the intercept is not penalised
        theta = np.linalg.solve(A.T @ (A * wk[:, None]) / wk.sum() + penalty, A.T @ (wk * yk) / wk.sum())
        return (theta[0], theta[1:]) if intercept else (0.0, theta)

    for alpha, intercept in ((0.1, True), (0.0, True), (0.5, False)):
        model = LinearModel(alpha=alpha, fit_intercept=intercept)
        model.fit(X, y, empty, y[:0], sample_weight=w)
        c, b = hand(alpha, intercept)
        np.testing.assert_allclose(model.coef_, b, rtol=1e-9, atol=1e-12)
        assert model.intercept_ == pytest.approx(c, rel=1e-9, abs=1e-12)

    weighted, unweighted, constant = (LinearModel(alpha=0.1) for _ in range(3))
    weighted.fit(X, y, empty, y[:0], sample_weight=w)
    unweighted.fit(X, y, empty, y[:0])
    constant.fit(X, y, empty, y[:0], sample_weight=np.full(len(y), 3.0))
    # equal weights are the unweighted fit; weights on the recent (y = -x) half turn the slope negative
    np.testing.assert_allclose(constant.coef_, unweighted.coef_, rtol=1e-9, atol=1e-12)
    assert abs(unweighted.coef_[0]) < 0.2 and weighted.coef_[0] < -0.4


def test_weights_reach_the_lightgbm_dataset_and_change_the_model():
    import lightgbm as lgb

    from qframe.plugins.models.lightgbm import LightGBMModel

    X, y = two_regimes(n=600)
    recent = np.where(np.arange(len(y)) < len(y) // 2, 0.05, 1.95)
    seen = []
    original = lgb.Dataset.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self)

    params = {"num_boost_round": 30, "num_leaves": 4, "min_data_in_leaf": 5, "num_threads": 1, "learning_rate": 0.2}
    lgb.Dataset.__init__ = spy
    try:
        weighted = LightGBMModel(**params)
        weighted.fit(X[:500], y[:500], X[500:], y[500:], sample_weight=recent[:500])
        train_set, valid_set = seen
        np.testing.assert_array_equal(train_set.get_weight(), recent[:500].astype(np.float32))  # stored as float32
        assert valid_set.get_weight() is None  # the valid set judges early stopping unweighted
    finally:
        lgb.Dataset.__init__ = original
    unweighted = LightGBMModel(**params)
    unweighted.fit(X[:500], y[:500], X[500:], y[500:])
    grid = np.zeros((21, 3), dtype=np.float32)
    grid[:, 0] = np.linspace(-2, 2, 21)
    slope = lambda m: np.polyfit(grid[:, 0], m.predict(grid), 1)[0]  # noqa: E731
    # the recent half says y = -x: weighted trees learn a falling curve, unweighted ones a mixture
    assert slope(weighted) < -0.4 and slope(weighted) < slope(unweighted) - 0.3


def test_torch_weighted_losses_equal_the_hand_weighted_means_and_weights_change_the_net():
    import torch

    from qframe.plugins.models.torch_metrics import training_loss
    from qframe.plugins.models.torch_models import MLPModel

    pred = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0, 0.3], dtype=torch.float64)
    y = torch.tensor([1.0, 0.0, 1.5, -0.5, 0.2, 0.9], dtype=torch.float64)
    w = torch.tensor([0.5, 2.0, 1.0, 0.1, 3.0, 1.4], dtype=torch.float64)
    p, t, v = pred.numpy(), y.numpy(), w.numpy()
    mse = training_loss(pred, y, None, "mse", w)
    assert float(mse) == pytest.approx(np.sum(v * (p - t) ** 2) / v.sum(), rel=1e-12)
    assert float(training_loss(pred, y, None, "mse", torch.ones(6, dtype=torch.float64))) == pytest.approx(
        float(training_loss(pred, y, None, "mse"))
    )

    day = np.array([0, 0, 0, 1, 1, 1])
    ics, day_w = [], []
    for d in (0, 1):
        r, a, b = v[day == d], p[day == d], t[day == d]
        da, db = a - np.average(a, weights=r), b - np.average(b, weights=r)
        ics.append(np.sum(r * da * db) / np.sqrt(np.sum(r * da * da) * np.sum(r * db * db)))
        day_w.append(r.mean())  # a day weighs its rows' mean weight
    ic = training_loss(pred, y, day, "ic", w)
    assert float(ic) == pytest.approx(-np.average(ics, weights=day_w), rel=1e-9)
    assert float(training_loss(pred, y, day, "ic", torch.ones(6, dtype=torch.float64))) == pytest.approx(
        float(training_loss(pred, y, day, "ic")), rel=1e-12
    )

    X, target = two_regimes(n=256)
    recent = np.where(np.arange(len(target)) < 128, 0.02, 1.98)
    settings = {"hidden_sizes": [8], "max_epochs": 8, "batch_size": 64, "lr": 0.05, "early_stop": 0,
                "progress": False, "device": "cpu", "batch_norm": False, "dropout": 0.0, "lr_patience": 0}  # fmt: skip
    empty = np.empty((0, 3), dtype=np.float32)
    nets = {}
    for name, weights in (("weighted", recent), ("unweighted", None)):
        model = MLPModel(**settings)
        model.fit(X, target, empty, target[:0], sample_weight=weights)
        nets[name] = model
    grid = np.zeros((21, 3), dtype=np.float32)
    grid[:, 0] = np.linspace(-1.5, 1.5, 21)
    slope = {k: np.polyfit(grid[:, 0], m.predict(grid), 1)[0] for k, m in nets.items()}
    assert slope["weighted"] < -0.4 and slope["weighted"] < slope["unweighted"] - 0.3, slope


# --------------------------------------------------------------------------------------------------------------------
# a model that cannot take weights


def test_a_model_without_sample_weight_and_a_reweighter_is_refused_before_data_loads(tmp_path):
    from adhoc_components import MeanOfFeatures

    registry = get_registry()
    reweight.check_model(MeanOfFeatures(), "mean", "none")  # nothing to weigh: fine
    for name in ("lightgbm", "linear", "mlp", "gru", "alstm"):  # every built-in model takes them
        assert reweight.takes_weights(registry.create("model", name)), name
    # the CLI: one line, exit 2, and the market is never loaded (its file does not exist)
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "qframe"),
            "~model",
            "+model={_target_:adhoc_components.MeanOfFeatures}",
            "reweighter=equal_instrument",
            "dataset=csv",
            "dataset.path=/nonexistent/prices.csv",
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(TESTS), "MLFLOW_DISABLE_TELEMETRY": "true", "HOME": "/tmp"},
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "qframe: error: reweighter=equal_instrument: model 'adhoc_components.MeanOfFeatures' cannot take sample "
        "weights (its fit has no sample_weight parameter); use reweighter=none, or a model that honours them "
        "(lightgbm, linear, mlp, gru, alstm)"
    ]


def test_a_re_evaluation_takes_the_source_runs_reweighter():
    """``from_run`` re-evaluates predictions a weighted fit made: the new run records the source's reweighter (a
    run recorded before reweighters existed was unweighted), and a reweighter override is refused as doing nothing."""
    from qframe.core import reuse

    sections = {"model": {"name": "linear"}, "handler": {"label": {"horizon": 1}}}
    weighted = {**sections, "reweighter": {"name": "time_decay", "half_life_days": 60.0}}
    cfg = {"model": {"name": "lightgbm"}, "handler": {}, "reweighter": {"name": "none"}, "from_run": "last"}
    for recorded, expected in ((weighted, weighted["reweighter"]), (sections, {"name": "none"})):
        source = reuse.SourceRun("abc123", "", recorded, pd.Series(dtype=float))
        adopted = reuse.adopt(cfg, source)
        assert adopted["reweighter"] == expected and adopted["model"] == {"name": "linear"}
    with pytest.raises(ConfigError, match="made by its own model, handler and reweighter: reweighter.half_life_days"):
        reuse.check_overrides(["from_run=last", "reweighter.half_life_days=30"])
