"""Alpha158 against Qlib 0.9.7's own output on the qlib_small fixture, column by column.

Tolerance: rtol 1e-4 wherever Qlib's value is finite, plus atol 1e-9, which only
matters for values within ~1e-5 of zero (RESI on 2-bar windows and the CNT/SUM
ratios are exact zeros in Qlib; a few RSQR/BETA values are ~1e-7). NaN must sit
exactly where Qlib's NaN is. Compared on the (date, instrument) rows of the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qframe.core import ops
from qframe.core.data import MarketData
from qframe.core.errors import ConfigError
from qframe.core.features import FeatureResult, label
from qframe.plugins.features.alpha158 import Alpha158

FIXTURE = Path(__file__).parent / "fixtures" / "qlib_small"
RTOL, ATOL = 1e-4, 1e-9
FIELDS = ("open", "high", "low", "close", "volume", "vwap")

QLIB = pd.read_parquet(FIXTURE / "alpha158.parquet")
QLIB_COLUMNS = [c for c in QLIB.columns if c not in ("instrument", "date")]


def _market(fields: tuple[str, ...] = FIELDS) -> MarketData:
    bars = pd.read_parquet(FIXTURE / "ohlcv.parquet")
    calendar = pd.DatetimeIndex(sorted(bars["date"].unique()))
    instruments = pd.Index(sorted(bars["instrument"].unique()))
    wide = {
        k: bars.pivot(index="date", columns="instrument", values=k)
        .reindex(index=calendar, columns=instruments)
        .to_numpy(np.float64)
        for k in fields
    }
    return MarketData(calendar=calendar, instruments=instruments, fields=wide, name="qlib_small")


@pytest.fixture(scope="module")
def market() -> MarketData:
    return _market()


@pytest.fixture(scope="module")
def result(market: MarketData) -> FeatureResult:
    return Alpha158().compute(market)


@pytest.fixture(scope="module")
def rows(market: MarketData) -> tuple[np.ndarray, np.ndarray]:
    """Row/column positions in the (T, N) arrays of each row of alpha158.parquet."""
    t = market.calendar.get_indexer(pd.DatetimeIndex(QLIB["date"]))
    n = market.instruments.get_indexer(QLIB["instrument"])
    assert (t >= 0).all() and (n >= 0).all()
    return t, n


def _assert_matches(name: str, mine: np.ndarray, ref: np.ndarray) -> None:
    mine, ref = mine.astype(np.float64), ref.astype(np.float64)
    nan_mine, nan_ref = np.isnan(mine), np.isnan(ref)
    assert (nan_mine == nan_ref).all(), (
        f"{name}: NaN pattern differs at {np.count_nonzero(nan_mine != nan_ref)} rows "
        f"(qframe NaN where Qlib has a value: {np.count_nonzero(nan_mine & ~nan_ref)})"
    )
    finite = np.isfinite(ref)
    np.testing.assert_allclose(mine[finite], ref[finite], rtol=RTOL, atol=ATOL, err_msg=name)


def test_names_follow_qlib_order() -> None:
    expressions = pd.read_csv(FIXTURE / "alpha158_expressions.csv")
    names = Alpha158().names()
    assert len(names) == 158
    assert names == QLIB_COLUMNS[:-1] == list(expressions["name"])[:-1]


@pytest.mark.parametrize("name", QLIB_COLUMNS[:-1])
def test_feature_matches_qlib(name: str, result: FeatureResult, rows) -> None:
    t, n = rows
    _assert_matches(name, result.column(name)[t, n], QLIB[name].to_numpy())


def test_label_matches_qlib(market: MarketData, rows) -> None:
    t, n = rows
    lab = label(market)
    assert lab.dtype == np.float32 and lab.shape == market.shape
    _assert_matches("LABEL0", lab[t, n], QLIB["LABEL0"].to_numpy())


def test_label_horizon(market: MarketData) -> None:
    close = market.fields["close"]
    lab = label(market, horizon=3)
    expected = close[4:] / close[1:-3] - 1
    # float32 arithmetic, like Qlib's: ratio - 1 keeps ~6e-8 absolute error
    np.testing.assert_allclose(lab[:-4], expected, rtol=1e-6, atol=1e-7)
    assert np.isnan(lab[-4:]).all()


def test_result_layout(result: FeatureResult, market: MarketData) -> None:
    T, N = market.shape
    assert result.values.shape == (T, N, 158) and result.values.dtype == np.float32
    assert result.dropped == {}
    # rows outside an instrument's stored bars (before listing / after delisting) are NaN
    listed_late = int(np.argmax(np.isnan(market.fields["close"][0])))
    assert np.isnan(result.values[0, listed_late]).all()


def test_close_only_market(result: FeatureResult, rows) -> None:
    close_only = Alpha158().compute(_market(("close",)))
    assert len(close_only.names) + len(close_only.dropped) == 158
    assert close_only.names == [n for n in Alpha158().names() if n not in close_only.dropped]
    expected = {"ROC", "MA", "STD", "BETA", "RSQR", "RESI", "QTLU", "QTLD", "RANK"}
    expected |= {"CNTP", "CNTN", "CNTD", "SUMP", "SUMN", "SUMD"}
    assert {n.rstrip("0123456789") for n in close_only.names} == expected
    assert close_only.dropped["KMID"] == "needs $open"
    assert close_only.dropped["KLEN"] == "needs $open, $high, $low"
    assert close_only.dropped["VWAP0"] == "needs $vwap"
    assert close_only.dropped["CORR5"] == "needs $volume"
    assert close_only.dropped["RSV20"] == "needs $high, $low"
    t, n = rows
    for name in close_only.names:  # the same numbers as with the full market
        _assert_matches(name, close_only.column(name)[t, n], QLIB[name].to_numpy())


def test_include_exclude_and_config() -> None:
    a = Alpha158(windows=[5, 20], include=["kbar", "MA", "CORR"], exclude=["KLEN"])
    assert a.names() == ["KMID", "KMID2", "KUP", "KUP2", "KLOW", "KLOW2", "KSFT", "KSFT2", "MA5", "MA20"] + [
        "CORR5",
        "CORR20",
    ]
    assert a.config()["windows"] == [5, 20]
    assert a.config() != Alpha158().config()
    with pytest.raises(ConfigError, match="unknown include/exclude"):
        Alpha158(include=["NOPE"])


def test_subset_matches_full(result: FeatureResult, market: MarketData) -> None:
    sub = Alpha158(windows=[10], include=["RANK", "IMXD", "WVMA"]).compute(market)
    for name in sub.names:
        np.testing.assert_array_equal(sub.column(name), result.column(name))


def test_registered_through_hook() -> None:
    from qframe.plugins import features

    seen = {}
    features.register_feature_sets(register=lambda name, obj, description="": seen.setdefault(name, obj))
    assert seen["alpha158"].resolve() is Alpha158


# ----------------------------------------------------------------------------- operators vs pandas/Qlib semantics


@pytest.fixture(scope="module")
def gappy() -> np.ndarray:
    """A (T, N) float32 panel with a late listing, suspended days and ties."""
    rng = np.random.default_rng(3)
    x = np.round(20 + np.cumsum(rng.normal(0, 0.3, (120, 6)), axis=0), 1).astype(np.float32)
    x[:17, 2] = np.nan  # listed on row 17
    x[rng.random(x.shape) < 0.08] = np.nan
    x[30:34, 4] = np.nan  # a long suspension
    return x


def _per_column(x: np.ndarray, fn) -> np.ndarray:
    """Qlib's way: each instrument alone, over its rows from its first stored bar."""
    out = np.full(x.shape, np.nan)
    for j in range(x.shape[1]):
        first = int(np.argmax(~np.isnan(x[:, j])))
        out[first:, j] = fn(pd.Series(x[first:, j].astype(np.float64))).to_numpy()
    return out


