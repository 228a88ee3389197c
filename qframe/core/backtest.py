"""A daily exchange + account simulation on dense (T, N) arrays, with Qlib's backtest semantics.

This is the engine behind ``qlib.backtest.backtest`` with a daily ``SimulatorExecutor`` (serial trading),
re-done on arrays: the account holds one float per instrument (shares, last price, days held) instead of
per-order objects, and the whole day's orders of one side are dealt with a few numpy operations.

Qlib's rules reproduced here (``qlib/backtest/exchange.py``, ``account.py``, ``position.py``):

* an instrument without a close that day is suspended: it can be neither bought nor sold and keeps its last
  price in the account; with a float ``limit_threshold`` it cannot be bought when ``change >= threshold``
  nor sold when ``change <= -threshold`` (``change`` field, else close / previous close - 1);
* the deal price is the chosen field, falling back to the close where it is missing or non-positive;
* buy amounts are rounded down to whole trade units of *real* shares: ``(amount * factor + 0.1) // unit
  * unit / factor`` (no rounding when any factor is missing in the window, as Qlib then trades adjusted
  shares); a sell of the whole holding is not rounded;
* cost = ``max(value * rate, min_cost)`` (no cost for a zero-value deal), taken from cash; a buy that the
  cash cannot pay is shrunk to what the cash (less cost) buys, rounded to the trade unit;
* all sells of a day are dealt before the buys, in order; at the day's end held, non-suspended instruments
  are marked to the close and their holding-day count goes up by one;
* the report row of day t: ``account`` = cash + stock value at t's close, ``return`` = (account change +
  day's cost) / previous account (cost excluded, as in Qlib), ``turnover`` and ``cost`` as fractions of the
  previous account, ``total_*`` accumulated, ``bench`` = the benchmark's close-to-close return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from qframe.core.data import MarketData
from qframe.core.errors import ConfigError

REPORT_COLUMNS = ("account", "return", "total_turnover", "turnover", "total_cost", "cost", "value", "cash", "bench")

#: a deal worth less than this is no deal (Qlib's threshold)
_MIN_DEAL_VALUE = 1e-5


@dataclass(frozen=True)
class ExchangeConfig:
    """Trading rules (Qlib's ``exchange_kwargs``)."""

    deal_price: str = "close"
    open_cost: float = 0.0005
    close_cost: float = 0.0015
    min_cost: float = 5.0
    limit_threshold: float | None = 0.095
    trade_unit: int | None = 100


class Exchange:
    """Per-day trading arrays of a market over a backtest window ``[lo, hi)`` of its calendar.

    Row ``t`` of every array is window day ``t`` (calendar row ``lo + t``).
    """

    def __init__(self, market: MarketData, config: ExchangeConfig, lo: int, hi: int) -> None:
        self.config = config
        self.calendar = market.calendar[lo:hi]
        close_all = market.fields["close"]
        close = close_all[lo:hi]
        self.close = close
        suspended = np.isnan(close)
        self.suspended = suspended

        field = config.deal_price.lstrip("$")
        if field not in market.fields:
            raise ConfigError(
                f"deal_price {config.deal_price!r}: market {market.name!r} has no field {field!r}; "
                f"valid options: {', '.join(sorted(market.fields))}"
            )
        price = market.fields[field][lo:hi]
        # Qlib falls back to the close where the deal price is missing or not positive
        with np.errstate(invalid="ignore"):
            self.price = np.where(np.isnan(price) | (price <= 1e-8), close, price)

        if config.limit_threshold is None:
            self.limit_buy = suspended
            self.limit_sell = suspended
        else:
            change = self._change(market)[lo:hi]
            thr = float(config.limit_threshold)
            with np.errstate(invalid="ignore"):  # NaN change (first bar) is not a limit
                self.limit_buy = suspended | (change >= thr)
                self.limit_sell = suspended | (change <= -thr)
        # Qlib's is_stock_tradable(direction=None): any limit or suspension blocks the instrument
        self.limit_any = self.limit_buy | self.limit_sell

        # trade-unit rounding works on real shares (adjusted amount * factor); Qlib disables it when the
        # factor is missing for any bar that has a close
        factor = market.fields.get("factor")
        self.factor: np.ndarray | None = None
        if config.trade_unit is not None and factor is not None:
            factor = factor[lo:hi]
            if not np.any(np.isnan(factor) & ~suspended):
                self.factor = factor

    @staticmethod
    def _change(market: MarketData) -> np.ndarray:
        if "change" in market.fields:
            return market.fields["change"]
        close = market.fields["close"]
        prev = pd.DataFrame(close).ffill().shift(1).to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            return close / prev - 1.0

    def round_amount(self, amount: np.ndarray, t: int, idx: np.ndarray) -> np.ndarray:
        """Round adjusted share amounts down to whole trade units of real shares (Qlib's formula)."""
        if self.factor is None:
            return amount
        unit = self.config.trade_unit
        f = self.factor[t, idx]
        # "+ 0.1" absorbs the float error of amount * factor (Qlib's own guard)
        return (amount * f + 0.1) // unit * unit / f

    def cost(self, value: np.ndarray, rate: float) -> np.ndarray:
        """Transaction cost of deals worth ``value`` at ``rate`` (at least min_cost; nothing for no deal)."""
        return np.where(value > _MIN_DEAL_VALUE, np.maximum(value * rate, self.config.min_cost), 0.0)


class Account:
    """Cash and per-instrument holdings (adjusted shares, last price, days held)."""

    def __init__(self, n: int, cash: float) -> None:
        self.cash = float(cash)
        self.amount = np.zeros(n)
        self.price = np.zeros(n)
        self.count = np.zeros(n, dtype=np.int64)
        self.held = np.zeros(n, dtype=bool)
        self.total_turnover = 0.0
        self.total_cost = 0.0

    def held_index(self) -> np.ndarray:
        return np.flatnonzero(self.held)


class DailyPolicy(Protocol):
    """What the engine asks a strategy each day: first what to sell, then (after the sells) what to buy."""

    def sells(self, t: int, account: Account, exchange: Exchange) -> np.ndarray:
        """Instrument indices whose whole holding to sell on window day ``t``."""
        ...

    def buys(self, t: int, account: Account, exchange: Exchange) -> tuple[np.ndarray, np.ndarray]:
        """(instrument indices, adjusted share amounts) to buy on day ``t``, in dealing order."""
        ...


def _seq_cash(cash: float, deltas: np.ndarray) -> np.ndarray:
    """Cash before each of a sequence of cash changes, then after the last (sequential float sums, as Qlib)."""
    return np.cumsum(np.concatenate(([cash], deltas)))


def _seq_sum(start: float, values: np.ndarray) -> float:
    """``start`` plus each of ``values`` in order: ``_seq_cash(start, values)[-1]`` (cumsum adds in order too),
    without its array allocations (a day deals a few names: those dominate)."""
    total = start
    for value in values.tolist():
        total += value
    return total


def execute_sells(account: Account, exchange: Exchange, t: int, idx: np.ndarray) -> None:
    """Sell the whole holding of ``idx`` on day ``t`` (suspended / limit-down ones are skipped)."""
    idx = idx[account.held[idx] & ~exchange.limit_sell[t, idx]]
    if idx.size == 0:
        return
    rate = exchange.config.close_cost
    amount = account.amount[idx]
    value = amount * exchange.price[t, idx]
    cost = exchange.cost(value, rate)
    cash = _seq_cash(account.cash, value - cost)
    # Qlib refuses a sell whose proceeds plus cash cannot pay its cost (only when cash is ~0 or negative)
    refused = cash[:-1] + value < np.maximum(value * rate, exchange.config.min_cost)
    ok = value > _MIN_DEAL_VALUE
    if refused.any():
        ok = np.zeros(idx.size, dtype=bool)
        c = account.cash
        for i in range(idx.size):
            if value[i] > _MIN_DEAL_VALUE and c + value[i] >= max(value[i] * rate, exchange.config.min_cost):
                ok[i] = True
                c += value[i] - cost[i]
        cash = _seq_cash(account.cash, np.where(ok, value - cost, 0.0))
    idx, value, cost = idx[ok], value[ok], cost[ok]
    account.cash = float(cash[-1])
    account.total_turnover = _seq_sum(account.total_turnover, value)
    account.total_cost = _seq_sum(account.total_cost, cost)
    account.amount[idx] = 0.0
    account.held[idx] = False
    account.count[idx] = 0


def _buy_amount_by_cash(price: float, cash: float, rate: float, min_cost: float) -> float:
    """The most adjusted shares ``cash`` pays for, cost included (Qlib's _get_buy_amount_by_cash_limit)."""
    if cash < min_cost:
        return 0.0
    if cash >= min_cost / rate + min_cost:
        return cash / (1 + rate) / price
    return (cash - min_cost) / price


def execute_buys(account: Account, exchange: Exchange, t: int, idx: np.ndarray, amount: np.ndarray) -> None:
    """Buy ``amount`` adjusted shares of ``idx`` on day ``t``, in order, as far as the cash goes."""
    keep = ~exchange.limit_buy[t, idx]
    idx, amount = idx[keep], amount[keep]
    if idx.size == 0:
        return
    rate, min_cost = exchange.config.open_cost, exchange.config.min_cost
    price = exchange.price[t, idx]
    deal = exchange.round_amount(amount, t, idx)
    value = deal * price
    cost = exchange.cost(value, rate)
    cash = _seq_cash(account.cash, -(value + cost))
    if np.any(cash[:-1] < value + np.maximum(value * rate, min_cost)):
        # the cash runs short somewhere: deal one by one as Qlib does (shrink, or refuse, the order)
        c = account.cash
        for i in range(idx.size):
            v = amount[i] * price[i]
            if c < max(v * rate, min_cost):
                deal[i] = 0.0
            elif c < v + max(v * rate, min_cost):
                most = _buy_amount_by_cash(price[i], c, rate, min_cost)
                deal[i] = exchange.round_amount(np.array([min(most, amount[i])]), t, idx[i : i + 1])[0]
            value[i] = deal[i] * price[i]
            cost[i] = max(value[i] * rate, min_cost) if value[i] > _MIN_DEAL_VALUE else 0.0
            if value[i] > _MIN_DEAL_VALUE:
                c -= value[i] + cost[i]
        cash = _seq_cash(account.cash, -np.where(value > _MIN_DEAL_VALUE, value + cost, 0.0))
    ok = value > _MIN_DEAL_VALUE
    idx, value, cost, price = idx[ok], value[ok], cost[ok], price[ok]
    account.cash = float(cash[-1])
    account.total_turnover = _seq_sum(account.total_turnover, value)
    account.total_cost = _seq_sum(account.total_cost, cost)
    new = ~account.held[idx]
    account.price[idx[new]] = price[new]
    # Qlib books value / price shares (not the rounded amount itself): keep its float result
    account.amount[idx] += value / price
    account.held[idx] = True


def benchmark_returns(market: MarketData, calendar: pd.DatetimeIndex) -> np.ndarray:
    """Close-to-close return of the benchmark on each day of ``calendar`` (0 where unknown; NaN if none).

    Qlib stores float32 and divides in float32; when every close is a float32 value (data that came from
    Qlib-style storage) the ratio is taken in float32 too, which reproduces Qlib's ``bench`` bit for bit.
    Otherwise it is taken in float64.
    """
    if market.benchmark is None:
        return np.full(len(calendar), np.nan)
    bench = market.benchmark.sort_index().dropna()
    values = bench.to_numpy(dtype=np.float64)
    as32 = values.astype(np.float32)
    if np.array_equal(as32.astype(np.float64), values):
        ratio = (as32[1:] / as32[:-1] - np.float32(1.0)).astype(np.float64)
    else:
        ratio = values[1:] / values[:-1] - 1.0
    ret = pd.Series(ratio, index=bench.index[1:]).reindex(calendar)
    return ret.fillna(0.0).to_numpy()


def simulate(
    policy: DailyPolicy,
    exchange: Exchange,
    init_cash: float,
    bench: np.ndarray,
    n_instruments: int,
    positions: np.ndarray | None = None,
) -> pd.DataFrame:
    """Run ``policy`` day by day over the exchange's window; return Qlib's daily report (REPORT_COLUMNS).

    If ``positions`` (a (T, N) float array) is given, it receives the adjusted shares held at each day's close.
    """
    T = len(exchange.calendar)
    account = Account(n_instruments, init_cash)
    out = np.empty((T, len(REPORT_COLUMNS)))
    last_value, last_cost, last_turnover = float(init_cash), 0.0, 0.0
    for t in range(T):
        execute_sells(account, exchange, t, policy.sells(t, account, exchange))
        buy_idx, buy_amount = policy.buys(t, account, exchange)
        execute_buys(account, exchange, t, buy_idx, buy_amount)
        # bar end: mark to the close (a suspended one keeps its last price), one more day held
        held = account.held_index()
        close = exchange.close[t, held]
        live = ~np.isnan(close)
        account.price[held[live]] = close[live]
        account.count[held] += 1
        if positions is not None:
            positions[t] = account.amount
        stock_value = float(np.sum(account.amount[held] * account.price[held]))
        value = stock_value + account.cash
        day_cost = account.total_cost - last_cost
        out[t] = (
            value,
            (value - last_value + day_cost) / last_value,
            account.total_turnover,
            (account.total_turnover - last_turnover) / last_value,
            account.total_cost,
            day_cost / last_value,
            stock_value,
            account.cash,
            bench[t],
        )
        last_value, last_cost, last_turnover = value, account.total_cost, account.total_turnover
    return pd.DataFrame(out, index=pd.DatetimeIndex(exchange.calendar, name="datetime"), columns=list(REPORT_COLUMNS))


# ---------------------------------------------------------------------------------------------------- many at once


class AccountMany:
    """K :class:`Account` s side by side: row ``k`` of each (K, N) array is account ``k``."""

    def __init__(self, k: int, n: int, cash: float) -> None:
        self.cash = np.full(k, float(cash))
        self.amount = np.zeros((k, n))
        self.price = np.zeros((k, n))
        self.count = np.zeros((k, n), dtype=np.int64)
        self.held = np.zeros((k, n), dtype=bool)
        self.total_turnover = np.zeros(k)
        self.total_cost = np.zeros(k)


def _running(start: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Per row: ``start`` then the running sums of ``deltas`` in column order, (K, N + 1). A 0.0 delta leaves a
    float sum as it was, so a row's sums over its deals alone, in order, are :func:`_seq_cash`'s exactly."""
    return np.cumsum(np.concatenate((start[:, None], deltas), axis=1), axis=1)


def execute_sells_many(account: AccountMany, exchange: Exchange, t: int, sell: np.ndarray) -> np.ndarray:
    """:func:`execute_sells` of each account's ``sell`` mask (K, N), dealt in instrument order as there. Returns
    the accounts (K,) whose sells Qlib would refuse one by one (cash ~0 or negative): their rows are not exact."""
    sell = sell & account.held & ~exchange.limit_sell[t]
    rate = exchange.config.close_cost
    value = np.where(sell, account.amount * exchange.price[t], 0.0)
    cost = np.where(sell, exchange.cost(value, rate), 0.0)
    cash = _running(account.cash, np.where(sell, value - cost, 0.0))
    refused = sell & (cash[:, :-1] + value < np.maximum(value * rate, exchange.config.min_cost))
    ok = sell & (value > _MIN_DEAL_VALUE)
    account.cash = cash[:, -1]
    account.total_turnover = _running(account.total_turnover, np.where(ok, value, 0.0))[:, -1]
    account.total_cost = _running(account.total_cost, np.where(ok, cost, 0.0))[:, -1]
    account.amount[ok] = 0.0
    account.held[ok] = False
    account.count[ok] = 0
    return refused.any(axis=1)


def round_amount_many(
    exchange: Exchange, amount: np.ndarray, t: int, order: np.ndarray, where: np.ndarray
) -> np.ndarray:
    """:meth:`Exchange.round_amount` of (K, N) amounts whose row ``k`` is instruments ``order[k]``, where
    ``where`` (the others: 0)."""
    rows, cols = np.nonzero(where)
    out = np.zeros(amount.shape)
    if exchange.factor is None:
        out[rows, cols] = amount[rows, cols]
        return out
    unit = exchange.config.trade_unit
    f = exchange.factor[t][order[rows, cols]]
    out[rows, cols] = (amount[rows, cols] * f + 0.1) // unit * unit / f
    return out


def execute_buys_many(
    account: AccountMany, exchange: Exchange, t: int, order: np.ndarray, buy: np.ndarray, amount: np.ndarray
) -> np.ndarray:
    """:func:`execute_buys` of each account's buys, given in dealing order: row ``k`` of ``buy`` (mask) and
    ``amount`` is instruments ``order[k]``. Returns the accounts (K,) whose cash runs short somewhere (Qlib then
    shrinks or refuses orders one by one): their rows are not exact."""
    buy = buy & ~exchange.limit_buy[t][order]
    rate, min_cost = exchange.config.open_cost, exchange.config.min_cost
    price = exchange.price[t][order]
    value = round_amount_many(exchange, amount, t, order, buy) * price
    cost = np.where(buy, exchange.cost(value, rate), 0.0)
    cash = _running(account.cash, np.where(buy, -(value + cost), 0.0))
    short = buy & (cash[:, :-1] < value + np.maximum(value * rate, min_cost))
    ok = buy & (value > _MIN_DEAL_VALUE)
    account.cash = cash[:, -1]
    account.total_turnover = _running(account.total_turnover, np.where(ok, value, 0.0))[:, -1]
    account.total_cost = _running(account.total_cost, np.where(ok, cost, 0.0))[:, -1]
    rows, cols = np.nonzero(ok)
    names = order[rows, cols]
    new = ~account.held[rows, names]
    account.price[rows[new], names[new]] = price[rows, cols][new]
    account.amount[rows, names] += value[rows, cols] / price[rows, cols]
    account.held[rows, names] = True
    return short.any(axis=1)


def _held_values(account: AccountMany) -> np.ndarray:
    """Each account's stock value: the sum over its held names, in instrument order, of amount x price, as
    :func:`simulate` sums them (one reduction of that row: the same pairwise float sum, whatever the other rows);
    the accounts holding as many names are summed as the rows of one array."""
    held = account.held
    counts = held.sum(axis=1)
    out = np.zeros(len(held))
    for m in np.unique(counts):
        if m == 0:
            continue
        rows = np.flatnonzero(counts == m)
        r, c = np.nonzero(held[rows])  # row-major: each row's names in instrument order
        values = (account.amount[rows[r], c] * account.price[rows[r], c]).reshape(len(rows), m)
        out[rows] = np.sum(values, axis=1)
    return out


class DailyPolicyMany(Protocol):
    """A :class:`DailyPolicy` of K accounts at once."""

    def sells(self, t: int, account: AccountMany, exchange: Exchange) -> np.ndarray:
        """(K, N) mask of the instruments whose whole holding each account sells on day ``t``."""
        ...

    def buys(self, t: int, account: AccountMany, exchange: Exchange) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(order, mask, amounts), each (K, N): account ``k`` buys ``amounts[k]`` of instruments ``order[k]``
        where ``mask[k]``, in that order."""
        ...


def simulate_many(
    policy: DailyPolicyMany, k: int, exchange: Exchange, init_cash: float, bench: np.ndarray, n_instruments: int
) -> tuple[list[pd.DataFrame | None], np.ndarray]:
    """:func:`simulate` of K accounts at once, day by day: (the K daily reports, the accounts (K,) whose reports
    are None because a day needed Qlib's one-by-one dealing, a sell refused or a buy shrunk; rerun those with
    :func:`simulate`). Every other report is :func:`simulate`'s, number for number."""
    T = len(exchange.calendar)
    account = AccountMany(k, n_instruments, init_cash)
    out = np.empty((k, T, len(REPORT_COLUMNS)))
    inexact = np.zeros(k, dtype=bool)
    last_value, last_cost, last_turnover = np.full(k, float(init_cash)), np.zeros(k), np.zeros(k)
    for t in range(T):
        inexact |= execute_sells_many(account, exchange, t, policy.sells(t, account, exchange))
        inexact |= execute_buys_many(account, exchange, t, *policy.buys(t, account, exchange))
        held = account.held
        close = exchange.close[t]
        account.price = np.where(held & ~np.isnan(close), close, account.price)
        account.count[held] += 1
        stock_value = _held_values(account)
        value = stock_value + account.cash
        day_cost = account.total_cost - last_cost
        out[:, t] = np.column_stack(
            (
                value,
                (value - last_value + day_cost) / last_value,
                account.total_turnover,
                (account.total_turnover - last_turnover) / last_value,
                account.total_cost,
                day_cost / last_value,
                stock_value,
                account.cash,
                np.full(k, bench[t]),
            )
        )
        last_value, last_cost, last_turnover = value, account.total_cost, account.total_turnover
    index = pd.DatetimeIndex(exchange.calendar, name="datetime")
    reports = [
        None if inexact[j] else pd.DataFrame(out[j], index=index, columns=list(REPORT_COLUMNS)) for j in range(k)
    ]
    return reports, inexact
