"""What loading found in the data, as one JSON-ready dict: every run records it as ``data_report.json``.

:func:`data_report` combines the loader's ``MarketData.findings`` (calendar gaps, splits, columns used) with facts
read off the market itself: instruments, dates, suspended days (bars missing inside an instrument's life),
outliers (one-day moves beyond :data:`OUTLIER` not explained by a detected split), the benchmark; plus the
features the handler dropped and, under ``market_rules``, the trading conventions the run used (None: not stated).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qframe.core.calendar_gaps import find_gaps
from qframe.core.data import MarketData

#: |one-day return| above this is an outlier unless a detected split explains it
OUTLIER = 0.5
SHOWN = 10


def _suspended(market: MarketData, added: set[str]) -> dict[str, Any]:
    has = ~np.isnan(market.fields["close"])
    if added:  # days the loader added for calendar gaps are nobody's suspension
        keep = np.array([str(d.date()) not in added for d in market.calendar])
        has_life = has | ~keep[:, None]
    else:
        keep, has_life = np.ones(len(market.calendar), dtype=bool), has
    seen = np.maximum.accumulate(has_life, axis=0) & np.maximum.accumulate(has_life[::-1], axis=0)[::-1]
    missing = seen & ~has & keep[:, None]
    per = missing.sum(axis=0)
    order = np.argsort(-per, kind="stable")[:SHOWN]
    return {
        "bars": int(missing.sum()),
        "instruments": int((per > 0).sum()),
        "most": {str(market.instruments[j]): int(per[j]) for j in order if per[j] > 0},
    }


def _outliers(market: MarketData, splits: list[dict[str, Any]]) -> dict[str, Any]:
    close = market.fields["close"]
    # previous available close, as Qlib's $change
    idx = np.where(~np.isnan(close), np.arange(len(close))[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    last = np.take_along_axis(close, idx, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        change = close[1:] / last[:-1] - 1.0
    explained = {(s["instrument"], s["date"]) for s in splits}
    found = []
    for t, j in np.argwhere(np.abs(change) > OUTLIER):
        key = (str(market.instruments[j]), str(market.calendar[t + 1].date()))
        if key not in explained:
            found.append({"instrument": key[0], "date": key[1], "return": round(float(change[t, j]), 4)})
    return {"threshold": OUTLIER, "count": len(found), "first": found[:SHOWN]}


def data_report(
    market: MarketData,
    dropped_features: dict[str, str] | None = None,
    market_rules: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The data report of ``market`` (module docstring); ``dropped_features``: handler name -> reason."""
    found = market.findings
    gaps = found.get("calendar_gaps") or {**find_gaps(market.calendar), "mode": "keep"}
    splits = found.get("splits") or {"checked": False, "why": "the loader does not check", "found": []}
    bench = market.benchmark
    report: dict[str, Any] = {
        "name": market.name,
        "source": found.get("source"),
        "instruments": len(market.instruments),
        "dates": {
            "first": str(market.calendar[0].date()),
            "last": str(market.calendar[-1].date()),
            "count": len(market.calendar),
        },
        "fields": sorted(market.fields),
        "columns": found.get("columns"),
        "date_format": found.get("date_format"),
        "calendar_gaps": gaps,
        "suspended": _suspended(market, set(gaps.get("added_days", []))),
        "adjust": found.get("adjust"),
        "splits": splits,
        "outliers": _outliers(market, splits.get("found", [])),
        # None: features not computed (`qframe data check`)
        "dropped_features": None if dropped_features is None else dict(dropped_features),
        "benchmark": None
        if bench is None
        else {"name": str(bench.name), "days_without_value": int(bench.isna().sum()), **found.get("benchmark", {})},
        # the trading conventions of the run (limits, lots, annualisation), filled by whoever knows them
        "market_rules": market_rules,
        "notes": list(dict.fromkeys(market.notes)),
    }
    return report


def report_lines(report: dict[str, Any]) -> list[str]:
    """A few lines for a terminal: the report's gist (the JSON has the rest)."""
    d, g, s, o = report["dates"], report["calendar_gaps"], report["splits"], report["outliers"]
    lines = [f"data: {report['instruments']} instruments, {d['count']} days {d['first']}..{d['last']}"]
    gap = f"{g['count']} gap(s) of >= {g['min_weekdays']} missing weekdays"
    if g["count"]:
        longest = g["longest"]
        gap += f" (longest {longest['missing_weekdays']}, {longest['after']}..{longest['before']}; {g['mode']})"
    susp = report["suspended"]
    lines.append(f"  calendar: {gap}; suspended: {susp['bars']} bar(s) missing in {susp['instruments']} instrument(s)")
    if s.get("checked"):
        split = f"{len(s['found'])} likely split(s)" + (f", adjust={report['adjust']}" if report["adjust"] else "")
    else:
        split = f"splits not checked ({s.get('why')})"
    lines.append(f"  {split}; {o['count']} outlier(s) (|1-day return| > {o['threshold']:.0%}, no split)")
    bench = report["benchmark"]
    left_out = report["dropped_features"]
    features = "not computed here" if left_out is None else f"{len(left_out)} left out (the notes say why)"
    lines.append("  benchmark: " + ("none" if bench is None else str(bench["name"])) + f"; features: {features}")
    return lines
