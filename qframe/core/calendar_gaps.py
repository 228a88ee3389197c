"""Weekdays missing from a trading calendar: found, reported, and optionally treated as days without bars.

An exchange closes on single weekdays all the time (holidays), so a lone missing weekday says nothing. A run of
``min_weekdays`` (default 2) or more consecutive missing weekdays is a *gap*: a closure (Golden Week, a hurricane)
or days lost by the data. Across a gap the next bar's return spans several days while features and labels count
it as one; ``dataset.calendar_gaps`` chooses what to do (:data:`MODES`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from qframe.core.errors import ConfigError

#: keep: bridge gaps (the return across one counts as one day); missing: add the gap's weekdays as days without bars
MODES = ("keep", "missing")
SHOWN = 20


def find_gaps(calendar: pd.DatetimeIndex, min_weekdays: int = 2) -> dict[str, Any]:
    """Runs of >= ``min_weekdays`` missing weekdays between consecutive days of ``calendar`` (JSON-ready)."""
    days = np.asarray(calendar.values.astype("datetime64[D]"))
    between = np.busday_count(days[:-1] + 1, days[1:]) if len(days) > 1 else np.zeros(0, dtype=int)
    at = np.flatnonzero(between >= min_weekdays)
    gaps = [{"after": str(days[i]), "before": str(days[i + 1]), "missing_weekdays": int(between[i])} for i in at]
    longest = max(gaps, key=lambda g: g["missing_weekdays"]) if gaps else None
    return {
        "min_weekdays": int(min_weekdays),
        "count": len(gaps),
        "missing_weekdays": int(between[at].sum()),
        "longest": longest,
        "gaps": gaps[:SHOWN],
        "single_missing_weekdays": int((between == 1).sum()),
    }


def gap_note(found: dict[str, Any], mode: str) -> str | None:
    """The one note a loader adds about the gaps of ``found`` (None when there is none)."""
    if not found["count"]:
        return None
    g = found["longest"]
    what = (
        "kept: the return across a gap counts as one day (dataset.calendar_gaps=missing treats those days as missing)"
        if mode == "keep"
        else "treated as missing (dataset.calendar_gaps=missing): days without bars, no one-day return across them"
    )
    return (
        f"calendar: {found['count']} gap(s) of >= {found['min_weekdays']} consecutive missing weekdays "
        f"({found['missing_weekdays']} weekdays in all; longest {g['missing_weekdays']} between {g['after']} and "
        f"{g['before']}); {what}"
    )


def check_mode(mode: str, min_weekdays: Any) -> int:
    """Validate ``dataset.calendar_gaps`` / ``dataset.calendar_gap_weekdays``; the latter as an int."""
    if mode not in MODES:
        raise ConfigError(f"dataset.calendar_gaps={mode!r}; valid options: {', '.join(MODES)}")
    try:
        n = int(min_weekdays)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or str(n) != str(min_weekdays).strip():
        raise ConfigError(f"dataset.calendar_gap_weekdays={min_weekdays!r}: a whole number of weekdays >= 1")
    return n


def insert_gap_days(
    calendar: pd.DatetimeIndex, fields: dict[str, np.ndarray], found: dict[str, Any]
) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray], list[str]]:
    """The calendar with every weekday of every gap in ``found`` added as a day without bars (all fields NaN).

    ``change`` on the first bar after a gap is NaN (no one-day return spans it), so are the features and labels
    whose window reaches into the gap. Returns the new calendar, the new fields and the added days (ISO dates).
    """
    gaps = find_gaps(calendar, found["min_weekdays"])  # all of them, not only the ones shown
    if not gaps["count"]:
        return calendar, fields, []
    days = np.asarray(calendar.values.astype("datetime64[D]"))
    between = np.busday_count(days[:-1] + 1, days[1:])
    added = []
    for i in np.flatnonzero(between >= found["min_weekdays"]):
        span = np.arange(days[i] + 1, days[i + 1])
        added.extend(span[np.is_busday(span)])
    added_index = pd.DatetimeIndex(np.array(added, dtype="datetime64[ns]"))
    full = calendar.union(added_index)
    rows = full.get_indexer(calendar)
    out = {}
    for key, arr in fields.items():
        grown = np.full((len(full), arr.shape[1]), np.nan)
        grown[rows] = arr
        out[key] = grown
    if "change" in out:
        inserted = np.ones(len(full), dtype=bool)
        inserted[rows] = False
        after = np.flatnonzero(~inserted[1:] & inserted[:-1]) + 1
        out["change"][after] = np.nan
    return full, out, [str(d.date()) for d in added_index]
