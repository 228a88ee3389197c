"""The in-memory market: calendar-aligned (date x instrument) arrays.

Every dataset plugin returns a :class:`MarketData`. Features, labels and the
backtest all work on these dense arrays, which makes them vectorised over the
whole panel: row ``t`` is a calendar day, column ``j`` an instrument, and a
missing bar (not listed yet, delisted, suspended) is NaN.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qframe.core.errors import DataError

PRICE_FIELDS = ("open", "high", "low", "close", "vwap")
OHLCV_FIELDS = ("open", "high", "low", "close", "volume")


@dataclass
class MarketData:
    """A daily market on a common calendar.

    Attributes:
        calendar: trading days, sorted, unique (length T).
        instruments: instrument codes (length N).
        fields: name -> float64 array of shape (T, N). ``close`` is required;
            ``open``, ``high``, ``low``, ``volume``, ``vwap``, ``factor`` and
            ``change`` are optional. Prices are adjusted.
        universe: bool array (T, N): instrument j is in the research universe
            on day t. Defaults to "has a bar that day".
        benchmark: benchmark close indexed by date, or None.
        name: a short label for messages.
        notes: one-line remarks collected while loading (e.g. vwap fallback).
        findings: what the loader found in the source, JSON-ready (calendar gaps, splits, columns used...);
            :mod:`qframe.core.data_report` turns it, with the market itself, into the run's data report.
    """

    calendar: pd.DatetimeIndex
    instruments: pd.Index
    fields: dict[str, np.ndarray]
    universe: np.ndarray | None = None
    benchmark: pd.Series | None = None
    name: str = "market"
    notes: list[str] = field(default_factory=list)
    findings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = (len(self.calendar), len(self.instruments))
        if "close" not in self.fields:
            raise DataError(f"{self.name}: no 'close' field; a market needs at least closes")
        for key, arr in self.fields.items():
            if arr.shape != shape:
                raise DataError(f"{self.name}: field {key!r} has shape {arr.shape}, expected {shape}")
        if self.universe is None:
            self.universe = ~np.isnan(self.fields["close"])
        if self.universe.shape != shape:
            raise DataError(f"{self.name}: universe has shape {self.universe.shape}, expected {shape}")

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.calendar), len(self.instruments)

    def has(self, *names: str) -> bool:
        return all(n in self.fields for n in names)

    def fingerprint(self) -> str:
        """A content hash of the market (calendar, instruments, fields, universe, benchmark); computed once."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            cached = self.__dict__["_fingerprint"] = self._content_hash()
        return cached

    def _content_hash(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update(np.asarray(self.calendar.asi8).tobytes())
        h.update("\x1f".join(map(str, self.instruments)).encode())
        for key in sorted(self.fields):
            h.update(key.encode())
            h.update(np.ascontiguousarray(self.fields[key]).tobytes())
        h.update(np.packbits(self.universe).tobytes())
        if self.benchmark is not None:
            h.update(np.ascontiguousarray(self.benchmark.to_numpy(dtype=float)).tobytes())
        return h.hexdigest()

    def slice_dates(self, start: str | None = None, end: str | None = None) -> MarketData:
        """Restrict to calendar days in [start, end] (inclusive; None = open)."""
        lo = 0 if start is None else int(self.calendar.searchsorted(pd.Timestamp(start), "left"))
        hi = len(self.calendar) if end is None else int(self.calendar.searchsorted(pd.Timestamp(end), "right"))
        if hi <= lo:
            raise DataError(
                f"{self.name}: date range {start}..{end} holds no trading day "
                f"(data spans {self.calendar[0].date()}..{self.calendar[-1].date()})"
            )
        bench = None if self.benchmark is None else self.benchmark.loc[self.calendar[lo] : self.calendar[hi - 1]]
        return MarketData(
            calendar=self.calendar[lo:hi],
            instruments=self.instruments,
            fields={k: v[lo:hi] for k, v in self.fields.items()},
            universe=self.universe[lo:hi],
            benchmark=bench,
            name=self.name,
            notes=list(self.notes),
            findings=self.findings,
        )

    def take_instruments(self, cols: slice | np.ndarray) -> MarketData:
        """The market restricted to some instruments (a slice gives views of the field arrays)."""
        return MarketData(
            calendar=self.calendar,
            instruments=self.instruments[cols],
            fields={k: v[:, cols] for k, v in self.fields.items()},
            universe=self.universe[:, cols],
            benchmark=self.benchmark,
            name=self.name,
            notes=list(self.notes),
            findings=self.findings,
        )

    def to_long(self) -> pd.DataFrame:
        """Long table indexed by (date, instrument) of the bars that exist (close not NaN)."""
        t_idx, n_idx = np.nonzero(~np.isnan(self.fields["close"]))
        index = pd.MultiIndex.from_arrays(
            [self.calendar[t_idx], self.instruments[n_idx]], names=["datetime", "instrument"]
        )
        return pd.DataFrame({k: v[t_idx, n_idx] for k, v in self.fields.items()}, index=index)