@pytest.mark.parametrize("window", [1, 5, 20])
def test_ops_match_pandas_rolling(gappy: np.ndarray, window: int) -> None:
    def roll(s: pd.Series):
        return s.rolling(window, min_periods=1)

    cases = {
        "mean": (ops.mean(gappy, window), lambda s: roll(s).mean()),
        "sum": (ops.rolling_sum(gappy, window), lambda s: roll(s).sum()),
        "std": (ops.std(gappy, window), lambda s: roll(s).std()),
        "max": (ops.rolling_max(gappy, window), lambda s: roll(s).max()),
        "min": (ops.rolling_min(gappy, window), lambda s: roll(s).min()),
        "quantile": (ops.quantile(gappy, window, 0.8), lambda s: roll(s).quantile(0.8)),
        "rank": (ops.rank(gappy, window), lambda s: roll(s).rank(pct=True)),
        "idxmax": (ops.idxmax(gappy, window), lambda s: roll(s).apply(lambda a: a.argmax() + 1, raw=True)),
        "idxmin": (ops.idxmin(gappy, window), lambda s: roll(s).apply(lambda a: a.argmin() + 1, raw=True)),
    }
    listed = np.arange(len(gappy))[:, None] >= ops.first_stored(gappy)[None, :]
    for name, (mine, qlib_way) in cases.items():
        ref = _per_column(gappy, qlib_way)
        np.testing.assert_allclose(mine[listed], ref[listed], rtol=1e-9, atol=1e-12, err_msg=name)


def test_linreg_matches_per_window_ols(gappy: np.ndarray) -> None:
    window = 6
    lr = next(ops.linreg(gappy, [window]))
    for t in range(len(gappy)):
        for j in range(gappy.shape[1]):
            win = gappy[max(0, t - window + 1) : t + 1, j].astype(np.float64)
            pos = np.arange(window - len(win) + 1, window + 1)[~np.isnan(win)]
            y = win[~np.isnan(win)]
            if len(y) < 2:
                assert np.isnan(lr.slope[t, j])
                continue
            slope, intercept = np.polyfit(pos, y, 1)
            np.testing.assert_allclose(lr.slope[t, j], slope, rtol=1e-8, atol=1e-12)
            today = gappy[t, j]
            expected_resi = np.nan if np.isnan(today) else today - (slope * window + intercept)
            np.testing.assert_allclose(lr.resi[t, j], expected_resi, rtol=1e-6, atol=1e-9)
            if np.std(y) > 1e-4:
                r = np.corrcoef(pos, y)[0, 1]
                np.testing.assert_allclose(lr.rsquare[t, j], r * r, rtol=1e-8, atol=1e-12)
