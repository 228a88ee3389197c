"""Windows of the last k days per instrument over a feature panel, gathered by index.

A :class:`TimeSeriesSampler` turns a :class:`~qframe.core.panel.Panel` (one row per
date and instrument) into sequence samples ``(k, F)``: row r's sample holds the
features of the same instrument on the k calendar days ending at r's day, oldest
first (Qlib's TSDataSampler layout). Nothing is copied per sample up front: the
sampler keeps a (days x instruments) table of row numbers and gathers a batch's
windows from the panels' feature matrices when asked, so memory is one int table
plus one batch. Days on which an instrument has no row (not yet listed, suspended,
out of the universe, label dropped) are filled with ``fill_value``.

With ``fill="ffill_bfill"`` (Qlib's ``fillna_type="ffill+bfill"`` of ``TSDataSampler``, which its GRU/ALSTM
benchmarks use) a day without a row takes the row of the nearest earlier day of the window, and the days before
an instrument's first row in the window (or before the calendar starts) the first one after: the fill works on
whole rows, as Qlib's does on its row indices; NaN values inside a row are left to ``fill_nan``.

Earlier panels can be passed as ``history`` (e.g. the train segment before valid),
so the first windows of a segment look back across the segment boundary rather than
being padded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qframe.core.errors import ConfigError
from qframe.core.panel import Panel

#: how days without a row are filled: with ``fill_value`` ("value"), or from the nearest day ("ffill_bfill")
ROW_FILLS = ("value", "ffill_bfill")


class TimeSeriesSampler:
    """Sequence samples ``(window, F)`` for every row of ``panel``.

    Args:
        panel: the rows to sample (sorted by date, as every Panel is).
        window: k, the number of days per sample (the row's day and the k-1 days before it).
        history: earlier panels on the same calendar/instruments whose rows may fill the first windows.
        fill_value: value for days without a row (and for NaN features when ``fill_nan``).
        fill_nan: also replace NaN feature values by ``fill_value`` (networks cannot take NaN).
        fill: "value" (days without a row are ``fill_value``) or "ffill_bfill" (they repeat the nearest earlier
            day's row of the window, the first days the nearest later one; a window with no row at all stays
            ``fill_value``).
    """

    def __init__(
        self,
        panel: Panel,
        window: int,
        history: Sequence[Panel] = (),
        fill_value: float = 0.0,
        fill_nan: bool = True,
        fill: str = "value",
    ) -> None:
        window = int(window)
        if fill not in ROW_FILLS:
            raise ConfigError(f"time-series fill must be one of {', '.join(ROW_FILLS)}, got {fill!r}")
        self.fill = fill
        if window < 1:
            raise ConfigError(f"time-series window must be >= 1 day, got {window}")
        self.panel = panel
        self.window = window
        self.fill_value = np.float32(fill_value)
        self.fill_nan = fill_nan
        self.n_features = panel.X.shape[1]
        if len(panel) == 0:
            self._sources: list[Panel] = [panel]
            self._offsets = np.zeros(2, dtype=np.int64)
            self._table = np.full((0, 0), -1, dtype=np.int64)
            self._day0 = 0
            return
        first, last = int(panel.day[0]), int(panel.day[-1])
        day0 = max(first - window + 1, 0)
        # only history rows inside the look-back reach matter
        sources = [h.rows(*np.searchsorted(h.day, [day0, first], "left")) for h in history if len(h)]
        sources = [h for h in sources if len(h)]
        for h in sources:
            if h.X.shape[1] != self.n_features:
                raise ConfigError(f"history panel has {h.X.shape[1]} features, the panel {self.n_features}")
        sources.append(panel)
        self._sources = sources
        self._offsets = np.cumsum([0, *(len(s) for s in sources)]).astype(np.int64)
        n_inst = len(panel.instruments)
        table = np.full((last - day0 + 1, n_inst), -1, dtype=np.int64)
        for s, off in zip(sources, self._offsets[:-1], strict=True):
            # later sources overwrite earlier ones on a shared day: the panel's own rows win
            table[s.day - day0, s.inst] = off + np.arange(len(s), dtype=np.int64)
        self._table = table
        self._day0 = day0

    def __len__(self) -> int:
        return len(self.panel)

    def indices(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), window) global source-row numbers of the windows of panel ``rows``; -1 = no row that day."""
        rows = np.asarray(rows, dtype=np.int64)
        days = self.panel.day[rows].astype(np.int64)[:, None] - self._day0 - np.arange(self.window - 1, -1, -1)
        inside = days >= 0
        idx = self._table[np.where(inside, days, 0), self.panel.inst[rows].astype(np.int64)[:, None]]
        idx = np.where(inside, idx, -1)
        if self.fill == "ffill_bfill":
            idx = _fill_forward(_fill_forward(idx)[:, ::-1])[:, ::-1]  # the second pass, reversed, back-fills
        return idx

    def batch(self, rows: np.ndarray) -> np.ndarray:
        """float32 (len(rows), window, F): the windows of panel ``rows``, oldest day first."""
        idx = self.indices(rows)
        out = np.full((*idx.shape, self.n_features), self.fill_value, dtype=np.float32)
        for s, lo, hi in zip(self._sources, self._offsets[:-1], self._offsets[1:], strict=True):
            hit = (idx >= lo) & (idx < hi)
            if hit.any():
                out[hit] = s.X[idx[hit] - lo]
        if self.fill_nan:
            np.nan_to_num(out, copy=False, nan=self.fill_value, posinf=self.fill_value, neginf=self.fill_value)
        return out


def _fill_forward(idx: np.ndarray) -> np.ndarray:
    """Each -1 of every row of ``idx`` replaced by the last value >= 0 before it (leading -1 stay)."""
    pos = np.where(idx >= 0, np.arange(idx.shape[1]), 0)
    np.maximum.accumulate(pos, axis=1, out=pos)
    return np.take_along_axis(idx, pos, axis=1)
