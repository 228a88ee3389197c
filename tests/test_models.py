import json

import lightgbm as lgb
import numpy as np
import pytest

from qframe.core.errors import ConfigError
from qframe.plugins.models.lightgbm import LightGBMModel
from qframe.plugins.models.linear import LinearModel


def data(n=5000, f=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(1.0, 2.0, (n, f)).astype(np.float32)
    y = (X[:, 0] * 0.5 - X[:, 2] * 0.25 + rng.normal(0, 1, n)).astype(np.float32)
    return X, y


def test_linear_equals_dense_ridge_solution():
    X, y = data()
    X[::11, 1] = np.nan
    y[::13] = np.nan
    model = LinearModel(alpha=0.3)
    model.fit(X, y, X[:0], y[:0])
    keep = np.isfinite(y)
    Xk, yk = X[keep].astype(np.float64), y[keep].astype(np.float64)
    mean, std = np.nanmean(Xk, axis=0), np.nanstd(Xk, axis=0)
    Z = np.nan_to_num((Xk - mean) / std)
    n = len(yk)
    coef = np.linalg.solve(Z.T @ Z / n + 0.3 * np.eye(X.shape[1]), Z.T @ (yk - yk.mean()) / n)
    np.testing.assert_allclose(model.coef_, coef, rtol=1e-8)
    np.testing.assert_allclose(model.predict(X[:5]), np.nan_to_num((X[:5] - mean) / std) @ coef + yk.mean(), rtol=1e-8)


def test_linear_saves_json_not_pickle(tmp_path):
    X, y = data()
    model = LinearModel()
    model.fit(X, y, X[:0], y[:0])
    (path,) = model.save(tmp_path)
    assert json.loads(path.read_text())["coef_"] == pytest.approx(model.coef_.tolist())


def test_lightgbm_early_stops_on_valid_and_saves_native_text(tmp_path):
    X, y = data(seed=1)
    Xv, yv = data(n=2000, seed=2)
    model = LightGBMModel(
        num_boost_round=2000, early_stopping_rounds=20, num_leaves=7, learning_rate=0.2, num_threads=1
    )
    model.fit(X, y, Xv, yv)
    best = model.info()["best_iteration"]
    assert 0 < best < 2000  # stopped early on the valid segment
    (path,) = model.save(tmp_path)
    booster = lgb.Booster(model_file=str(path))
    np.testing.assert_allclose(booster.predict(Xv[:50]), model.predict(Xv[:50]), rtol=1e-12)
    assert booster.current_iteration() == best


def test_bad_model_config():
    with pytest.raises(ConfigError, match="model.loss"):
        LightGBMModel(loss="mape")
    with pytest.raises(ConfigError, match="model.alpha"):
        LinearModel(alpha=-1)
