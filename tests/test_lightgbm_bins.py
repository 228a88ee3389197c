"""LightGBM's binned Datasets reused across fits on the same data: same trees, fewer binnings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas.testing as pd_testing
import pytest
from test_plugins import compose  # the resolved config of the `qframe` command, small market

from qframe.core.context import FitCache, RunContext, TrialIdentity, locate
from qframe.plugins.models.lightgbm import LightGBMModel
from qframe.plugins.models.lightgbm_bins import BINS_DIR, binning_params

SMALL = {"num_boost_round": 40, "early_stopping_rounds": 10, "num_leaves": 15, "num_threads": 1}


def data(seed=0, n=4000, f=6):
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 1.0, (n, f)).astype(np.float32)
    X[rng.random(n) < 0.1, 1] = np.nan
    # a feature that is 0 but on 30 rows: a leaf of 50 rows cannot split on it, one of 10 can
    X[:, 3] = 0.0
    X[rng.choice(n, 30, replace=False), 3] = 1.0
    y = (X[:, 0] - 0.5 * np.nan_to_num(X[:, 1]) + 2.0 * X[:, 3] + rng.normal(0, 1, n)).astype(np.float32)
    return X[:3000], y[:3000], X[3000:], y[3000:]


def fit(cache, X, y, Xv, yv, **params):
    model = LightGBMModel(**{**SMALL, **params})
    model.fit(X, y, Xv, yv, fit_cache=cache)
    return model


def test_reused_bins_give_the_same_trees_and_every_bin_parameter_has_its_own(tmp_path):
    X, y, Xv, yv = data()
    cache = FitCache(tmp_path, "inputs-a")
    alone = fit(None, X, y, Xv, yv)
    first = fit(cache, X, y, Xv, yv)
    again = fit(cache, X, y, Xv, yv)
    assert (alone.bins, first.bins, again.bins) == ("built", "stored", "reused")
    assert set(again.fit_timings) == {"binning", "boosting"} and min(again.fit_timings.values()) > 0
    for model in (first, again):
        np.testing.assert_array_equal(model.predict(Xv), alone.predict(Xv))
        assert model.booster.best_iteration == alone.booster.best_iteration
    # boosting settings keep the bins (by any alias); the reused ones give the trees a fresh binning gives
    boosting = {"learning_rate": 0.3, "colsample_bytree": 0.7, "lambda_l2": 5.0, "num_leaves": 7}
    tuned = fit(cache, X, y, Xv, yv, **boosting)
    assert tuned.bins == "reused"
    np.testing.assert_array_equal(tuned.predict(Xv), fit(None, X, y, Xv, yv, **boosting).predict(Xv))
    # what changes the bins, the data or its identity gets bins of its own
    assert fit(cache, X, y, Xv, yv, max_bin=31).bins == "stored"
    assert fit(cache, X, y, Xv, yv, max_bin=31).bins == "reused"
    assert fit(cache, X, y * 2, Xv, yv).bins == "stored"
    assert fit(FitCache(tmp_path, "inputs-b"), X, y, Xv, yv).bins == "stored"
    entries = [p for p in (tmp_path / BINS_DIR).iterdir() if p.is_dir()]
    assert len(entries) == 4 and all((p / "train.bin").is_file() and (p / "valid.bin").is_file() for p in entries)


def test_min_data_in_leaf_changes_the_bins_only_while_the_pre_filter_uses_it(tmp_path):
    X, y, Xv, yv = data(seed=1)
    cache = FitCache(tmp_path, "inputs")
    # the pre-filter (LightGBM's default) drops feature 3 for leaves of 50 rows: a Dataset of its own
    fit(cache, X, y, Xv, yv, min_data_in_leaf=50)
    small_leaves = fit(cache, X, y, Xv, yv, min_data_in_leaf=10)
    assert small_leaves.bins == "stored"
    np.testing.assert_array_equal(small_leaves.predict(Xv), fit(None, X, y, Xv, yv, min_data_in_leaf=10).predict(Xv))
    # without the pre-filter the bins are the same for every leaf size, and so are the trees
    off = {"feature_pre_filter": False}
    assert fit(cache, X, y, Xv, yv, min_data_in_leaf=50, **off).bins == "stored"
    for leaf in (10, 200):
        reused = fit(cache, X, y, Xv, yv, min_data_in_leaf=leaf, **off)
        assert reused.bins == "reused"
        np.testing.assert_array_equal(
            reused.predict(Xv), fit(None, X, y, Xv, yv, min_data_in_leaf=leaf, **off).predict(Xv)
        )
    assert "min_data_in_leaf" in binning_params({"min_data_in_leaf": 5})
    assert "min_data_in_leaf" not in binning_params({"min_child_samples": 5, "feature_pre_filter": False})
    assert binning_params({"max_bin": 63, "learning_rate": 0.1, "seed": 1}) == {"max_bin": 63, "seed": 1}


def test_the_trials_of_a_sweep_reuse_the_bins_and_say_how_long_binning_took(tmp_path):
    """A single run stores its bins, two trials of one sweep on the same data load them (with reuse_bins off a
    run bins its own), and each records the binning and the boosting apart; the metrics are the single run's."""
    from mlflow.tracking import MlflowClient

    from qframe.core.workflow import run_workflow

    lgb = (
        "model=lightgbm",
        "model.num_boost_round=30",
        "model.lambda_l1=1",
        "model.lambda_l2=1",
        "model.num_threads=1",
    )
    cfg = compose(tmp_path, *lgb, "evaluation.controls.enabled=false", "recording.plots=false")
    location = locate(cfg)
    single = run_workflow(cfg)
    trials = [run_workflow(cfg, RunContext(location, TrialIdentity(n))) for n in (0, 1)]
    alone = run_workflow(compose(tmp_path, *lgb, "evaluation.controls.enabled=false", "recording.plots=false",
                                 "model.reuse_bins=false"))  # fmt: skip
    client = MlflowClient(location.tracking_uri)
    bins = [client.get_run(r.run_id).data.params["fit.bins"] for r in (single, *trials, alone)]
    assert bins == ["stored", "reused", "reused", "built"]
    for result in (single, *trials, alone):
        timings = result.timings
        assert timings["fit binning"] > 0 and timings["fit boosting"] > 0
        assert timings["fit binning"] + timings["fit boosting"] <= timings["fit"]
        assert client.get_run(result.run_id).data.metrics["time.fit_binning"] == pytest.approx(timings["fit binning"])
    for other in (*trials, alone):
        assert other.metrics == pytest.approx(single.metrics, nan_ok=True)
    # `qframe cache` lists the stored bins and clears them
    from qframe import cache_cli

    assert [e.kind for e in cache_cli.entries(location.workdir)].count("lightgbm-bins") == 1
    assert cache_cli.main(["clear", "--kind", "lightgbm-bins", "--workdir", str(location.workdir)]) == 0
    assert not list((location.cache_dir / BINS_DIR).glob("*/meta.json"))


