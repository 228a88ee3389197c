"""Building :class:`~qframe.core.tearsheet.model.ReportInputs`: the header and closes the report needs."""

from __future__ import annotations

from typing import Any

import pandas as pd

from qframe.core.tearsheet.analysis import DECAY_HORIZONS
from qframe.core.tearsheet.model import ReportInputs


def _name(section: Any) -> str:
    if isinstance(section, dict):
        return str(section.get("name") or section.get("_target_") or "?")
    return str(section) if section is not None else "-"


def _handler(section: Any) -> str:
    if not isinstance(section, dict):
        return _name(section)
    horizon = (section.get("label") or {}).get("horizon")
    return _name(section.get("features")) + (f", label horizon {horizon}" if horizon is not None else "")


def header(cfg: dict[str, Any], report: pd.DataFrame, mode: str, periods: int, data: dict | None) -> list[tuple]:
    """The short header: what was run, on which data, over which days, with which conventions."""
    from qframe.core.markets import market_summary

    strategy = cfg.get("strategy") or {}
    knobs = ", ".join(f"{k}={strategy[k]}" for k in ("topk", "n_drop") if isinstance(strategy, dict) and k in strategy)
    rows = [
        ("model", _name(cfg.get("model"))),
        ("dataset", (data or {}).get("name") or _name(cfg.get("dataset"))),
        ("handler", _handler(cfg.get("handler"))),
        ("strategy", _name(strategy) + (f" ({knobs})" if knobs else "")),
    ]
    if len(report):
        rows.append(("test segment", f"{report.index[0].date()}..{report.index[-1].date()} ({len(report)} days)"))
    rows.append(("accumulation", f"{mode}, annualised with {periods} periods"))
    rules = (data or {}).get("market_rules")
    if rules:
        rows.append(("market rules", market_summary(rules)))
    if cfg.get("seed") is not None:
        rows.append(("seed", str(cfg["seed"])))
    return rows


def closes(market: Any, dates: pd.DatetimeIndex) -> pd.DataFrame:
    """The market's closes over ``dates`` and the days after them that the longest forward return needs."""
    cal = market.calendar
    lo = int(cal.searchsorted(dates.min(), "left"))
    hi = min(len(cal), int(cal.searchsorted(dates.max(), "right")) + max(DECAY_HORIZONS) + 1)
    return pd.DataFrame(market.fields["close"][lo:hi], index=cal[lo:hi], columns=market.instruments)


def live_inputs(
    run: Any,
    cfg: dict[str, Any],
    scores: pd.Series,
    daily_ic: pd.DataFrame,
    report: pd.DataFrame,
    market: Any,
    metrics: dict[str, float],
    checks: Any,
    mode: str,
    periods: int,
    data: dict | None,
) -> ReportInputs:
    """The report inputs of a run that has just finished (``run``: its MLflow run; ``checks``: its controls)."""
    from qframe.core.data_report import report_lines

    return ReportInputs(
        run_id=run.info.run_id,
        name=run.info.run_name or "",
        scores=scores,
        daily_ic=daily_ic,
        report=report,
        metrics=metrics,
        mode=mode,
        periods=int(periods),
        close=closes(market, pd.DatetimeIndex(scores.index.get_level_values("datetime"))),
        band=checks.band(mode) if checks is not None else None,
        buy_and_hold=checks.buy_and_hold_curve(mode) if checks is not None else None,
        header=header(cfg, report, mode, int(periods), data),
        data_lines=report_lines(data) if data else [],
        control_lines=list(checks.lines) if checks is not None else [],
        notes=list(dict.fromkeys(market.notes)),
    )
