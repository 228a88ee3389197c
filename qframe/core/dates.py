"""Reading a date column the way its author meant it.

A daily market needs one trading day per row, without a time part. :func:`parse_trading_days` accepts ISO
strings (with or without a time and an offset), ``YYYYMMDD`` integers or strings (``20090821`` is a date, never
20,090,821 nanoseconds after 1970), common formats (``2009/08/21``, ``08/21/2009``, ``21.08.2009``,
``21 Aug 2009``...) and datetime columns, timezone-aware ones included: a stamp becomes its local calendar day
(``2009-08-21 16:00-04:00`` is 2009-08-21). Values in different formats may be mixed as long as each reads one
way. A column in which ``dd/mm`` and ``mm/dd`` both fit every value is ambiguous: that, like a value no format
reads, is one :class:`DataError` naming the column, a sample value and ``dataset.date_format=...``, a strptime
format that then reads every value.

Only the distinct values are parsed, so a long table costs no more than its calendar.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd

from qframe.core.errors import DataError

#: formats tried on text dates, in order; each must read a value entirely to count
FORMATS = (
    "%Y-%m-%d",
    "%Y%m%d",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%d.%m.%Y",
    "%m-%d-%Y",
    "%d-%m-%Y",
    "%d %b %Y",
    "%d-%b-%Y",
    "%b %d, %Y",
    "%b %d %Y",
    "%d %B %Y",
    "%B %d, %Y",
)
# ISO 8601 with a time part and maybe an offset (2009-08-21T16:00:00-04:00, 2009-08-21 09:30:00Z)
_ISO_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?$")
ISO_STAMP = "ISO 8601 timestamp"


def _hint(example: str) -> str:
    return f"state the format with dataset.date_format='{example}' (a strptime format)"


def _trading_day(stamps: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Each stamp's local calendar day: the offset dropped (local wall time kept), the time part cut."""
    if stamps.tz is not None:
        stamps = stamps.tz_localize(None)
    return stamps.normalize()


def _local_day(value: object) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_localize(None)
    return stamp.normalize()


def _as_text(uniques: np.ndarray) -> np.ndarray:
    """Distinct raw values as text; integral floats (an integer column with a gap, read by pandas) lose their .0."""
    out = []
    for v in uniques:
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        out.append(str(v).strip())
    return np.array(out, dtype=object)


def _parse_with(text: np.ndarray, fmt: str) -> pd.DatetimeIndex:
    """``text`` read with one format; NaT where it does not read the whole value."""
    if fmt == ISO_STAMP:
        return pd.DatetimeIndex([_local_day(s) if _ISO_STAMP.match(s) else pd.NaT for s in text])
    return pd.DatetimeIndex(pd.to_datetime(pd.Series(text), format=fmt, errors="coerce"))


def _infer(text: np.ndarray, source: str, column: str) -> pd.DatetimeIndex:
    """The dates of distinct text values, format by format (see module docstring)."""
    parsed = {fmt: _parse_with(text, fmt).to_numpy(dtype="datetime64[ns]") for fmt in (*FORMATS, ISO_STAMP)}
    ok = {fmt: ~np.isnat(p) for fmt, p in parsed.items()}
    result = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[ns]")
    unresolved = []
    for i in range(len(text)):
        # several formats reading one value the same way (01/01/2009 as m/d and d/m) are no conflict
        distinct = {parsed[fmt][i] for fmt in parsed if ok[fmt][i]}
        if len(distinct) == 1:
            result[i] = distinct.pop()
        elif not distinct:
            raise DataError(
                f"{source}: column {column!r} holds values that are not dates in any known format, e.g. "
                f"{text[i]!r}; {_hint('%Y-%m-%d')}, or fix the file"
            )
        else:
            unresolved.append(i)
    # values read differently by competing formats (dd/mm vs mm/dd): the competitor that reads every value of its
    # kind wins (12/25/2009 elsewhere in the column settles 03/04/2009 as March 4th)
    for i in unresolved:
        competitors = [fmt for fmt in parsed if ok[fmt][i]]
        kind = np.any(np.vstack([ok[f] for f in competitors]), axis=0)
        winners = {parsed[f][i] for f in competitors if ok[f][kind].all()}
        if len(winners) != 1:
            readings = ", ".join(f"{f} reads {pd.Timestamp(parsed[f][i]).date()}" for f in competitors[:2])
            raise DataError(
                f"{source}: column {column!r} has ambiguous dates such as {text[i]!r} ({readings}), and each "
                f"reading fits every such value; {_hint(competitors[1])}"
            )
        result[i] = winners.pop()
    return pd.DatetimeIndex(result)


def parse_trading_days(values: pd.Series, source: str, column: str, date_format: str | None = None) -> pd.DatetimeIndex:
    """The trading day of each value of a date column (naive, midnight), or one DataError (module docstring).

    ``date_format``: a strptime format that must read every value (``dataset.date_format``).
    """
    values = pd.Series(values).reset_index(drop=True)
    missing = values.isna()
    if missing.any():
        raise DataError(
            f"{source}: column {column!r} has {int(missing.sum())} empty value(s), first at data row "
            f"{int(np.argmax(missing.to_numpy())) + 1}; every row needs a date"
        )
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(values.dtype):
        if date_format:
            raise DataError(
                f"{source}: column {column!r} already holds timestamps; dataset.date_format={date_format!r} is for "
                "text or integer dates: remove it"
            )
        return _trading_day(pd.DatetimeIndex(values)).as_unit("ns")
    codes, uniques = pd.factorize(values)
    uniques = np.asarray(uniques, dtype=object)
    if all(isinstance(v, (dt.date, np.datetime64)) for v in uniques):
        # an object column of datetime/Timestamp objects (perhaps of several time zones): each one's local day
        days = pd.DatetimeIndex([_local_day(v) for v in uniques])
        return pd.DatetimeIndex(days[codes]).as_unit("ns")
    text = _as_text(uniques)
    if date_format:
        days = pd.DatetimeIndex(pd.to_datetime(pd.Series(text), format=date_format, errors="coerce"))
        bad = np.flatnonzero(days.isna())
        if len(bad):
            raise DataError(
                f"{source}: column {column!r}: {len(bad)} distinct value(s) do not match "
                f"dataset.date_format={date_format!r}, e.g. {text[bad[0]]!r}; fix the format or the file"
            )
        days = _trading_day(days)
    else:
        days = _trading_day(_infer(text, source, column))
    return pd.DatetimeIndex(days[codes]).as_unit("ns")
