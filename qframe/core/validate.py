"""Shared checks for loaded markets and user tables.

Every dataset plugin funnels its result through :func:`select_market` (date range and
instrument filter, with messages naming the config keys) and :func:`validate_market`
(price sanity, non-empty universe), so a bad input fails the same way whatever its
format. :func:`check_table_values` runs on a raw user table before pivoting, where it
can still point at the offending row of the file.

Missing values: a NaN close means "no bar that day" (not listed, delisted, suspended),
which is how Qlib stores suspensions. A bar that has a close but lacks another price
or its volume is a broken row and an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from qframe.core.data import PRICE_FIELDS, MarketData
from qframe.core.errors import ConfigError, DataError

#: fields that must be finite and > 0 where a bar exists
POSITIVE_FIELDS = (*PRICE_FIELDS, "factor")
#: fields that must be finite and >= 0 where a bar exists
NON_NEGATIVE_FIELDS = ("volume",)
#: fields that must be present whenever close is (a bar is all or nothing)
BAR_FIELDS = ("open", "high", "low", "volume")


def _first_cell(mask: np.ndarray, market: MarketData) -> str:
    t, n = np.argwhere(mask)[0]
    return f"{market.calendar[t].date()} {market.instruments[n]}"


def validate_market(market: MarketData, source: str, complete_bars: bool = True) -> MarketData:
    """Check a loaded market; raise DataError naming ``source`` and the first bad cell.

    Checks: non-empty sorted unique calendar, unique instruments, at least one bar,
    prices/factor finite and > 0 and volume finite and >= 0 where a bar exists,
    complete bars (unless ``complete_bars=False``: then incomplete bars only add a
    note), a non-empty universe, a finite positive benchmark.
    """
    cal = market.calendar
    if len(cal) == 0:
        raise DataError(f"{source}: no trading days")
    if not cal.is_monotonic_increasing or not cal.is_unique:
        raise DataError(f"{source}: calendar is not sorted and unique")
    if len(market.instruments) == 0:
        raise DataError(f"{source}: no instruments")
    if not market.instruments.is_unique:
        dup = market.instruments[market.instruments.duplicated()][0]
        raise DataError(f"{source}: instrument {dup!r} appears twice")
    close = market.fields["close"]
    has_bar = ~np.isnan(close)
    if not has_bar.any():
        raise DataError(f"{source}: no bar has a close price (all NaN)")
    for key, arr in market.fields.items():
        if key in POSITIVE_FIELDS:
            bad = has_bar & ~(arr > 0) & ~np.isnan(arr) | np.isinf(arr)
            what = "non-positive or infinite"
        elif key in NON_NEGATIVE_FIELDS:
            bad = has_bar & (arr < 0) | np.isinf(arr)
            what = "negative or infinite"
        else:
            bad = np.isinf(arr)
            what = "infinite"
        if bad.any():
            raise DataError(
                f"{source}: field {key!r} has {int(bad.sum())} {what} value(s); first at {_first_cell(bad, market)}; "
                "fix or drop those rows"
            )
        if key in BAR_FIELDS:
            missing = has_bar & np.isnan(arr)
            if missing.any() and not complete_bars:
                market.notes.append(f"field {key!r} is NaN in {int(missing.sum())} bar(s) that have a close")
            elif missing.any():
                raise DataError(
                    f"{source}: field {key!r} is missing in {int(missing.sum())} bar(s) that have a close; first at "
                    f"{_first_cell(missing, market)}; a bar needs all of its fields (or a NaN close for no bar)"
                )
    if not market.universe.any():
        raise DataError(f"{source}: the universe is empty (no instrument is a member on any day)")
    if market.benchmark is not None:
        b = market.benchmark.to_numpy(dtype=float)
        bad = np.isinf(b) | (b <= 0)
        if bad.any():
            raise DataError(
                f"{source}: benchmark has {int(bad.sum())} non-positive or infinite value(s); "
                f"first at {market.benchmark.index[np.argmax(bad)]}"
            )
        if np.isnan(b).all():
            raise DataError(f"{source}: the benchmark has no value on any day of the calendar")
    return market


def select_market(
    market: MarketData,
    source: str,
    start: str | None = None,
    end: str | None = None,
    instruments: Sequence[str] | None = None,
    key: str = "dataset",
) -> MarketData:
    """Restrict ``market`` to [start, end] and to ``instruments``; raise naming ``{key}.start`` etc. if empty."""
    try:
        lo = None if start is None else pd.Timestamp(start)
        hi = None if end is None else pd.Timestamp(end)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{key}.start/{key}.end: cannot parse {start!r}..{end!r} as dates ({exc})") from exc
    if market.calendar.unit != "ns":
        # one datetime unit for every loader, so fingerprints (which hash the raw int64s) agree across formats
        market.calendar = market.calendar.as_unit("ns")
        if market.benchmark is not None:
            market.benchmark.index = market.benchmark.index.as_unit("ns")
    cal = market.calendar
    if lo is not None and hi is not None and hi < lo:
        raise ConfigError(f"{key}.start={start} is after {key}.end={end}")
    in_range = np.ones(len(cal), dtype=bool)
    if lo is not None:
        in_range &= cal >= lo
    if hi is not None:
        in_range &= cal <= hi
    if not in_range.any():
        raise DataError(
            f"{source}: {key}.start={start} .. {key}.end={end} holds no trading day; the data spans "
            f"{cal[0].date()}..{cal[-1].date()}; choose dates inside that span"
        )
    if not in_range.all():
        market = market.slice_dates(start, end)
    if instruments is not None:
        if isinstance(instruments, str):
            instruments = [instruments]
        wanted = pd.Index([str(c) for c in instruments])
        unknown = wanted.difference(market.instruments)
        if len(wanted) == 0 or len(unknown) == len(wanted):
            raise DataError(
                f"{source}: none of {key}.instruments ({', '.join(wanted[:10]) or 'empty list'}) is in the data; "
                f"available e.g. {', '.join(map(str, market.instruments[:5]))}"
            )
        if len(unknown):
            raise DataError(
                f"{source}: {key}.instruments names {len(unknown)} code(s) not in the data: "
                f"{', '.join(unknown[:10])}; remove them from {key}.instruments"
            )
        cols = market.instruments.get_indexer(wanted.unique())
        market = market.take_instruments(cols)
    if not market.universe.any():
        raise DataError(
            f"{source}: the universe has no member between {market.calendar[0].date()} and "
            f"{market.calendar[-1].date()}; widen {key}.start/{key}.end or check {key}.instruments / the universe file"
        )
    return market


def check_table_values(
    df: pd.DataFrame,
    source: str,
    value_columns: Mapping[str, str],
    date_col: str,
    instrument_col: str | None = None,
) -> None:
    """Check a raw long table's value columns before pivoting; errors name the file row.

    ``value_columns`` maps qframe field -> the user's column name. A row whose close is
    NaN is a missing bar; any other NaN in a price/volume column, any inf, any non-positive
    price or negative volume is an error naming file, column, count and first row.
    """
    close = df[value_columns["close"]].to_numpy(dtype=float, na_value=np.nan)
    has_bar = ~np.isnan(close)

    def where(mask: np.ndarray) -> str:
        i = int(np.argmax(mask))
        inst = f", instrument {df[instrument_col].iat[i]}" if instrument_col else ""
        return f"first at data row {i + 1} (date {df[date_col].iat[i]}{inst})"

    for field, col in value_columns.items():
        try:
            arr = df[col].to_numpy(dtype=float, na_value=np.nan)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{source}: column {col!r} ({field}) is not numeric ({exc}); fix the file") from exc
        checks = [(np.isinf(arr), "infinite")]
        if field in POSITIVE_FIELDS:
            checks.append((arr <= 0, "zero or negative"))
        elif field in NON_NEGATIVE_FIELDS:
            checks.append((arr < 0, "negative"))
        if field in BAR_FIELDS or field in ("vwap", "factor"):
            checks.append((has_bar & np.isnan(arr), "NaN (while close is present)"))
        if field != "close" and field in BAR_FIELDS:
            checks.append((~has_bar & ~np.isnan(arr), "present while close is NaN"))
        for mask, what in checks:
            if mask.any():
                raise DataError(
                    f"{source}: column {col!r} ({field}) has {int(mask.sum())} {what} value(s), {where(mask)}; "
                    "fix or drop those rows (a missing bar is a row with a NaN close and NaN fields, or no row)"
                )


def check_wide_values(values: np.ndarray, columns: Sequence[str], dates: Sequence[Any], source: str) -> None:
    """Check a wide close table (rows = dates, columns = instruments): NaN = no bar; inf or <= 0 is an error."""
    for mask, what in ((np.isinf(values), "infinite"), (values <= 0, "zero or negative")):
        if mask.any():
            counts = mask.sum(axis=0)
            j = int(np.argmax(counts > 0))
            i = int(np.argmax(mask[:, j]))
            raise DataError(
                f"{source}: {int(mask.sum())} {what} close value(s); first in column {columns[j]!r} "
                f"({int(counts[j])} there) at data row {i + 1} (date {dates[i]}); fix them or leave the cell empty"
            )
