"""Market conventions as one named choice (``market=cn|us|none|auto``): price limits, trade lots, periods a year.

A backtest on Chinese A-shares refuses to buy at +9.5 % or sell at -9.5 % and trades lots of 100 shares; US equities
have neither rule; both annualise daily returns differently (Qlib: 238 periods a year for cn, 252 for us). Which rules
apply is a property of the data, so ``market=auto`` (the default) asks the dataset for its region (its optional
``region`` attribute, :class:`qframe.core.contracts.MarketRegion`); a dataset that states none gets
:data:`UNSTATED_DEFAULT`, and the run summary says so.

A setting made explicitly (``strategy.limit_threshold``, ``strategy.trade_unit``, ``evaluation.annualization``) wins
over the market's; their default value :data:`FROM_MARKET` (``"market"``) means "from the market".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from qframe.core.errors import ConfigError

#: the value of a setting that takes the market's convention (``strategy.limit_threshold: market``)
FROM_MARKET = "market"
#: ``market=auto``: the rules of the dataset's region
AUTO = "auto"


@dataclass(frozen=True)
class MarketRules:
    """The trading conventions of a market.

    Attributes:
        name: the ``market=`` option (``cn``, ``us``, ``none``).
        limit_threshold: an instrument whose daily change reaches +threshold cannot be bought, -threshold cannot be
            sold (Qlib's rule); None: no price limit.
        trade_unit: buys are rounded down to lots of this many real shares; None: fractional amounts.
        annualization: periods a year used to annualise daily returns.
        label: what market this is, in words.
    """

    name: str
    limit_threshold: float | None
    trade_unit: int | None
    annualization: int
    label: str = ""

    def describe(self) -> str:
        """``price limits ±9.5 %, lots of 100 shares, 238 periods a year``."""
        limits = "no price limits" if self.limit_threshold is None else f"price limits ±{self.limit_threshold:.1%}"
        if self.trade_unit is None:
            lots = "no lot rounding"
        else:
            lots = "whole shares" if self.trade_unit == 1 else f"lots of {self.trade_unit} shares"
        return f"{limits.replace('%', ' %')}, {lots}, {self.annualization} periods a year"


#: the built-in markets (Qlib's ``_default_region_config`` for cn and us; 238 is Qlib's annualisation of cn data)
MARKETS: dict[str, MarketRules] = {
    "cn": MarketRules("cn", 0.095, 100, 238, "China A-shares (Qlib's REG_CN)"),
    "us": MarketRules("us", None, 1, 252, "US equities (Qlib's REG_US)"),
    "none": MarketRules("none", None, None, 252, "no market conventions: raw fills"),
}

#: the rules of a dataset that states no region (a user table): no limit or lot is assumed that the data may not have
UNSTATED_DEFAULT = "none"

OPTIONS = (AUTO, *MARKETS)


@dataclass(frozen=True)
class MarketChoice:
    """The market's rules and why they were chosen (``market=us``; ``dataset 'synthetic': A-share-like ...``)."""

    rules: MarketRules
    reason: str


def regions() -> list[str]:
    """The regions a dataset may state (the built-in markets other than ``none``)."""
    return [name for name in MARKETS if name != "none"]


def check_region(region: Any, key: str) -> str | None:
    """``region`` if it is a known region or None, else the one-line error naming ``key``."""
    if region is None or region in regions():
        return region
    raise ConfigError(f"{key}={region!r} is not a known market region; valid options: {', '.join(regions())}, null")


def resolve_market(section: Any, dataset: Any, dataset_name: str) -> MarketChoice:
    """The rules the ``market`` config section chooses for ``dataset`` (its ``region`` when the choice is ``auto``).

    ``section`` is ``{name: cn}`` (the config group) or a bare name; missing means ``auto``.
    """
    name = section.get("name", AUTO) if isinstance(section, Mapping) else (section or AUTO)
    if isinstance(section, Mapping) and set(section) - {"name"}:
        extra = sorted(set(section) - {"name"})[0]
        raise ConfigError(
            f"market.{extra} is not a market setting: a market is chosen by name (market={'|'.join(OPTIONS)}); "
            "set strategy.limit_threshold, strategy.trade_unit or evaluation.annualization to change one rule"
        )
    if name not in OPTIONS:
        raise ConfigError(f"unknown market {name!r}; valid options: {', '.join(OPTIONS)}")
    others = "|".join(n for n in MARKETS)
    if name != AUTO:
        return MarketChoice(MARKETS[name], f"market={name}")
    if not hasattr(dataset, "region"):
        return MarketChoice(
            MARKETS[UNSTATED_DEFAULT], f"dataset {dataset_name!r} states no region: the default; set market={others}"
        )
    region = check_region(dataset.region, f"dataset {dataset_name!r} region")
    source = getattr(dataset, "region_source", None) or f"dataset {dataset_name!r}"
    if region is None:
        return MarketChoice(MARKETS[UNSTATED_DEFAULT], f"default for {source}; set market={others}")
    return MarketChoice(MARKETS[region], f"{source}; set market={others}")


def annualization_setting(value: Any) -> int | None:
    """``evaluation.annualization`` as a number of periods, or None for the market's (``market`` or null)."""
    if value is None or value == FROM_MARKET:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value <= 0:
        raise ConfigError(
            f"evaluation.annualization must be a positive whole number of periods a year or {FROM_MARKET!r} (the "
            f"market's: 238 for market=cn, 252 for us and none), got {value!r}"
        )
    return int(value)


def applied_rules(
    cfg: dict[str, Any], dataset: tuple[str, Any], strategy: tuple[str, Any], periods: int | None
) -> dict[str, Any]:
    """The market rules of a run (``market``, explicit settings winning), given to the strategy; as recorded."""
    choice: MarketChoice = resolve_market(cfg.get("market"), dataset[1], dataset[0])
    market = choice.rules
    use = getattr(strategy[1], "use_market_rules", None)
    applied = use(market) if callable(use) else None
    explicit = []
    if applied is not None:
        explicit = [
            f"strategy.{k}={'null' if getattr(applied, k) is None else getattr(applied, k)}"
            for k in ("limit_threshold", "trade_unit")
            if getattr(applied, k) != getattr(market, k)
        ]
    if periods is not None and periods != market.annualization:
        explicit.append(f"evaluation.annualization={periods}")
    effective = replace(applied or market, annualization=periods or market.annualization)
    return {
        "name": market.name,
        "limit_threshold": effective.limit_threshold if applied is not None else None,
        "trade_unit": effective.trade_unit if applied is not None else None,
        "annualization": effective.annualization,
        "applied_by_strategy": applied is not None,
        "reason": choice.reason,
        "explicit": explicit,
        "description": effective.describe()
        if applied is not None
        else f"{effective.annualization} periods a year; strategy {strategy[0]!r} takes no market rules "
        "(no use_market_rules): its own price limits and lots apply",
    }


def market_summary(rules: dict[str, Any]) -> str:
    """``cn — price limits ±9.5 %, lots of 100 shares, 238 periods a year (synthetic A-share-like market; ...)``."""
    explicit = f"; set explicitly: {', '.join(rules['explicit'])}" if rules["explicit"] else ""
    return f"{rules['name']} — {rules['description']} ({rules['reason']}{explicit})"
