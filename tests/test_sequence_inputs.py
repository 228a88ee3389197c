"""Sequence inputs and suspended days: prediction windows at the test boundary, the window fill rules and
``handler.suspended``, against a direct construction and Qlib's rows of the qlib_small fixture."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import random_market

from qframe.core.errors import ConfigError
from qframe.core.handler import prepare, sample_rows
from qframe.core.panel import Panel
from qframe.core.registry import get_registry
from qframe.core.timeseries import TimeSeriesSampler

FIXTURE = Path(__file__).parent / "fixtures" / "qlib_small"
LEARN = [{"name": "dropna_label"}, {"name": "cs_zscore_norm", "fields": "label"}]


def _handler(**extra) -> dict:
    features = {"name": "alpha158", "windows": [5]}
    return {"features": features, "label": {"horizon": 1}, "processors": [], "learn_processors": LEARN,
            "cache": False, **extra}  # fmt: skip


def _suspended_before_test():
    """A market whose instrument 3 is suspended 2 days before the test segment: its two days before that have
    features but no label (DropnaLabel drops them from valid)."""
    market = random_market(n_days=120, n_inst=6, seed=4)
    segments = {"train": [None, "2020-04-10"], "valid": ["2020-04-13", "2020-05-29"], "test": ["2020-06-01", None]}
    test_lo = int(market.calendar.searchsorted(pd.Timestamp("2020-06-01")))
    market.fields["close"][test_lo - 2, 3] = np.nan
    return market, segments, test_lo


def test_prediction_windows_keep_the_days_dropna_label_removed():
    market, segments, test_lo = _suspended_before_test()
    prepared = prepare(market, get_registry(), _handler(), segments, None)
    valid, test = prepared.segments["valid"], prepared.segments["test"]
    gaps = [test_lo - 4, test_lo - 3]  # labels need the close of day+1 and day+2: NaN on these two days
    assert not ((valid.inst == 3) & np.isin(valid.day, gaps)).any()

    lookback = prepared.lookback(9)
    assert (lookback.day.min(), lookback.day.max()) == (test_lo - 9, test_lo - 1)
    mine = (lookback.inst == 3) & np.isin(lookback.day, gaps)
    assert mine.sum() == 2 and np.isfinite(lookback.X[mine]).any()
    assert np.isnan(lookback.y[mine]).all()  # the unfiltered rows: their label is NaN, and they are still here

    first = np.flatnonzero(test.inst == 3)[:1]
    from_learn = TimeSeriesSampler(test, 10, [prepared.segments["train"], valid], np.nan, False).batch(first)[0]
    from_features = TimeSeriesSampler(test, 10, [lookback], np.nan, False).batch(first)[0]
    # slots 5 and 6 of the 10 are days test_lo-4 and test_lo-3: gaps in the learn data, features in the lookback
    assert np.isnan(from_learn[5:7]).all() and np.isfinite(from_features[5:7]).any(axis=1).all()
    # day test_lo-2 has no bar at all: a gap either way; every other day is the same row
    assert np.isnan(from_features[7]).all()
    same = [k for k in range(10) if k not in (5, 6)]
    np.testing.assert_array_equal(from_learn[same], from_features[same])


def test_lookback_applies_the_shared_processors_only():
    market, segments, test_lo = _suspended_before_test()
    handler = _handler(processors=[{"name": "robust_zscore_norm", "clip_outlier": True}, {"name": "fillna"}])
    prepared = prepare(market, get_registry(), handler, segments, None)
    lookback = prepared.lookback(5)
    assert np.isfinite(lookback.X).all() and np.abs(lookback.X).max() <= 3 + 1e-6  # robust z-score + fillna
    valid = prepared.segments["valid"]
    both = np.isin(valid.day, lookback.day)
    key = lambda p, m: pd.Series(range(m.sum()), index=pd.MultiIndex.from_arrays([p.day[m], p.inst[m]]))  # noqa: E731
    a, b = key(valid, both), key(lookback, np.ones(len(lookback), bool))
    shared = a.index.intersection(b.index)
    assert len(shared) > 0 and len(shared) < len(b)  # the lookback has the rows DropnaLabel removed from valid
    np.testing.assert_array_equal(valid.X[both][a[shared].to_numpy()], lookback.X[b[shared].to_numpy()])


def test_the_workflow_predicts_from_the_lookback(tmp_path):
    torch = pytest.importorskip("torch")  # noqa: F841
    from qframe.core.workflow import _predict
    from qframe.plugins.models.torch_models import GRUModel

    market, segments, test_lo = _suspended_before_test()
    prepared = prepare(market, get_registry(), _handler(), segments, None)
    model = GRUModel(window=10, hidden_size=4, num_layers=1, max_epochs=1, progress=False, num_threads=1)
    model.fit_panel(prepared.segments["train"], prepared.segments["valid"], tmp_path)
    test = prepared.segments["test"]
    scores = _predict(model, test, prepared.lookback)
    np.testing.assert_array_equal(scores, model.predict_panel(test, history=[prepared.lookback(9)]))
    # the model's own tail of the learn segments lacks the two dropped days: instrument 3's first score differs
    tail = model.predict_panel(test)
    first = np.flatnonzero(test.inst == 3)[0]
    assert scores[first] != tail[first]
    others = test.day >= test_lo + 10  # windows entirely inside the test segment: the same either way
    np.testing.assert_array_equal(scores[others], tail[others])


def _gappy() -> Panel:
    # instrument 0: rows on days 2, 3, 6 (not 0, 1, 4, 5); instrument 1: every day 0..7
    day = np.array([0, 1, 2, 2, 3, 3, 4, 5, 6, 6, 7], dtype=np.int32)
    inst = np.array([1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1], dtype=np.int32)
    X = (day * 10 + inst).astype(np.float32)[:, None]
    return Panel(X, np.zeros(len(day), np.float32), day, inst, ["f"], pd.bdate_range("2021-01-01", periods=8),
                 pd.Index(["A", "B"]))  # fmt: skip


def test_ffill_bfill_repeats_the_nearest_day_like_qlib():
    panel = _gappy()
    row = int(np.flatnonzero((panel.day == 6) & (panel.inst == 0))[0])
    rows = np.array([row])
    zero = TimeSeriesSampler(panel, 7, fill_value=np.nan, fill_nan=False).batch(rows)[0, :, 0]
    filled = TimeSeriesSampler(panel, 7, fill_value=np.nan, fill_nan=False, fill="ffill_bfill").batch(rows)[0, :, 0]
    # window days 0..6 of instrument 0: rows on 2, 3, 6
    np.testing.assert_array_equal(zero, [np.nan, np.nan, 20, 30, np.nan, np.nan, 60])
    # Qlib's ffill+bfill of the row indices: days 4, 5 repeat day 3; days 0, 1 (before the first row) take day 2
    np.testing.assert_array_equal(filled, [20, 20, 20, 30, 30, 30, 60])
    # slots before the calendar start are back-filled as well
    first = int(np.flatnonzero((panel.day == 2) & (panel.inst == 0))[0])
    early = TimeSeriesSampler(panel, 5, fill="ffill_bfill").batch(np.array([first]))[0, :, 0]
    np.testing.assert_array_equal(early, [20] * 5)
    with pytest.raises(ConfigError, match="ffill_bfill"):
        TimeSeriesSampler(panel, 3, fill="nearest")


def test_window_fill_is_a_model_setting():
    pytest.importorskip("torch")
    from qframe.plugins.models.torch_models import GRUModel

    panel = _gappy()
    model = GRUModel(window=7, window_fill="ffill_bfill", input_norm="none", progress=False)
    src = model._source(panel)
    row = int(np.flatnonzero((panel.day == 6) & (panel.inst == 0))[0])
    np.testing.assert_array_equal(src.batch(np.array([row]))[0, :, 0], [20, 20, 20, 30, 30, 30, 60])
    plain = GRUModel(window=7, input_norm="none", progress=False)._source(panel)
    np.testing.assert_array_equal(plain.batch(np.array([row]))[0, :, 0], [0, 0, 20, 30, 0, 0, 60])
    with pytest.raises(ConfigError, match="model.window_fill"):
        GRUModel(window=7, window_fill="bfill")


# ---- handler.suspended against Qlib's rows (the qlib_small fixture) ---------------------------------------------


def _qlib_market():
    from qframe.plugins.datasets.qlib_bin import QlibBinDataset

    return QlibBinDataset(provider_uri=str(FIXTURE / "qlib_bin"), market="csi300").load()


def test_suspended_keep_gives_qlibs_rows():
    market = _qlib_market()
    ref = pd.read_parquet(FIXTURE / "alpha158.parquet", columns=["instrument", "date", "LABEL0"])
    bars = pd.read_parquet(FIXTURE / "ohlcv.parquet", columns=["instrument", "date", "close"])
    suspended = bars[bars["close"].isna()].set_index(["date", "instrument"]).index
    keep, drop = sample_rows(market, "keep"), sample_rows(market, "drop")
    t, n = np.nonzero(keep & ~drop)
    extra = pd.MultiIndex.from_arrays([market.calendar[t], market.instruments[n]])
    # the rows "keep" adds are exactly the suspended days of csi300 members, each a row of Qlib's data
    members = pd.MultiIndex.from_arrays([market.calendar[np.nonzero(market.universe)[0]],
                                         market.instruments[np.nonzero(market.universe)[1]]])  # fmt: skip
    assert len(extra) > 0 and set(extra) == set(suspended.intersection(members))
    qlib_rows = ref.set_index(["date", "instrument"]).index
    assert set(extra) <= set(qlib_rows)
    with pytest.raises(ConfigError, match="handler.suspended"):
        prepare(market, get_registry(), _handler(suspended="skip"), {}, None)


def test_reused_runs_label_the_same_rows():
    """``from_run`` re-evaluates predictions on the test rows; with ``suspended=keep`` they include suspended days."""
    from qframe.core.reuse import label_of_test

    market = _qlib_market()
    for rule in ("drop", "keep"):
        prepared = prepare(market, get_registry(), _handler(suspended=rule), {}, None)
        again = label_of_test(market, {"suspended": rule, "label": {"horizon": 1}}, prepared.bounds)
        assert again.index.equals(prepared.raw_test_label.index)
    assert len(label_of_test(market, {"suspended": "keep"}, prepared.bounds)) > len(
        label_of_test(market, {}, prepared.bounds)
    )


def test_filter_col_keeps_the_panels_order_and_refuses_unknown_names():
    from qframe.plugins.processors.processors import FilterCol

    panel = _gappy()
    wide = Panel(np.c_[panel.X, panel.X * 2, panel.X * 3], panel.y, panel.day, panel.inst, ["a", "b", "c"],
                 panel.calendar, panel.instruments)  # fmt: skip
    out = FilterCol(col_list=["c", "a"]).transform(wide)
    assert out.names == ["a", "c"]  # the panel's order, as Qlib's FilterCol
    np.testing.assert_array_equal(out.X, wide.X[:, [0, 2]])
    with pytest.raises(ConfigError, match="RESI5 not among"):
        FilterCol(col_list=["a", "RESI5"]).transform(wide)
    with pytest.raises(ConfigError, match="col_list is empty"):
        FilterCol(col_list=[])
