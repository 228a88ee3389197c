"""Honest controls: the run's backtest repeated on random scores, and an equal-weight buy-and-hold of the universe.

A model's excess return means something only next to what no skill earns under the same rules. Every run (by
default; a sweep's trials leave them out) therefore also backtests, with the same strategy, costs, limits, trade
unit, window and benchmark:

* **random scores**: ``evaluation.controls.random`` runs, each on i.i.d. standard-normal scores on exactly the
  index of the model's test predictions (NaN where the model's score is NaN, so the same names are eligible each
  day), seeded by ``numpy.random.default_rng([evaluation.controls.seed, k])`` for run ``k``. Where the model's
  excess information ratio with cost falls among theirs is ``controls.model_percentile``: the share of random runs
  below it, ties counted half, in percent.
* **buy-and-hold**: on the first test day, the instruments of the research universe that can be bought that day
  (a bar, not at the limit) are bought with equal shares of ``account * risk_degree``, with the strategy's
  exchange rules (deal price, open cost, minimum cost, trade-unit rounding), and held to the end of the test
  segment without rebalancing (a suspended or delisted name keeps its last price). This needs a strategy that
  exposes ``exchange_config``, ``account`` and ``risk_degree`` (``topk_dropout`` does); other strategies skip it
  with a note.

Metric names are :func:`control_metric_names`; each is recorded only when its control ran.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qframe.core.backtest import Account, Exchange, simulate
from qframe.core.errors import ConfigError
from qframe.core.evaluation import risk_report

#: the risk blocks a control is measured on (its benchmark block is the model's own)
CONTROL_BLOCKS = ("excess_return_without_cost", "excess_return_with_cost")
#: the random runs' statistics summarised over the seeds
RANDOM_STATS = ("annualized_return", "information_ratio")
#: how the random runs' statistics are summarised: name -> percentile
RANDOM_QUANTILES = {"median": 50.0, "p05": 5.0, "p95": 95.0}
BUY_AND_HOLD_STATS = ("annualized_return", "information_ratio", "max_drawdown")
#: below this percentile among the random runs the model is said to be indistinguishable from them
DISTINGUISHABLE_PERCENTILE = 90.0
#: the model statistic ranked among the random runs (the default objective)
RANKED = "excess_return_with_cost.information_ratio"
DEFAULT_RANDOM = 20


def control_metric_names() -> list[str]:
    """Every metric the controls can record."""
    names = ["controls.model_percentile", "controls.random.count"]
    names += [f"controls.random.{b}.{s}.{q}" for b in CONTROL_BLOCKS for s in RANDOM_STATS for q in RANDOM_QUANTILES]
    names += [f"controls.buy_and_hold.{b}.{s}" for b in CONTROL_BLOCKS for s in BUY_AND_HOLD_STATS]
    return names


@dataclass(frozen=True)
class ControlSettings:
    """Which controls a run makes (``evaluation.controls``, with ``enabled: auto`` resolved)."""

    random: int = DEFAULT_RANDOM
    buy_and_hold: bool = True
    seed: int = 0

    @property
    def any(self) -> bool:
        return self.random > 0 or self.buy_and_hold


def control_settings(evaluation: Mapping[str, Any] | None, in_sweep: bool) -> ControlSettings:
    """``evaluation.controls`` checked; ``enabled: auto`` (the default) is on for a single run, off in a sweep."""
    cfg = dict((evaluation or {}).get("controls") or {})
    known = {"enabled", "random", "buy_and_hold", "seed"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ConfigError(f"unknown key evaluation.controls.{unknown[0]}; valid keys: {', '.join(sorted(known))}")
    enabled = cfg.get("enabled", "auto")
    if not (isinstance(enabled, bool) or enabled == "auto"):
        raise ConfigError(f"evaluation.controls.enabled={enabled!r}; valid options: true, false, auto")
    random = cfg.get("random", DEFAULT_RANDOM)
    if not isinstance(random, int) or isinstance(random, bool) or random < 0:
        raise ConfigError(f"evaluation.controls.random={random!r}: the number of random-score runs, an integer >= 0")
    bh = cfg.get("buy_and_hold", True)
    if not isinstance(bh, bool):
        raise ConfigError(f"evaluation.controls.buy_and_hold={bh!r}; valid options: true, false")
    seed = cfg.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"evaluation.controls.seed={seed!r}: an integer >= 0")
    if enabled == "auto":
        enabled = not in_sweep
    if not enabled:
        return ControlSettings(random=0, buy_and_hold=False, seed=seed)
    return ControlSettings(random=random, buy_and_hold=bh, seed=seed)


def check_objective(objective: str, settings: ControlSettings, in_sweep: bool) -> None:
    """Refuse an objective naming a control the run will not make."""
    if not objective.startswith("controls."):
        return
    needs_random = objective == "controls.model_percentile" or objective.startswith("controls.random.")
    if (settings.random > 0) if needs_random else settings.buy_and_hold:
        return
    key = "evaluation.controls.random=20" if needs_random else "evaluation.controls.buy_and_hold=true"
    why = " (a sweep's trials run without controls by default)" if in_sweep else ""
    raise ConfigError(
        f"objective={objective} needs the controls, which this run does not make{why}: set "
        f"evaluation.controls.enabled=true {key}"
    )


@dataclass
class ControlResult:
    """What the controls found: metrics, summary lines, notes, and the daily excess returns behind the band."""

    metrics: dict[str, float] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: daily excess return with cost of each control (columns ``random.<k>``, ``buy_and_hold``), by date
    daily: pd.DataFrame | None = None

    def band(self, mode: str = "sum") -> pd.DataFrame | None:
        """The random runs' 5 % and 95 % (columns ``p05``, ``p95``) of cumulative excess return with cost, by date."""
        if self.daily is None:
            return None
        runs = self.daily[[c for c in self.daily.columns if c.startswith("random.")]]
        if runs.shape[1] == 0:
            return None
        cum = _cumulative(runs.to_numpy(), mode)
        lo, hi = np.percentile(cum, [5.0, 95.0], axis=1)
        return pd.DataFrame({"p05": lo, "p95": hi}, index=self.daily.index)

    def buy_and_hold_curve(self, mode: str = "sum") -> pd.Series | None:
        """Cumulative excess return with cost of the buy-and-hold control, by date (None if it did not run)."""
        if self.daily is None or "buy_and_hold" not in self.daily.columns:
            return None
        values = _cumulative(self.daily[["buy_and_hold"]].to_numpy(), mode)[:, 0]
        return pd.Series(values, index=self.daily.index, name="buy_and_hold")


