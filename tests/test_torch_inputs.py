"""Inputs of the torch models: the Alpha360 feature set, the time-series sampler, the input sources and the batch
order of an epoch (no torch needed)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import random_market

from qframe.core.errors import ConfigError
from qframe.core.handler import prepare
from qframe.core.panel import Panel
from qframe.core.registry import get_registry
from qframe.core.timeseries import TimeSeriesSampler
from qframe.plugins.features.alpha360 import SERIES, Alpha360
from qframe.plugins.models.torch_batches import RowSource, WindowSource, train_batches


def test_alpha360_names_follow_qlib_order():
    names = Alpha360().names()
    assert len(names) == 360
    # Qlib's Alpha360DL: CLOSE59..CLOSE0, then OPEN, HIGH, LOW, VWAP, VOLUME, each from 59 days back to today
    assert names[:2] == ["CLOSE59", "CLOSE58"] and names[59] == "CLOSE0" and names[60] == "OPEN59"
    assert [n.rstrip("0123456789") for n in names[::60]] == list(SERIES)
    assert names[-1] == "VOLUME0"
    assert Alpha360(window=3).names()[:4] == ["CLOSE2", "CLOSE1", "CLOSE0", "OPEN2"]


def test_alpha360_values_match_the_definition():
    market = random_market(n_days=90, n_inst=5, seed=3)
    # a suspension inside the data: Ref looks at the calendar row, so NaN there, as Qlib's dense arrays give
    market.fields["close"][40, 2] = np.nan
    result = Alpha360().compute(market)
    f = market.fields
    t, j = 75, 2
    close = np.float32(f["close"][t, j])
    for series in ("CLOSE", "OPEN", "HIGH", "LOW", "VWAP"):
        for lag in (0, 1, 35, 59):
            expected = np.float32(f[series.lower()][t - lag, j]) / close
            np.testing.assert_allclose(result.column(f"{series}{lag}")[t, j], expected, rtol=1e-6, equal_nan=True)
    vol = np.float32(f["volume"][t, j])
    np.testing.assert_allclose(
        result.column("VOLUME7")[t, j], np.float32(f["volume"][t - 7, j]) / (vol + np.float32(1e-12)), rtol=1e-6
    )
    assert np.isnan(result.column("CLOSE35")[t, j])  # day 40 is missing
    assert result.column("CLOSE0")[t, j] == 1.0
    # fewer than 59 days of history -> NaN for the older lags only
    assert np.isnan(result.column("CLOSE59")[30, 0]) and np.isfinite(result.column("CLOSE29")[30, 0])


def test_alpha360_close_only_market_drops_the_other_series():
    market = random_market(n_days=70, n_inst=3)
    market.fields = {"close": market.fields["close"]}
    result = Alpha360(window=5).compute(market)
    assert result.names == ["CLOSE4", "CLOSE3", "CLOSE2", "CLOSE1", "CLOSE0"]
    assert result.dropped["VOLUME0"] == "needs $volume" and len(result.dropped) == 25


def test_alpha360_registered_and_bad_window():
    assert "alpha360" in get_registry().names("feature_set")
    with pytest.raises(ConfigError, match="window"):
        Alpha360(window=0)


def _panel(n_days=30, n_inst=6, n_feat=3, seed=0, drop=0.2):
    """A panel with gaps (rows missing at random), features encoding (day, instrument) for checking."""
    rng = np.random.default_rng(seed)
    keep = rng.random((n_days, n_inst)) > drop
    day, inst = np.nonzero(keep)
    X = np.stack([day * 100.0 + inst, -day.astype(float), inst.astype(float)][:n_feat], axis=1).astype(np.float32)
    return Panel(X, rng.normal(size=len(day)).astype(np.float32), day.astype(np.int32), inst.astype(np.int32),
                 [f"f{i}" for i in range(n_feat)], pd.bdate_range("2021-01-01", periods=n_days),
                 pd.Index([f"S{i}" for i in range(n_inst)]))  # fmt: skip


def _naive_windows(panel: Panel, window: int, sources: list[Panel], fill=0.0) -> np.ndarray:
    lookup = {}
    for src in sources:
        for r in range(len(src)):
            lookup[(int(src.day[r]), int(src.inst[r]))] = src.X[r]
    out = np.full((len(panel), window, panel.X.shape[1]), fill, dtype=np.float32)
    for r in range(len(panel)):
        for k in range(window):
            key = (int(panel.day[r]) - (window - 1 - k), int(panel.inst[r]))
            if key in lookup:
                out[r, k] = lookup[key]
    return out


def test_sampler_windows_match_a_naive_construction():
    panel = _panel()
    sampler = TimeSeriesSampler(panel, window=5)
    rows = np.arange(len(panel))
    np.testing.assert_array_equal(sampler.batch(rows), _naive_windows(panel, 5, [panel]))
    # the last day of each window is the row itself
    np.testing.assert_array_equal(sampler.batch(rows)[:, -1, :], panel.X)
    # the index table is the only per-panel state: a (days x instruments) int array, not per-sample copies
    assert sampler._table.shape == (int(panel.day[-1]) + 1, 6)


def test_sampler_looks_back_into_history_segments():
    full = _panel(n_days=40)
    cut = np.searchsorted(full.day, 25)
    train, test = full.rows(0, cut), full.rows(cut, len(full))
    sampler = TimeSeriesSampler(test, window=8, history=[train])
    np.testing.assert_array_equal(sampler.batch(np.arange(len(test))), _naive_windows(test, 8, [train, test]))
    # without history the first windows are padded
    alone = TimeSeriesSampler(test, window=8).batch(np.arange(len(test)))
    assert (alone[0, :-1] == 0).all()


def test_sampler_fill_and_nan():
    panel = _panel()
    panel.X[3, 1] = np.nan
    windows = TimeSeriesSampler(panel, window=4, fill_value=np.nan, fill_nan=False).batch(np.arange(len(panel)))
    assert np.isnan(windows[3, -1, 1])
    assert np.isnan(windows[0, 0]).all()  # day 0 has no earlier days
    filled = TimeSeriesSampler(panel, window=4).batch(np.arange(len(panel)))
    assert np.isfinite(filled).all()
    with pytest.raises(ConfigError, match="window"):
        TimeSeriesSampler(panel, window=0)


def test_alpha360_handler_prepares_normalised_segments():
    """The conf/handler/alpha360.yaml pipeline: robust z-score + fillna on features, rank-normalised label."""
    cfg = yaml.safe_load((Path(__file__).parents[1] / "conf/handler/alpha360.yaml").read_text())
    cfg["features"]["window"] = 10
    cfg["cache"] = False
    prepared = prepare(random_market(n_days=120, n_inst=8), get_registry(), cfg, {"fractions": [0.6, 0.2, 0.2]}, None)
    train = prepared.segments["train"]
    assert train.X.shape[1] == 60 and np.isfinite(train.X).all()
    assert np.abs(train.X).max() <= 3.0 + 1e-6


def test_row_source_reads_qlib_layout_as_days_by_series():
    # Alpha360's row: CLOSE2 CLOSE1 CLOSE0 OPEN2 OPEN1 OPEN0 -> a (3 days, 2 series) sequence, oldest day first
    X = np.array([[12, 11, 10, 22, 21, 20], [0, 0, 0, 0, 0, 0]], dtype=np.float32)
    rows = RowSource(X, None, None, d_feat=2, norm=lambda x: x)
    np.testing.assert_array_equal(rows.batch(np.array([0])), [[[12, 22], [11, 21], [10, 20]]])
    assert RowSource(X, None, None, None, norm=lambda x: x + 1).batch(np.array([1])).tolist() == [[1.0] * 6]


def test_window_source_normalises_the_sampler_windows():
    panel = _panel()
    sampler = TimeSeriesSampler(panel, window=3, fill_value=np.nan, fill_nan=False)
    source = WindowSource(sampler, panel.y, panel.day, norm=lambda x: np.nan_to_num(x, nan=-1.0))
    rows = np.arange(len(panel))
    np.testing.assert_array_equal(source.batch(rows), np.nan_to_num(sampler.batch(rows), nan=-1.0))
    assert len(source) == len(panel) and (source.batch(rows[:1])[0, 0] == -1).all()  # day 0: no earlier days


def _days_and_labels(n_days=12, seed=0):
    rng = np.random.default_rng(seed)
    day = np.repeat(np.arange(n_days), rng.integers(3, 9, n_days))
    y = rng.normal(size=len(day))
    y[rng.random(len(day)) < 0.2] = np.nan
    return day, y


def test_train_batches_of_whole_days():
    day, y = _days_and_labels()
    batches = train_batches(y, day, batch_size=10, rng=np.random.default_rng(1))
    rows = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(rows), np.flatnonzero(np.isfinite(y)))  # each labelled row once
    for batch in batches[:-1]:
        assert len(batch) >= 10
    labelled_per_day = np.bincount(day[np.isfinite(y)])
    for batch in batches:  # whole days: every labelled row of each day in the batch
        days = np.unique(day[batch])
        assert len(batch) == labelled_per_day[days].sum()
    order = [day[b[0]] for b in batches]
    assert order != sorted(order)  # days in random order
    again = train_batches(y, day, batch_size=10, rng=np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


def test_train_batches_of_random_rows():
    day, y = _days_and_labels()
    labelled = np.flatnonzero(np.isfinite(y))
    batches = train_batches(y, None, batch_size=8, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), labelled)
    assert [len(b) for b in batches[:-1]] == [8] * (len(batches) - 1)
    assert all(np.array_equal(b, np.sort(b)) for b in batches)
    assert not np.array_equal(np.concatenate(batches), labelled)  # shuffled across batches
    # a single row left over joins the batch before (BatchNorm cannot train on one row), with two batches or more
    for n, sizes in ((9, [9]), (17, [8, 9])):
        folded = train_batches(np.ones(n), None, 8, np.random.default_rng(0))
        assert [len(b) for b in folded] == sizes
        np.testing.assert_array_equal(np.sort(np.concatenate(folded)), np.arange(n))
