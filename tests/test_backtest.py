"""TopK-dropout backtest against Qlib 0.9.7's backtest_daily on the qlib_small fixture, plus trading rules."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qframe.core.backtest import REPORT_COLUMNS
from qframe.core.data import MarketData
from qframe.core.errors import ConfigError
from qframe.core.evaluation import risk_report
from qframe.plugins import strategies
from qframe.plugins.strategies.topk_dropout import TopkDropoutStrategy

FIXTURE = Path(__file__).parent / "fixtures" / "qlib_small"
FIELDS = ("open", "high", "low", "close", "volume", "vwap", "factor", "change")


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((FIXTURE / "qlib_reference.json").read_text())


@pytest.fixture(scope="module")
def market() -> MarketData:
    bars = pd.read_parquet(FIXTURE / "ohlcv.parquet")
    bench = pd.read_parquet(FIXTURE / "benchmark.parquet").set_index("date")["close"]
    calendar = pd.DatetimeIndex(bench.index, name="datetime")
    instruments = pd.Index(sorted(bars["instrument"].unique()))
    fields = {
        f: bars.pivot(index="date", columns="instrument", values=f)
        .reindex(index=calendar, columns=instruments)
        .to_numpy(dtype=np.float64)
        for f in FIELDS
    }
    return MarketData(calendar=calendar, instruments=instruments, fields=fields, benchmark=bench, name="qlib_small")


@pytest.fixture(scope="module")
def pred() -> pd.Series:
    df = pd.read_parquet(FIXTURE / "pred.parquet").rename(columns={"date": "datetime"})
    return df.set_index(["datetime", "instrument"])["score"]


@pytest.fixture(scope="module")
def qlib_report() -> pd.DataFrame:
    return pd.read_parquet(FIXTURE / "backtest_report.parquet").set_index("date")


def _run(pred, market, reference, **kwargs):
    bt = reference["backtest"]
    ex = bt["exchange"]
    strategy = TopkDropoutStrategy(
        topk=5,
        n_drop=1,
        account=bt["account"],
        deal_price=ex["deal_price"],
        open_cost=ex["open_cost"],
        close_cost=ex["close_cost"],
        min_cost=ex["min_cost"],
        limit_threshold=ex["limit_threshold"],
        **kwargs,
    )
    return strategy, strategy.backtest(pred, market, start=bt["start"], end=bt["end"])


@pytest.fixture(scope="module")
def run(pred, market, reference):
    return _run(pred, market, reference)


def test_report_matches_qlib(run, qlib_report):
    # Qlib deals in float64 (its quote reaches the account as Python floats), and the engine repeats its
    # sequential cash / cost / turnover sums, so cash, total_cost and total_turnover come out bit-identical.
    # The only residual is summation order of the stock value: Qlib adds positions in Python-set order, we
    # with np.sum, which moves account / value by <= 3e-16 relative (one or two ulps), and the rates derived
    # from them by <= 4e-16 absolute (e.g. `return` of the first buying day is -1.7e-16 in Qlib: pure noise).
    _, report = run
    assert list(report.columns) == list(REPORT_COLUMNS)
    assert report.index.name == "datetime"
    np.testing.assert_array_equal(report.index.to_numpy(), qlib_report.index.to_numpy())
    for col in ("account", "value", "cash", "total_cost", "total_turnover"):
        np.testing.assert_allclose(report[col], qlib_report[col], rtol=1e-15, atol=0, err_msg=col)
    for col in ("return", "turnover", "cost"):
        np.testing.assert_allclose(report[col], qlib_report[col], rtol=0, atol=2e-15, err_msg=col)
    # the benchmark is float32 data; its return is taken in float32 exactly as Qlib does: bit-identical
    np.testing.assert_array_equal(report["bench"].to_numpy(), qlib_report["bench"].to_numpy())


def test_signal_dated_t_trades_on_next_day(run, pred):
    strategy, report = run
    # no score exists for the day before the first day, so nothing trades then; the first score buys the next day
    assert report["turnover"].iloc[0] == 0 and report["turnover"].iloc[1] > 0
    first = pred.xs(report.index[0], level="datetime").nlargest(5).index
    held = strategy.last_positions.iloc[1]
    assert set(held[held > 0].index) == set(first)


def test_risk_of_own_report_matches_qlib(run, reference):
    _, report = run
    got = risk_report(report, N=238, mode="sum")
    for key, want in reference["risk"].items():
        block, metric = key.split(".")
        assert got[block][metric] == pytest.approx(want, rel=1e-11, abs=1e-15), key


def test_trade_unit_in_real_shares(run, market):
    strategy, report = run
    pos = strategy.last_positions.to_numpy()
    lo = market.calendar.get_loc(report.index[0])
    factor = market.fields["factor"][lo : lo + len(report)]
    bought = np.diff(np.vstack([np.zeros(pos.shape[1]), pos]), axis=0) > 0
    real = pos[bought] * factor[bought]
    assert real.size > 0
    np.testing.assert_allclose(real, np.round(real / 100) * 100, atol=1e-6)
    assert (np.round(real / 100) >= 1).all()


def test_cost_at_least_min_cost_per_trade(run, reference):
    strategy, report = run
    pos = strategy.last_positions.to_numpy()
    changed = np.diff(np.vstack([np.zeros(pos.shape[1]), pos]), axis=0) != 0
    n_trades = changed.sum(axis=1)
    day_cost = np.diff(np.concatenate([[0.0], report["total_cost"].to_numpy()]))
    day_turnover = np.diff(np.concatenate([[0.0], report["total_turnover"].to_numpy()]))
    ex = reference["backtest"]["exchange"]
    assert (day_cost >= ex["min_cost"] * n_trades - 1e-9).all()
    assert (day_cost >= ex["open_cost"] * day_turnover - 1e-9).all()


def test_hold_thresh(pred, market, reference):
    def spells(strategy):
        held = strategy.last_positions.to_numpy() > 0
        lengths = []
        for col in held.T:
            edges = np.flatnonzero(np.diff(np.concatenate([[0], col.astype(int), [0]])))
            lengths += [e - s for s, e in zip(edges[::2], edges[1::2], strict=True) if e < len(col)]
        return np.array(lengths)

    short, _ = _run(pred, market, reference, hold_thresh=1)
    assert spells(short).min() == 1  # the constraint below is binding on this data
    long, _ = _run(pred, market, reference, hold_thresh=3)
    assert spells(long).min() >= 3


# --- trading rules on a tiny synthetic market ------------------------------------------------------------


def _toy(close: np.ndarray, change: np.ndarray | None = None) -> MarketData:
    T, N = close.shape
    fields = {"close": close, "factor": np.ones((T, N))}
    fields["change"] = np.zeros((T, N)) if change is None else change
    cal = pd.bdate_range("2022-01-03", periods=T, name="datetime")
    return MarketData(cal, pd.Index([f"S{i}" for i in range(N)]), fields, benchmark=pd.Series(1.0, index=cal))


def _toy_scores(market: MarketData, rows: list[list[float]]) -> pd.Series:
    idx = pd.MultiIndex.from_product(
        [market.calendar[: len(rows)], market.instruments], names=["datetime", "instrument"]
    )
    return pd.Series(np.ravel(rows), index=idx)


def _held(strategy: TopkDropoutStrategy, day: int) -> set:
    row = strategy.last_positions.iloc[day]
    return set(row[row > 0].index)


def test_no_buy_at_limit_up():
    change = np.zeros((4, 3))
    change[1, 0] = 0.1  # S0, the best name, is limit-up on the first trading day
    m = _toy(np.full((4, 3), 10.0), change)
    scores = _toy_scores(m, [[3, 2, 1]] * 3)
    for forbid_all in (True, False):
        s = TopkDropoutStrategy(topk=1, n_drop=1, forbid_all_trade_at_limit=forbid_all)
        report = s.backtest(scores, m, start=m.calendar[1], end=m.calendar[3])
        assert _held(s, 0) == set() and report["turnover"].iloc[0] == 0
        assert _held(s, 1) == {"S0"}


def test_only_tradable_picks_the_next_tradable_name():
    change = np.zeros((4, 3))
    change[1, 0] = 0.1  # S0, the best name, is limit-up on the first trading day
    m = _toy(np.full((4, 3), 10.0), change)
    scores = _toy_scores(m, [[3, 2, 1]] * 3)
    s = TopkDropoutStrategy(topk=1, n_drop=1, only_tradable=True)
    s.backtest(scores, m, start=m.calendar[1], end=m.calendar[3])
    assert _held(s, 0) == {"S1"}


def test_n_drop_zero_never_sells():
    # Qlib's list[-0:] would make n_drop=0 sell every holding; here it means "keep the names once bought"
    m = _toy(np.full((5, 4), 10.0))
    scores = _toy_scores(m, [[4, 3, 2, 1], [1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]])
    s = TopkDropoutStrategy(topk=2, n_drop=0)
    s.backtest(scores, m, start=m.calendar[1], end=m.calendar[4])
    assert all(_held(s, day) == {"S0", "S1"} for day in range(4))


@pytest.mark.parametrize("limit", [-0.1, 0.1])
def test_no_sell_at_limit(limit):
    change = np.zeros((5, 3))
    change[2, 0] = limit  # S0, held since day 1, falls to the bottom on day 2 but hits a price limit
    m = _toy(np.full((5, 3), 10.0), change)
    scores = _toy_scores(m, [[3, 2, 1], [0, 2, 1], [0, 2, 1]])
    s = TopkDropoutStrategy(topk=1, n_drop=1)
    s.backtest(scores, m, start=m.calendar[1], end=m.calendar[4])
    assert _held(s, 0) == {"S0"}
    assert "S0" in _held(s, 1)  # limit-down: cannot sell; limit-up: Qlib's forbid_all_trade_at_limit
    assert "S0" not in _held(s, 2)
    s = TopkDropoutStrategy(topk=1, n_drop=1, forbid_all_trade_at_limit=False)
    s.backtest(scores, m, start=m.calendar[1], end=m.calendar[4])
    assert ("S0" in _held(s, 1)) == (limit < 0)  # selling at limit-up is allowed without the blanket ban


def test_suspended_not_sold_and_marked_at_last_close():
    close = np.full((5, 3), 10.0)
    close[2, 0] = np.nan  # S0 suspended on day 2, when its score drops to the bottom
    close[1, 0] = 12.0
    m = _toy(close)
    scores = _toy_scores(m, [[3, 2, 1], [0, 2, 1], [0, 2, 1]])
    s = TopkDropoutStrategy(topk=1, n_drop=1)
    report = s.backtest(scores, m, start=m.calendar[1], end=m.calendar[4])
    assert "S0" in _held(s, 1) and "S0" not in _held(s, 2)
    pos = s.last_positions
    stock_value = pos.iloc[1]["S0"] * 12.0 + pos.iloc[1]["S1"] * 10.0
    assert report["value"].iloc[1] == pytest.approx(stock_value, rel=1e-12)


def test_min_cost_applies_to_small_trades():
    m = _toy(np.full((3, 4), 10.0))
    scores = _toy_scores(m, [[4, 3, 2, 1]] * 2)
    s = TopkDropoutStrategy(topk=2, n_drop=1, account=2e4, min_cost=5.0, open_cost=0.0005)
    report = s.backtest(scores, m, start=m.calendar[1], end=m.calendar[2])
    bought = s.last_positions.iloc[0]
    assert (bought > 0).sum() == 2
    assert (bought[bought > 0] * 10.0 * 0.0005 < 5.0).all()  # proportional cost would be below min_cost
    assert report["total_cost"].iloc[0] == pytest.approx(2 * 5.0)
    assert report["cash"].iloc[0] == pytest.approx(2e4 - bought.sum() * 10.0 - 10.0)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"topk": 0}, "topk"),
        ({"topk": 2.5}, "topk"),
        ({"topk": 5, "n_drop": 6}, "n_drop"),
        ({"n_drop": -1}, "n_drop"),
        ({"hold_thresh": -1}, "hold_thresh"),
        ({"account": 0}, "account"),
        ({"open_cost": -0.1}, "open_cost"),
        ({"limit_threshold": -0.1}, "limit_threshold"),
        ({"trade_unit": 0}, "trade_unit"),
        ({"risk_degree": 1.5}, "risk_degree"),
        ({"only_tradable": "yes"}, "only_tradable"),
    ],
)
def test_bad_params_raise_config_error(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        TopkDropoutStrategy(**kwargs)


def test_unknown_deal_price_field(pred, market):
    with pytest.raises(ConfigError, match="deal_price.*valid options"):
        TopkDropoutStrategy(topk=5, n_drop=1, deal_price="twap").backtest(pred, market)


def test_registered_as_plugin():
    got = {}
    strategies.register_strategies(register=lambda name, obj, description="": got.setdefault(name, (obj, description)))
    assert got["topk_dropout"][0].resolve() is TopkDropoutStrategy and got["topk_dropout"][1]


def test_speed_300_instruments_600_days():
    rng = np.random.default_rng(0)
    T, N = 700, 300
    cal = pd.bdate_range("2018-01-01", periods=T, name="datetime")
    close = 10 * np.exp(np.cumsum(rng.normal(0, 0.02, (T, N)), axis=0))
    close[rng.random((T, N)) < 0.01] = np.nan
    change = pd.DataFrame(close).ffill().pct_change(fill_method=None).to_numpy()
    fields = {"close": close, "change": change, "factor": np.ones((T, N)) * rng.uniform(1, 2, N)}
    inst = pd.Index([f"S{i:04d}" for i in range(N)])
    m = MarketData(cal, inst, fields, benchmark=pd.Series(np.exp(np.cumsum(rng.normal(0, 0.01, T))), index=cal))
    idx = pd.MultiIndex.from_product([cal[100:], inst], names=["datetime", "instrument"])
    scores = pd.Series(rng.normal(size=len(idx)), index=idx)
    s = TopkDropoutStrategy(topk=50, n_drop=5)
    t0 = time.perf_counter()
    report = s.backtest(scores, m)
    risk_report(report, N=238)
    elapsed = time.perf_counter() - t0
    # a blocked sell (limit / suspension) does not stop the buys, so Qlib may briefly hold more than topk
    assert len(report) == 600 and np.median((s.last_positions.to_numpy() > 0).sum(axis=1)) == 50
    assert elapsed < 3.0  # ~0.1 s measured; generous for a noisy shared machine


def test_buy_shrinks_to_the_cash():
    # risk_degree=1 asks for all the cash, leaving nothing for the cost: Qlib shrinks the order to what the
    # cash pays for after cost, rounded down to the trade unit
    m = _toy(np.full((3, 2), 10.0))
    scores = _toy_scores(m, [[2, 1]] * 2)
    s = TopkDropoutStrategy(topk=1, n_drop=1, account=1e4, risk_degree=1.0)
    report = s.backtest(scores, m, start=m.calendar[1], end=m.calendar[2])
    shares = s.last_positions.iloc[0]["S0"]
    assert shares == pytest.approx(900) and report["cash"].iloc[0] == pytest.approx(1e4 - 900 * 10.0 - 5.0)
    assert (report["cash"] >= 0).all()