def _cumulative(daily: np.ndarray, mode: str) -> np.ndarray:
    return np.cumsum(daily, axis=0) if mode == "sum" else np.cumprod(1.0 + daily, axis=0) - 1.0


def random_scores(scores: pd.Series, seed: int, k: int) -> pd.Series:
    """Run ``k``'s i.i.d. standard-normal scores on ``scores``' index (NaN where ``scores`` is NaN)."""
    values = np.random.default_rng([seed, k]).standard_normal(len(scores))
    values[np.isnan(scores.to_numpy(dtype=float))] = np.nan
    return pd.Series(values, index=scores.index, name=scores.name)


def random_reports(
    settings: ControlSettings,
    strategy: Any,
    market: Any,
    scores: pd.Series,
    window: tuple[pd.Timestamp, pd.Timestamp],
) -> list[pd.DataFrame]:
    """The backtest reports of the ``settings.random`` random-score runs, in run order. A strategy with
    ``backtest_many`` (``topk_dropout``) backtests them all on the model's index at once: the same reports as
    one ``backtest`` each, with what they share worked out once."""
    control = copy.copy(strategy)  # the strategy's own state after the model's backtest stays as it was
    if hasattr(control, "backtest_many"):
        values = [random_scores(scores, settings.seed, k).to_numpy() for k in range(settings.random)]
        return control.backtest_many(scores.index, values, market, start=window[0], end=window[1])
    return [
        control.backtest(random_scores(scores, settings.seed, k), market, start=window[0], end=window[1])
        for k in range(settings.random)
    ]


def percentile_of(value: float, others: np.ndarray) -> float:
    """The share of ``others`` below ``value``, ties counted half, in percent (NaN without a finite value)."""
    others = others[np.isfinite(others)]
    if not np.isfinite(value) or len(others) == 0:
        return float("nan")
    return float(100.0 * (np.sum(others < value) + 0.5 * np.sum(others == value)) / len(others))


class _BuyAndHoldPolicy:
    """Buy ``members`` with equal shares of the cash on the window's first day, then never trade."""

    def __init__(self, members: np.ndarray, risk_degree: float, forbid_all_trade_at_limit: bool) -> None:
        self.members = members
        self.risk_degree = risk_degree
        self.forbid_all = forbid_all_trade_at_limit
        self.bought = 0

    def sells(self, t: int, account: Account, exchange: Exchange) -> np.ndarray:
        return np.empty(0, dtype=np.int64)

    def buys(self, t: int, account: Account, exchange: Exchange) -> tuple[np.ndarray, np.ndarray]:
        blocked = exchange.limit_any[0] if self.forbid_all else exchange.limit_buy[0]
        idx = np.flatnonzero(self.members & ~blocked)
        if t != 0 or idx.size == 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        self.bought = idx.size
        value = account.cash * self.risk_degree / idx.size
        return idx, exchange.round_amount(value / exchange.price[0, idx], 0, idx)


