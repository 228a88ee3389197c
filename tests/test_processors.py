import numpy as np
import pandas as pd
import pytest

from qframe.core.errors import ConfigError
from qframe.core.handler import prepare
from qframe.core.panel import Panel
from qframe.core.registry import get_registry
from qframe.plugins.processors.processors import (
    CSRankNorm,
    CSZScoreNorm,
    DropnaLabel,
    Fillna,
    RobustZScoreNorm,
    ZScoreNorm,
)


def make_panel(seed=0, n_days=6, n_inst=5, n_feat=3):
    rng = np.random.default_rng(seed)
    day = np.repeat(np.arange(n_days), n_inst).astype(np.int32)
    inst = np.tile(np.arange(n_inst), n_days).astype(np.int32)
    X = rng.normal(2.0, 3.0, (len(day), n_feat)).astype(np.float32)
    X[3, 1] = np.nan
    y = rng.normal(0, 1, len(day)).astype(np.float32)
    y[7] = np.nan
    cal = pd.bdate_range("2021-01-01", periods=n_days)
    return Panel(X, y, day, inst, [f"f{i}" for i in range(n_feat)], cal, pd.Index([f"I{i}" for i in range(n_inst)]))


def test_cs_zscore_matches_pandas_groupby():
    p = make_panel()
    out = CSZScoreNorm().transform(p)
    frame = pd.DataFrame(p.X.astype(np.float64))
    expected = frame.groupby(p.day).transform(lambda x: (x - x.mean()) / x.std())
    np.testing.assert_allclose(out.X, expected.to_numpy(), rtol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(out.y, p.y)  # features only


def test_cs_zscore_on_label_and_robust():
    p = make_panel()
    out = CSZScoreNorm(fields="label").transform(p)
    expected = pd.Series(p.y.astype(np.float64)).groupby(p.day).transform(lambda x: (x - x.mean()) / x.std())
    np.testing.assert_allclose(out.y, expected.to_numpy(), rtol=1e-5, equal_nan=True)
    robust = CSZScoreNorm(method="robust").transform(p)
    frame = pd.DataFrame(p.X.astype(np.float64))
    med = frame.groupby(p.day).transform("median")
    mad = (frame - med).abs().groupby(p.day).transform("median")
    np.testing.assert_allclose(robust.X, ((frame - med) / (1.4826 * mad)).to_numpy(), rtol=1e-5, equal_nan=True)


def test_cs_rank_norm_matches_qlib_formula():
    p = make_panel()
    out = CSRankNorm().transform(p)
    ranks = pd.DataFrame(p.X).groupby(p.day).rank(pct=True)
    np.testing.assert_allclose(out.X, ((ranks - 0.5) * 3.46).to_numpy(), rtol=1e-6, equal_nan=True)


def test_fillna_and_dropna_label():
    p = make_panel()
    assert np.isnan(p.X).any()
    assert not np.isnan(Fillna(fill_value=-1).transform(p).X).any()
    assert Fillna(fill_value=-1).transform(p).X[3, 1] == -1
    dropped = DropnaLabel().transform(p)
    assert len(dropped) == len(p) - 1 and not np.isnan(dropped.y).any()


def test_zscore_and_robust_fit_on_given_segment_only():
    train, other = make_panel(seed=1), make_panel(seed=2)
    for proc in (ZScoreNorm(), RobustZScoreNorm()):
        proc.fit(train)
        before = {k: v.copy() for k, v in proc.state().items()}
        proc.transform(other)  # transforming other data must not refit
        for k, v in proc.state().items():
            np.testing.assert_array_equal(v, before[k])
    z = ZScoreNorm()
    z.fit(train)
    np.testing.assert_allclose(z.state()["mean"], np.nanmean(train.X, axis=0), rtol=1e-6)
    robust = RobustZScoreNorm()
    robust.fit(train)
    assert np.abs(robust.transform(other).X[~np.isnan(other.X)]).max() <= 3


def test_bad_processor_config():
    with pytest.raises(ConfigError, match="fields"):
        ZScoreNorm(fields="labels")
    with pytest.raises(ConfigError, match="method"):
        CSZScoreNorm(method="mad")


def test_prepare_fits_stateful_processors_on_train_only(small_market):
    """Changing valid/test data leaves fitted parameters unchanged; changing train data changes them."""
    handler = {
        "features": {"name": "alpha158"},
        "label": {"horizon": 1},
        "processors": [{"name": "zscore_norm"}, {"name": "robust_zscore_norm"}],
        "learn_processors": [{"name": "dropna_label"}],
        "cache": False,
    }
    segments = {"fractions": [0.5, 0.25, 0.25]}
    registry = get_registry()
    base = prepare(small_market, registry, handler, segments, cache_dir=None)
    train_end = base.bounds["train"][1]

    def perturbed(after_train: bool):
        m = small_market
        t = m.calendar > train_end if after_train else m.calendar <= train_end
        fields = {k: v.copy() for k, v in m.fields.items()}
        for k in ("open", "high", "low", "close", "vwap"):
            fields[k][t] *= 1 + np.random.default_rng(5).normal(0, 0.05, fields[k][t].shape)
        fields["volume"][t] *= 3.0
        return type(m)(m.calendar, m.instruments, fields, benchmark=m.benchmark)

    changed_later = prepare(perturbed(True), registry, handler, segments, cache_dir=None)
    for a, b in zip(base.processors, changed_later.processors, strict=True):
        for key, value in a.state().items():
            # features at the train/valid boundary may look forward only through the label, never the features
            np.testing.assert_array_equal(value, b.state()[key])
    assert not np.array_equal(base.segments["test"].X, changed_later.segments["test"].X, equal_nan=True)

    changed_train = prepare(perturbed(False), registry, handler, segments, cache_dir=None)
    assert not np.allclose(base.processors[0].state()["mean"], changed_train.processors[0].state()["mean"])