@pytest.mark.parametrize(
    "extra",
    [
        {"bin_construct_sample_cnt": 1000},  # 1000 of 3000 rows sampled: which rows follows the model's seed
        {"bin_construct_sample_cnt": 1000, "seed": 7, "min_data_in_leaf": 50},  # pre-filter on the leaf size
        {"bin_construct_sample_cnt": 200000, "max_bin": 15},  # every row sampled
    ],
)
def test_the_lean_sample_bins_exactly_as_lightgbm_does_from_a_matrix(tmp_path, extra):
    """The train Dataset built from exact-size sampled columns (less memory) is byte for byte the one LightGBM's
    matrix path builds, with the model's whole parameters (seed included: LightGBM's Sequence path drops it and
    samples other rows), NaNs, a mostly-zero feature and values at LightGBM's zero threshold."""
    import filecmp

    import lightgbm as lgb

    from qframe.plugins.models.lightgbm_bins import ZERO_THRESHOLD, _lean_dataset_class, build

    assert _lean_dataset_class() is not None  # this LightGBM has the hook: the lean path is the one tested
    X, y, Xv, yv = data(seed=2)
    X[::7, 4] = 0.0
    X[1::11, 5] = np.float32(ZERO_THRESHOLD)  # a zero to LightGBM
    X[2::11, 5] = np.nextafter(np.float32(ZERO_THRESHOLD), np.float32(1))  # not a zero
    params = LightGBMModel(**{**SMALL, "num_threads": 2, **extra}).params
    lean = build(params, X, y, Xv, yv)
    assert isinstance(lean.train, _lean_dataset_class())
    plain = lgb.Dataset(X, label=y, params=params)
    plain_valid = lgb.Dataset(Xv, label=yv, reference=plain, params=params)
    plain.construct(), plain_valid.construct()
    for name, a, b in (("train", lean.train, plain), ("valid", lean.valid, plain_valid)):
        a.save_binary(str(tmp_path / f"lean-{name}.bin"))
        b.save_binary(str(tmp_path / f"plain-{name}.bin"))
        assert filecmp.cmp(tmp_path / f"lean-{name}.bin", tmp_path / f"plain-{name}.bin", shallow=False), name


def _predictions(result):
    import pandas as pd

    return pd.read_parquet(Path(result.artifact_uri.removeprefix("file://")) / "pred.parquet")


def test_a_warm_single_run_loads_the_bins_the_cold_one_stored_and_predicts_the_same(tmp_path):
    """Single runs with the cache on: the cold run bins and stores, the warm one loads (no binning) and predicts
    exactly what the cold one did, as does a run that bins its own (reuse_bins off) and one without the cache."""
    from mlflow.tracking import MlflowClient

    from qframe.core.workflow import run_workflow

    lgb = ("model=lightgbm", "model.num_boost_round=30", "model.lambda_l1=1", "model.lambda_l2=1")
    base = (*lgb, "model.num_threads=1", "evaluation.controls.enabled=false", "recording.plots=false")
    cold, warm = run_workflow(compose(tmp_path, *base)), run_workflow(compose(tmp_path, *base))
    own = run_workflow(compose(tmp_path, *base, "model.reuse_bins=false"))
    uncached = run_workflow(compose(tmp_path, *base, "handler.cache=false"))
    client = MlflowClient(locate(compose(tmp_path, *base)).tracking_uri)
    bins = [client.get_run(r.run_id).data.params["fit.bins"] for r in (cold, warm, own, uncached)]
    assert bins == ["stored", "reused", "built", "built"]
    expected = _predictions(cold)
    assert len(expected) > 1000 and expected.notna().all().all()
    for other in (warm, own, uncached):
        pd_testing.assert_frame_equal(_predictions(other), expected, check_exact=True)
        assert other.metrics == cold.metrics