def buy_and_hold_report(strategy: Any, market: Any, calendar: pd.DatetimeIndex, bench: np.ndarray) -> pd.DataFrame:
    """The daily report (qframe.core.backtest) of the buy-and-hold control over ``calendar`` (consecutive days).

    ``attrs["bought"]`` says how many instruments it bought on the first day.
    """
    lo = int(market.calendar.searchsorted(calendar[0], "left"))
    hi = lo + len(calendar)
    exchange = Exchange(market, strategy.exchange_config, lo, hi)
    members = np.asarray(market.universe[lo], dtype=bool)
    policy = _BuyAndHoldPolicy(
        members, float(strategy.risk_degree), getattr(strategy, "forbid_all_trade_at_limit", True)
    )
    report = simulate(policy, exchange, float(strategy.account), bench, len(market.instruments))
    report.attrs["bought"] = policy.bought
    return report


def _excess_with_cost(report: pd.DataFrame) -> np.ndarray:
    return (report["return"] - report["bench"] - report["cost"]).to_numpy()


def run_controls(
    settings: ControlSettings,
    strategy: Any,
    strategy_name: str,
    market: Any,
    scores: pd.Series,
    report: pd.DataFrame,
    model_risk: Mapping[str, Mapping[str, float]],
    periods: int,
    mode: str,
    window: tuple[pd.Timestamp, pd.Timestamp],
) -> ControlResult:
    """The controls of ``settings`` for the model's backtest ``report`` of ``scores`` (its risk: ``model_risk``).

    Each control's benchmark is the model report's ``bench`` column (0 where the data has none), so excess
    returns are comparable. ``window`` is the [start, end] the model's backtest was given.
    """
    out = ControlResult()
    if not settings.any:
        return out
    bench = report["bench"]
    daily: dict[str, np.ndarray] = {}
    model_ir = float(model_risk["excess_return_with_cost"]["information_ratio"])

    if settings.random > 0:
        stats = {(b, s): [] for b in CONTROL_BLOCKS for s in RANDOM_STATS}
        for k, rep in enumerate(random_reports(settings, strategy, market, scores, window)):
            rep["bench"] = bench.to_numpy()
            risk = risk_report(rep, N=periods, mode=mode)
            for b, s in stats:
                stats[b, s].append(risk[b][s])
            daily[f"random.{k}"] = _excess_with_cost(rep)
        out.metrics["controls.random.count"] = float(settings.random)
        for (b, s), values in stats.items():
            arr = np.asarray(values, dtype=float)
            finite = arr[np.isfinite(arr)]
            for q, pct in RANDOM_QUANTILES.items():
                out.metrics[f"controls.random.{b}.{s}.{q}"] = (
                    float(np.percentile(finite, pct)) if len(finite) else float("nan")
                )
        ranked = np.asarray(stats["excess_return_with_cost", "information_ratio"], dtype=float)
        pct = percentile_of(model_ir, ranked)
        out.metrics["controls.model_percentile"] = pct
        m = out.metrics
        key = "controls.random.excess_return_with_cost.information_ratio"
        out.lines.append(
            f"controls: model excess IR with cost {_num(model_ir)} is at the {_ordinal(pct)} percentile of "
            f"{settings.random} random-score runs (their median {_num(m[key + '.median'])}, 5-95 %: "
            f"{_num(m[key + '.p05'])}..{_num(m[key + '.p95'])})"
        )
        if not pct >= DISTINGUISHABLE_PERCENTILE:
            out.notes.append(
                f"the model is not distinguishable from random scores on this market: its excess IR with cost is at "
                f"the {_ordinal(pct)} percentile of {settings.random} random-score runs with the same strategy and "
                f"costs (below the {_ordinal(DISTINGUISHABLE_PERCENTILE)})"
            )

    if settings.buy_and_hold:
        needed = ("exchange_config", "account", "risk_degree")
        if all(hasattr(strategy, a) for a in needed):
            rep = buy_and_hold_report(strategy, market, pd.DatetimeIndex(report.index), bench.to_numpy())
            risk = risk_report(rep, N=periods, mode=mode)
            for b in CONTROL_BLOCKS:
                for s in BUY_AND_HOLD_STATS:
                    out.metrics[f"controls.buy_and_hold.{b}.{s}"] = float(risk[b][s])
            daily["buy_and_hold"] = _excess_with_cost(rep)
            bh_ir = float(risk["excess_return_with_cost"]["information_ratio"])
            names, day = int(rep.attrs["bought"]), report.index[0].date()
            out.lines.append(
                f"controls: equal-weight buy-and-hold of the {names} universe names bought on {day}: excess IR with "
                f"cost {_num(bh_ir)}"
            )
            if np.isfinite(bh_ir) and np.isfinite(model_ir) and bh_ir >= model_ir:
                out.notes.append(
                    f"equal-weight buy-and-hold of the universe does as well as the model (excess IR with cost "
                    f"{_num(bh_ir)} vs {_num(model_ir)})"
                )
        else:
            out.notes.append(f"no buy-and-hold control: strategy {strategy_name!r} does not expose {', '.join(needed)}")
    out.daily = pd.DataFrame(daily, index=report.index) if daily else None
    return out


def _num(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.2f}"


def _ordinal(pct: float) -> str:
    if not np.isfinite(pct):
        return "n/a"
    n = int(round(pct))
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
