"""Likely unadjusted splits in a long OHLCV panel, and adjusting prices for them.

qframe assumes prices are adjusted (continuous through splits and dividends), as Qlib's are. Raw prices show a
split as a one-day jump: a 2:1 split halves the price and doubles the volume from that day on; a 1:10 reverse
split multiplies the price by ten and divides the volume by ten. :func:`detect_splits` flags a bar whose price
moved by a simple ratio (:data:`SPLIT_RATIOS`, within ``tolerance`` in log terms, from the previous close to the
bar's open or close) while the instrument's median volume moved inversely by at least the square root of that
ratio (and at most its square), comparing the ``window`` bars from that day on with the ``window`` bars before.

``dataset.adjust`` (:data:`ADJUST_MODES`):

* ``none`` (default): prices used as given; detected splits are named in one warning note. A heuristic never
  changes your data unless asked.
* ``detected``: back-adjust: before each detected split, prices are divided by its share ratio and volumes
  multiplied by it (so the history is in today's shares); ``factor`` is divided by it too (Qlib's convention:
  ``factor`` = adjusted price / raw price, which the backtest's trade unit uses).
* ``factor``: the table's prices are raw and its ``factor`` column is Qlib's adjusted/raw ratio: prices are
  multiplied by ``factor`` and volume divided by it (as Qlib's data collectors normalise). Without this a
  ``factor`` column is taken as Qlib stores it: next to prices that are already adjusted.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from qframe.core.data import PRICE_FIELDS
from qframe.core.errors import ConfigError

ADJUST_MODES = ("none", "detected", "factor")
#: shares after / shares before: splits 2:1 ... 10:1 and 3:2, reverse splits 1:2 ... 1:10 and 2:3
SPLIT_RATIOS = tuple(
    Fraction(a, b)
    for a, b in ((2, 1), (3, 1), (4, 1), (5, 1), (10, 1), (3, 2), (1, 2), (1, 3), (1, 4), (1, 5), (1, 10), (2, 3))
)


def _ratio_text(r: Fraction) -> str:
    return f"{r.numerator}:{r.denominator}"


def detect_splits(
    close: np.ndarray,
    volume: np.ndarray,
    calendar: pd.DatetimeIndex,
    instruments: pd.Index,
    open_: np.ndarray | None = None,
    tolerance: float = 0.05,
    window: int = 10,
) -> list[dict[str, Any]]:
    """Likely splits, one dict per (instrument, day): ``instrument``, ``date``, ``ratio`` ("2:1"), ``shares``
    (the share ratio as a float), ``price_ratio`` and ``volume_ratio`` observed. Sorted by date, instrument."""
    prev = pd.DataFrame(close).ffill().shift(1).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        moves = [np.log(close / prev)]
        if open_ is not None:
            moves.append(np.log(open_ / prev))
    logs = np.log(np.array([float(r) for r in SPLIT_RATIOS]))
    smallest = np.abs(logs).min() - tolerance
    big = np.zeros(close.shape, dtype=bool)
    for m in moves:
        with np.errstate(invalid="ignore"):
            big |= np.abs(m) > smallest
    found = []
    for t, j in np.argwhere(big):
        # the share ratio whose price move (-log ratio) is closest to the observed one, on the open or the close
        err = np.full(len(logs), np.inf)
        for m in moves:
            if np.isfinite(m[t, j]):
                err = np.minimum(err, np.abs(m[t, j] + logs))
        k = int(np.argmin(err))
        if err[k] > tolerance:
            continue
        bars = np.flatnonzero(~np.isnan(close[:, j]))
        here = int(np.searchsorted(bars, t))
        before = volume[bars[max(0, here - window) : here], j]
        after = volume[bars[here : here + window], j]
        if len(before) < 2 or len(after) < 2:
            continue
        vb, va = float(np.median(before)), float(np.median(after))
        if vb <= 0 or va <= 0:
            continue
        seen = np.log(va / vb) / logs[k]  # 1: volume moved by exactly the share ratio
        if not 0.5 <= seen <= 2.0:
            continue
        found.append(
            {
                "instrument": str(instruments[j]),
                "date": str(calendar[t].date()),
                "ratio": _ratio_text(SPLIT_RATIOS[k]),
                "shares": float(SPLIT_RATIOS[k]),
                "price_ratio": round(float(close[t, j] / prev[t, j]), 4),
                "volume_ratio": round(va / vb, 3),
            }
        )
    return sorted(found, key=lambda s: (s["date"], s["instrument"]))


def back_adjust(
    fields: dict[str, np.ndarray], splits: list[dict[str, Any]], calendar: pd.DatetimeIndex, instruments: pd.Index
) -> dict[str, np.ndarray]:
    """``fields`` with history before each split in today's shares (see ``detected`` in the module docstring)."""
    out = {k: v.copy() for k, v in fields.items()}
    for s in splits:
        t = int(calendar.get_loc(pd.Timestamp(s["date"])))
        j = int(instruments.get_loc(s["instrument"]))
        r = Fraction(s["ratio"].replace(":", "/"))
        # multiply by the denominator, divide by the numerator: exact for the integer ratios
        for key in (*PRICE_FIELDS, "factor"):
            if key in out:
                out[key][:t, j] = out[key][:t, j] * r.denominator / r.numerator
        if "volume" in out:
            out["volume"][:t, j] = out["volume"][:t, j] * r.numerator / r.denominator
    return out


def apply_factor(fields: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Raw prices and Qlib's ``factor`` (adjusted / raw) -> adjusted prices, volume in adjusted shares."""
    if "factor" not in fields:
        raise ConfigError(
            f"dataset.adjust=factor: {source} has no factor column (map yours with dataset.columns.factor=<column>); "
            f"valid options: {', '.join(ADJUST_MODES)}"
        )
    out = dict(fields)
    factor = fields["factor"]
    for key in PRICE_FIELDS:
        if key in out:
            out[key] = fields[key] * factor
    if "volume" in out:
        out["volume"] = fields["volume"] / factor
    return out


def split_note(splits: list[dict[str, Any]], mode: str, shown: int = 8) -> str | None:
    """The one warning note naming the detected splits (None when there are none)."""
    if not splits:
        return None
    listed = ", ".join(f"{s['instrument']} {s['date']} ({s['ratio']})" for s in splits[:shown])
    more = f" and {len(splits) - shown} more" if len(splits) > shown else ""
    if mode == "detected":
        return (
            f"back-adjusted {len(splits)} likely split(s) found in the prices (dataset.adjust=detected): {listed}{more}"
        )
    return (
        f"WARNING: {len(splits)} likely unadjusted split(s) (a one-day price jump by a simple ratio, volume moving "
        f"inversely): {listed}{more}; the prices are used as given (qframe assumes adjusted prices): "
        "dataset.adjust=detected back-adjusts them"
    )
