"""The model-ready sample: one row per (date, instrument) in the universe.

A :class:`Panel` keeps features as one float32 matrix plus integer row keys
into the market's calendar and instrument list, so processors and models work
on plain numpy arrays and cross-sectional operations can use the fact that
rows are sorted by date.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Panel:
    """Features ``X`` (n, F) float32 and label ``y`` (n,) float32, rows sorted by date.

    ``day`` and ``inst`` are row keys into ``calendar`` and ``instruments``.
    """

    X: np.ndarray
    y: np.ndarray
    day: np.ndarray
    inst: np.ndarray
    names: list[str]
    calendar: pd.DatetimeIndex
    instruments: pd.Index
    #: drops resident pages of a file-backed X (set by the feature cache; views of it don't inherit it)
    release: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.y)

    def __getstate__(self) -> dict:
        # pickled for another process (a Ray worker): ``release`` acts on this process's file mapping, and the
        # arrays are pickled by value
        return {**self.__dict__, "release": None}

    def subset(self, mask: np.ndarray) -> Panel:
        """Rows where ``mask`` is true (order kept, so still sorted by date)."""
        return Panel(
            self.X[mask], self.y[mask], self.day[mask], self.inst[mask], self.names, self.calendar, self.instruments
        )

    def rows(self, start: int, stop: int) -> Panel:
        """Rows ``start:stop`` as views (no copy of the feature matrix)."""
        sl = slice(start, stop)
        return Panel(self.X[sl], self.y[sl], self.day[sl], self.inst[sl], self.names, self.calendar, self.instruments)

    def index(self) -> pd.MultiIndex:
        # the row keys are codes into the (unique) calendar and instruments already: no factorizing (~7 ms a call
        # on 74k rows), and the same index from_arrays would build
        index = pd.MultiIndex(
            levels=[self.calendar, self.instruments],
            codes=[self.day, self.inst],
            names=["datetime", "instrument"],
            verify_integrity=False,
        )
        return index.remove_unused_levels()

    def series(self, values: np.ndarray, name: str) -> pd.Series:
        """``values`` (one per row) as a Series on the (datetime, instrument) index."""
        return pd.Series(np.asarray(values, dtype=np.float64), index=self.index(), name=name)

    def date_bounds(self) -> np.ndarray:
        """Start offsets of each date's block of rows, plus the end: rows ``b[i]:b[i+1]`` share a date."""
        if len(self.day) == 0:
            return np.zeros(1, dtype=np.int64)
        starts = np.flatnonzero(np.r_[True, self.day[1:] != self.day[:-1]])
        return np.r_[starts, len(self.day)]
