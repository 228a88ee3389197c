"""Qlib's TopkDropoutStrategy (``method_sell="bottom"``, ``method_buy="top"``) on the array backtest engine.

Each trading day, using the scores of the previous trading day: rank the held names and the best
non-held names together, sell the held names among the ``n_drop`` lowest of that union (held at least
``hold_thresh`` days), and buy the best non-held names so as to hold ``topk``, each with an equal share of
``cash * risk_degree`` (the cash after the day's sells).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from qframe.core.backtest import Account, Exchange, ExchangeConfig, benchmark_returns, simulate, simulate_many
from qframe.core.data import MarketData
from qframe.core.errors import ConfigError, DataError
from qframe.core.markets import FROM_MARKET, MARKETS, MarketRules


def _sort_desc(idx: np.ndarray, score: np.ndarray) -> np.ndarray:
    """``idx`` sorted by ``score[idx]`` descending, NaN last, ties in the given order (pandas sort_values)."""
    s = score[idx]
    nan = np.isnan(s)
    head = idx[~nan][np.argsort(-s[~nan], kind="stable")]
    return np.concatenate((head, idx[nan]))


class TopkDropoutStrategy:
    """Hold the ``topk`` best-scored instruments, replacing at most ``n_drop`` of them a day (Qlib semantics).

    ``backtest(scores, market)`` runs Qlib's ``backtest_daily`` with this strategy and returns its daily report;
    afterwards ``last_positions`` holds the adjusted shares held at each day's close (datetime x instrument).

    ``limit_threshold`` and ``trade_unit`` default to ``"market"``: the rules the run's market gives through
    :meth:`use_market_rules` (``market=cn|us|none``), or Qlib's own (cn: 0.095, 100) when none were given. A number
    (or null: no limit, no lot rounding) set explicitly wins over the market's.
    """

    def __init__(
        self,
        topk: int = 50,
        n_drop: int = 5,
        hold_thresh: int = 1,
        account: float = 1e8,
        deal_price: str = "close",
        open_cost: float = 0.0005,
        close_cost: float = 0.0015,
        min_cost: float = 5.0,
        limit_threshold: float | str | None = FROM_MARKET,
        trade_unit: int | str | None = FROM_MARKET,
        risk_degree: float = 0.95,
        only_tradable: bool = False,
        forbid_all_trade_at_limit: bool = True,
    ) -> None:
        def need(ok: bool, key: str, what: str, value: object) -> None:
            if not ok:
                raise ConfigError(f"strategy topk_dropout: {key} must be {what}, got {value!r}")

        def is_int(v: object) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def is_num(v: object) -> bool:
            return isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and np.isfinite(v)

        need(is_int(topk) and topk >= 1, "topk", "an integer >= 1", topk)
        need(is_int(n_drop) and 0 <= n_drop <= topk, "n_drop", f"an integer in [0, topk={topk}]", n_drop)
        need(is_int(hold_thresh) and hold_thresh >= 0, "hold_thresh", "an integer >= 0", hold_thresh)
        need(is_num(account) and account > 0, "account", "a positive number", account)
        need(isinstance(deal_price, str) and deal_price != "", "deal_price", "a price field name", deal_price)
        for key, v in (("open_cost", open_cost), ("close_cost", close_cost), ("min_cost", min_cost)):
            need(is_num(v) and v >= 0, key, "a number >= 0", v)
        need(
            limit_threshold in (None, FROM_MARKET) or (is_num(limit_threshold) and limit_threshold > 0),
            "limit_threshold",
            f"a positive number, null (no limit) or {FROM_MARKET!r} (the market's)",
            limit_threshold,
        )
        need(
            trade_unit in (None, FROM_MARKET) or (is_int(trade_unit) and trade_unit >= 1),
            "trade_unit",
            f"an integer >= 1, null (no lot rounding) or {FROM_MARKET!r} (the market's)",
            trade_unit,
        )
        need(is_num(risk_degree) and 0 < risk_degree <= 1, "risk_degree", "a number in (0, 1]", risk_degree)
        need(isinstance(only_tradable, bool), "only_tradable", "true or false", only_tradable)
        need(
            isinstance(forbid_all_trade_at_limit, bool),
            "forbid_all_trade_at_limit",
            "true or false",
            forbid_all_trade_at_limit,
        )
        self.topk = int(topk)
        self.n_drop = int(n_drop)
        self.hold_thresh = int(hold_thresh)
        self.account = float(account)
        self.risk_degree = float(risk_degree)
        self.only_tradable = only_tradable
        self.forbid_all_trade_at_limit = forbid_all_trade_at_limit
        self.last_positions: pd.DataFrame | None = None
        self._limit_threshold = limit_threshold if limit_threshold in (None, FROM_MARKET) else float(limit_threshold)
        self._trade_unit = trade_unit if trade_unit in (None, FROM_MARKET) else int(trade_unit)
        # Qlib's own exchange defaults until the run gives its market's rules
        self._rules = MARKETS["cn"]
        self._costs = {
            "deal_price": deal_price,
            "open_cost": float(open_cost),
            "close_cost": float(close_cost),
            "min_cost": float(min_cost),
        }

    @property
    def exchange_config(self) -> ExchangeConfig:
        """The trading rules the backtest uses: the explicit settings, else the market's."""
        limit = self._rules.limit_threshold if self._limit_threshold == FROM_MARKET else self._limit_threshold
        unit = self._rules.trade_unit if self._trade_unit == FROM_MARKET else self._trade_unit
        return ExchangeConfig(**self._costs, limit_threshold=limit, trade_unit=unit)

    def use_market_rules(self, rules: MarketRules) -> MarketRules:
        """Trade by ``rules`` where no explicit setting says otherwise; returns the rules as applied."""
        self._rules = rules
        ex = self.exchange_config
        return replace(rules, limit_threshold=ex.limit_threshold, trade_unit=ex.trade_unit)

    def check_market(self, market: MarketData, start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
        """Refuse a ``topk`` that holds the whole tradable universe; a note when it holds most of it.

        Holding every name makes the excess return the universe's average against the benchmark: it says nothing
        about the model. Tradable: a universe member with a bar, counted per day of [start, end]. A note too when
        the trade unit cannot apply (no ``factor`` field).
        """
        notes = []
        unit = self.exchange_config.trade_unit
        if unit is not None and "factor" not in market.fields:
            notes.append(
                f"trade unit {unit}: no lot rounding, as the data has no factor column (Qlib rounds lots of real "
                "shares, adjusted amount x factor, only with one)"
            )
        cal = market.calendar
        lo, hi = int(cal.searchsorted(start, "left")), int(cal.searchsorted(end, "right"))
        tradable = (market.universe[lo:hi] & ~np.isnan(market.fields["close"][lo:hi])).sum(axis=1)
        tradable = tradable[tradable > 0]
        if len(tradable) == 0:
            return notes
        typical = int(np.median(tradable))
        if self.topk >= typical:
            suggestion = max(1, typical // 5)
            raise ConfigError(
                f"strategy.topk={self.topk} would hold every tradable instrument: the test segment has {typical} on a "
                f"median day (at most {int(tradable.max())}), so the excess return would say nothing about the "
                f"model; choose strategy.topk below {typical}, e.g. strategy.topk={suggestion} "
                f"strategy.n_drop={max(1, suggestion // 5)}"
            )
        if self.topk > typical / 2:
            notes.append(
                f"strategy.topk={self.topk} holds more than half of the {typical} instruments tradable on a median "
                "test day: the portfolio is close to the whole universe, and its excess return says little about "
                "the model"
            )
        return notes

    def backtest(
        self, scores: pd.Series, market: MarketData, start: str | None = None, end: str | None = None
    ) -> pd.DataFrame:
        """Backtest ``scores`` (indexed by datetime, instrument) on ``market`` over [start, end].

        The score dated t is traded at day t+1's deal price (Qlib's convention), so the first day of the
        window trades on the score of the trading day before it. ``start`` / ``end`` default to the first /
        last scored date, as Qlib's workflow sets them. Returns the daily report (see qframe.core.backtest).
        """
        if isinstance(scores, pd.DataFrame):  # Qlib uses the first column of a multi-column signal
            scores = scores.iloc[:, 0]
        lo, hi = self._window(scores.index, market, start, end)
        signal, has_signal = self._signal_rows(scores, market, lo, hi)
        exchange = Exchange(market, self.exchange_config, lo, hi)
        policy = _TopkDropoutPolicy(self, signal, has_signal)
        bench = benchmark_returns(market, exchange.calendar)
        positions = np.zeros((hi - lo, len(market.instruments)))
        report = simulate(policy, exchange, self.account, bench, len(market.instruments), positions)
        self.last_positions = pd.DataFrame(positions, index=report.index, columns=market.instruments)
        return report

    def backtest_many(
        self,
        index: pd.MultiIndex,
        values: list[np.ndarray],
        market: MarketData,
        start: str | None = None,
        end: str | None = None,
    ) -> list[pd.DataFrame]:
        """:meth:`backtest` of each score vector of ``values`` on one shared ``index`` (the random controls): the
        reports are those of ``backtest(pd.Series(v, index), ...)``, number for number, but the window, the
        exchange's arrays, the benchmark and where each score goes in the (T, N) signal are worked out once.
        ``last_positions`` is left as it was."""
        lo, hi = self._window(index, market, start, end)
        place = self._placement(index, market, lo, hi)
        exchange = Exchange(market, self.exchange_config, lo, hi)
        bench = benchmark_returns(market, exchange.calendar)
        placed = [self._place(place, np.asarray(v, dtype=float), market, lo, hi) for v in values]

        def one(signal: np.ndarray, has_signal: np.ndarray) -> pd.DataFrame:
            policy = _TopkDropoutPolicy(self, signal, has_signal)
            return simulate(policy, exchange, self.account, bench, len(market.instruments))

        if self.only_tradable or len(placed) < 2:
            return [one(*p) for p in placed]
        signal = np.stack([p[0] for p in placed])
        has_signal = np.stack([p[1] for p in placed])
        policy = _TopkDropoutPolicyMany(self, signal, has_signal)
        reports, _ = simulate_many(policy, len(placed), exchange, self.account, bench, len(market.instruments))
        # an account whose day needed Qlib's one-by-one dealing (cash short): its own backtest, exactly
        return [r if r is not None else one(*placed[j]) for j, r in enumerate(reports)]

    @staticmethod
    def _window(index: pd.Index, market: MarketData, start: str | None, end: str | None) -> tuple[int, int]:
        """The calendar rows [lo, hi) of the backtest of scores on ``index`` over [start, end]."""
        if not isinstance(index, pd.MultiIndex) or set(index.names) != {"datetime", "instrument"}:
            raise DataError(f"topk_dropout: scores must be indexed by (datetime, instrument), got {index.names}")
        dates = pd.DatetimeIndex(index.get_level_values("datetime"))
        cal = market.calendar
        lo = int(cal.searchsorted(pd.Timestamp(start) if start is not None else dates.min(), "left"))
        hi = int(cal.searchsorted(pd.Timestamp(end) if end is not None else dates.max(), "right"))
        if hi <= lo:
            raise DataError(
                f"topk_dropout: backtest range {start}..{end} holds no trading day of market {market.name!r} "
                f"({cal[0].date()}..{cal[-1].date()})"
            )
        return lo, hi

    @classmethod
    def _signal_rows(cls, scores: pd.Series, market: MarketData, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(T, N) scores to trade on each window day (last score up to the previous trading day), has-row flags."""
        vals = scores.to_numpy(dtype=float)
        return cls._place(cls._placement(scores.index, market, lo, hi), vals, market, lo, hi)

    @staticmethod
    def _placement(index: pd.MultiIndex, market: MarketData, lo: int, hi: int) -> tuple[np.ndarray, ...]:
        """Where each score of ``index`` goes in the (T, N) signal of window [lo, hi): (the positions in
        ``index`` kept, in the order they are written, their window rows, their instrument columns)."""
        cal = market.calendar
        dates = pd.DatetimeIndex(index.get_level_values("datetime"))
        # a score belongs to the trading day at or before its date; trading day t uses the one of day t-1
        t_idx = cal.searchsorted(dates, "right") - 1 + 1 - lo
        n_idx = market.instruments.get_indexer(index.get_level_values("instrument"))
        keep = np.flatnonzero((n_idx >= 0) & (t_idx >= 0) & (t_idx < hi - lo))
        order = keep[np.argsort(dates.asi8[keep], kind="stable")]  # later dates overwrite: Qlib's "last"
        return order, t_idx[order], n_idx[order]

    @staticmethod
    def _place(
        place: tuple[np.ndarray, ...], vals: np.ndarray, market: MarketData, lo: int, hi: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The (T, N) signal and has-row flags of the scores ``vals`` placed by :meth:`_placement` (NaN: none)."""
        order, t_idx, n_idx = place
        v = vals[order]
        scored = ~np.isnan(v)
        signal = np.full((hi - lo, len(market.instruments)), np.nan)
        signal[t_idx[scored], n_idx[scored]] = v[scored]
        has_signal = np.zeros(hi - lo, dtype=bool)
        has_signal[t_idx[scored]] = True
        return signal, has_signal


class _TopkDropoutPolicy:
    """The day-by-day decisions of :class:`TopkDropoutStrategy` (Qlib's generate_trade_decision)."""

    def __init__(self, cfg: TopkDropoutStrategy, signal: np.ndarray, has_signal: np.ndarray) -> None:
        self.cfg = cfg
        self.signal = signal
        self.has_signal = has_signal
        self._buy = np.empty(0, dtype=np.int64)

    def _first_n(self, idx: np.ndarray, n: int, tradable: np.ndarray, from_end: bool = False) -> np.ndarray:
        if not self.cfg.only_tradable:
            # Qlib slices a list: a negative n drops from the end, like Python does
            return idx[-n:] if from_end else idx[:n]
        if n <= 0:
            return idx[:0]
        ok = idx[tradable[idx]]
        return ok[-n:] if from_end else ok[:n]

    def sells(self, t: int, account: Account, exchange: Exchange) -> np.ndarray:
        cfg = self.cfg
        self._buy = np.empty(0, dtype=np.int64)
        if not self.has_signal[t]:
            return self._buy
        score = self.signal[t]
        tradable = ~exchange.limit_any[t]
        held = account.held_index()
        last = _sort_desc(held, score)
        candidates = np.flatnonzero(~np.isnan(score) & ~account.held)
        today = self._first_n(_sort_desc(candidates, score), cfg.n_drop + cfg.topk - len(last), tradable)
        # rank held + candidates together so a better held name is never swapped for a worse new one
        comb = _sort_desc(np.union1d(last, today), score)
        if cfg.n_drop > 0:
            bottom = self._first_n(comb, cfg.n_drop, tradable, from_end=True)
        else:  # Qlib's list[-0:] would select everything; n_drop=0 means "never drop"
            bottom = comb[:0]
        in_bottom = np.zeros(len(score), dtype=bool)  # a mask, not np.isin: ~10x less overhead on a few names
        in_bottom[bottom] = True
        sell = last[in_bottom[last]]
        n_buy = len(sell) + cfg.topk - len(last)
        self._buy = today[:n_buy]
        can = exchange.limit_any[t] if cfg.forbid_all_trade_at_limit else exchange.limit_sell[t]
        sell = sell[~can[sell] & (account.count[sell] >= cfg.hold_thresh)]
        return np.sort(sell)

    def buys(self, t: int, account: Account, exchange: Exchange) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        buy = self._buy
        if buy.size == 0:
            return buy, np.empty(0)
        # the cash after the sells, split equally over all intended buys (untradable ones included, as Qlib)
        value = account.cash * cfg.risk_degree / len(buy)
        blocked = exchange.limit_any[t] if cfg.forbid_all_trade_at_limit else exchange.limit_buy[t]
        buy = buy[~blocked[buy]]
        amount = exchange.round_amount(value / exchange.price[t, buy], t, buy)
        return buy, amount


def _first(mask: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per row, the first ``n[k]`` set entries of ``mask`` (K, M), with a Python slice's ``[:n]`` for a negative
    ``n``: all but the last ``-n``."""
    total = mask.sum(axis=1)
    take = np.where(n >= 0, np.minimum(n, total), np.maximum(total + n, 0))
    return mask & (np.cumsum(mask, axis=1) <= take[:, None])


class _TopkDropoutPolicyMany:
    """:class:`_TopkDropoutPolicy` for K score matrices at once (``only_tradable=false``), on ranks: each day an
    account's instruments in its order of score (descending, NaN last, ties by instrument), as ``_sort_desc``
    orders every list the one-account policy ranks."""

    def __init__(self, cfg: TopkDropoutStrategy, signal: np.ndarray, has_signal: np.ndarray) -> None:
        self.cfg = cfg
        self.signal = signal  # (K, T, N)
        self.has_signal = has_signal  # (K, T)
        k, _, n = signal.shape
        self._order = np.tile(np.arange(n), (k, 1))
        self._buy = np.zeros((k, n), dtype=bool)

    def sells(self, t: int, account: Any, exchange: Exchange) -> np.ndarray:
        cfg = self.cfg
        k = len(self.signal)
        score = self.signal[:, t]
        order = np.argsort(-score, axis=1, kind="stable")  # NaN last, ties in instrument order
        held = np.take_along_axis(account.held, order, axis=1)
        candidates = ~np.isnan(np.take_along_axis(score, order, axis=1)) & ~held
        n_last = held.sum(axis=1)
        today = _first(candidates, cfg.n_drop + cfg.topk - n_last)
        comb = held | today
        if cfg.n_drop > 0:  # the n_drop lowest of held + today
            bottom = comb & (np.cumsum(comb[:, ::-1], axis=1)[:, ::-1] <= cfg.n_drop)
        else:
            bottom = np.zeros_like(comb)
        sell_ranked = held & bottom
        active = self.has_signal[:, t][:, None]
        self._order = order
        self._buy = _first(today, sell_ranked.sum(axis=1) + cfg.topk - n_last) & active
        sell = np.zeros_like(sell_ranked)
        np.put_along_axis(sell, order, sell_ranked & active, axis=1)
        can = exchange.limit_any[t] if cfg.forbid_all_trade_at_limit else exchange.limit_sell[t]
        return sell & ~can & (account.count >= cfg.hold_thresh) if k else sell

    def buys(self, t: int, account: Any, exchange: Exchange) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from qframe.core.backtest import round_amount_many

        cfg, order, buy = self.cfg, self._order, self._buy
        n_buy = buy.sum(axis=1)
        # the cash after the sells, split equally over all intended buys (untradable ones included, as Qlib)
        value = np.where(n_buy > 0, account.cash * cfg.risk_degree / np.maximum(n_buy, 1), 0.0)
        blocked = exchange.limit_any[t] if cfg.forbid_all_trade_at_limit else exchange.limit_buy[t]
        buy = buy & ~blocked[order]
        rows, cols = np.nonzero(buy)
        amount = np.zeros(buy.shape)
        amount[rows, cols] = value[rows] / exchange.price[t][order[rows, cols]]
        return order, buy, round_amount_many(exchange, amount, t, order, buy)
