"""Qlib's expression operators, vectorised over a whole (date x instrument) panel.

Every operator takes (T, N) float arrays (row = calendar day, column =
instrument, NaN = no bar) and returns a (T, N) float64 array, computing all
instruments at once. Qlib evaluates an expression per instrument over that
instrument's stored bars, which are one value per calendar day from its first
stored day (NaN on suspended days). A calendar-aligned array with NaN rows
reproduces that, with one caveat: the rows *before* an instrument's first stored
bar do not exist in Qlib. Most operators skip NaN, so those rows change
nothing; the two that do not (``idxmax``/``idxmin``, whose window is raw values)
take the first stored row per column (``start``) to cut their windows there.

Semantics, operator by operator (Qlib 0.9.7, ``qlib/data/ops.py``):

* ``mean sum std max min quantile rank corr``: pandas ``rolling(N, min_periods=1)``
  semantics (NaN skipped; ``std`` needs two values, ddof=1). ``std`` and
  ``corr`` run pandas' own kernels over the whole panel, so they match Qlib bit
  for bit; ``max min rank`` are exact lag-by-lag passes, ``mean``/``sum`` use
  cumulative sums and ``quantile`` a sort of each window (faster than pandas;
  equal to it within ~1e-15 relative).
* ``slope rsquare resi``: Qlib's Cython kernels: an OLS of the window's
  non-NaN values on their position 1..N inside the window; a value is returned
  even when today's input is NaN (``resi`` then is NaN); fewer than two values
  give NaN. ``rsquare`` is NaN where the rolling std of the input is ~0
  (``|std| <= 2e-5``) and ``corr`` where either input's is.
* ``idxmax idxmin``: ``rolling.apply(argmax + 1, raw=True)``: 1-based position
  in the (start-truncated) window; numpy's argmax/argmin return the first NaN
  when the window holds one, so a suspended day inside the window wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

# Qlib masks Corr and Rsquare where np.isclose(rolling std, 0, atol=2e-05)
STD_ZERO_ATOL = 2e-05


def _frame(x: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(x, copy=False)


def _rolling(x: np.ndarray, window: int):
    return _frame(x).rolling(window, min_periods=1)


def _out(frame: pd.DataFrame) -> np.ndarray:
    arr = frame.to_numpy(dtype=np.float64, copy=False)
    if not arr.flags.writeable:
        # a read-only view under copy-on-write; the frame is a temporary we own, so unlock it
        try:
            arr.flags.writeable = True
        except ValueError:
            arr = arr.copy()
    return arr


# ----------------------------------------------------------------------------- element-wise


def ref(x: np.ndarray, n: int) -> np.ndarray:
    """``Ref(x, n)``: the value n rows earlier (n < 0: -n rows later); NaN where out of range."""
    out = np.full_like(x, np.nan, dtype=np.result_type(x.dtype, np.float32))
    if n == 0:
        out[:] = x
    elif n > 0:
        out[n:] = x[:-n]
    else:
        out[:n] = x[-n:]
    return out


def greater(x: np.ndarray, y: np.ndarray | float) -> np.ndarray:
    """``Greater(x, y)``: element-wise maximum, NaN-propagating (np.maximum, as Qlib)."""
    return np.maximum(x, y)


def less(x: np.ndarray, y: np.ndarray | float) -> np.ndarray:
    """``Less(x, y)``: element-wise minimum, NaN-propagating (np.minimum, as Qlib)."""
    return np.minimum(x, y)


def stored_span(*arrays: np.ndarray) -> np.ndarray:
    """Bool (T, N): the row lies between a column's first and last stored bar (any array non-NaN)."""
    has = ~np.isnan(arrays[0])
    for a in arrays[1:]:
        has |= ~np.isnan(a)
    seen_before = np.logical_or.accumulate(has, axis=0)
    seen_after = np.logical_or.accumulate(has[::-1], axis=0)[::-1]
    return seen_before & seen_after


def first_stored(span_or_x: np.ndarray) -> np.ndarray:
    """Per column, the first row that is stored (bool span) or non-NaN (float array); T if none."""
    has = span_or_x if span_or_x.dtype == bool else ~np.isnan(span_or_x)
    first = np.argmax(has, axis=0)
    first[~has.any(axis=0)] = has.shape[0]
    return first


def compare(x: np.ndarray, y: np.ndarray, op: str, span: np.ndarray | None = None) -> np.ndarray:
    """``x > y`` / ``x < y`` as 0.0/1.0 (NaN compares False, as in Qlib); NaN outside ``span``.

    Qlib's boolean series only exist over the stored bars, so rows outside the
    stored span must stay NaN or a later rolling mean would count them as 0.
    """
    res = (np.greater if op == ">" else np.less)(x, y).astype(np.float32)
    if span is not None:
        res[~span] = np.nan
    return res


# ----------------------------------------------------------------------------- rolling aggregates


def count(x: np.ndarray, window: int) -> np.ndarray:
    """``Count(x, N)``: number of non-NaN values in the window (int32)."""
    csum = np.cumsum(~np.isnan(x), axis=0, dtype=np.int32)
    csum[window:] -= csum[:-window].copy()
    return csum


def _window_sum(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(sum of the non-NaN values, their count) over each window, from float64 cumulative sums.

    Cumulative sums only grow with the series (no cancellation of large terms as in
    a variance), so a window's sum keeps a relative error of about T * 1e-16 of the
    running total; a window of zeros stays exactly zero.
    """
    valid = ~np.isnan(x)
    total = np.cumsum(np.where(valid, x, 0.0), axis=0, dtype=np.float64)
    total[window:] -= total[:-window].copy()
    return total, count(x, window)


def mean(x: np.ndarray, window: int) -> np.ndarray:
    """``Mean(x, N)``: mean of the window's non-NaN values; NaN if there are none."""
    total, n = _window_sum(x, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        total /= n
    return total


def rolling_sum(x: np.ndarray, window: int) -> np.ndarray:
    """``Sum(x, N)``: sum of the window's non-NaN values; NaN if there are none."""
    total, n = _window_sum(x, window)
    total[n == 0] = np.nan
    return total


def std(x: np.ndarray, window: int) -> np.ndarray:
    """``Std(x, N)`` (ddof=1; NaN with fewer than two values)."""
    return _out(_rolling(x, window).std())


def _nested_extremes(x: np.ndarray, windows: Iterable[int], pick) -> dict[int, np.ndarray]:
    """Rolling max/min for several windows in one pass over the lags (the windows nest).

    ``np.fmax``/``np.fmin`` skip NaN as pandas does; a window of NaN stays NaN.
    Extremes are exact, so this equals pandas' ``rolling(N, min_periods=1).max()``.
    """
    wanted = sorted(set(windows))
    out: dict[int, np.ndarray] = {}
    T = x.shape[0]
    acc = np.array(x, dtype=np.result_type(x.dtype, np.float32))
    for j in range(1, wanted[-1] if wanted else 0):
        if j in wanted:
            out[j] = acc.copy()
        if j < T:
            pick(acc[j:], x[: T - j], out=acc[j:])
    if wanted:
        out[wanted[-1]] = acc
    return out


def maxes(x: np.ndarray, windows: Iterable[int]) -> dict[int, np.ndarray]:
    """``Max(x, N)`` for each window N (dtype of ``x``, at least float32)."""
    return _nested_extremes(x, windows, np.fmax)


def mins(x: np.ndarray, windows: Iterable[int]) -> dict[int, np.ndarray]:
    """``Min(x, N)`` for each window N."""
    return _nested_extremes(x, windows, np.fmin)


def rolling_max(x: np.ndarray, window: int) -> np.ndarray:
    """``Max(x, N)``: largest non-NaN value in the window; NaN if none."""
    return maxes(x, [window])[window]


def rolling_min(x: np.ndarray, window: int) -> np.ndarray:
    """``Min(x, N)``: smallest non-NaN value in the window; NaN if none."""
    return mins(x, [window])[window]


# quantile and idxmax/idxmin work on instrument blocks of a (N, T + w - 1) transposed copy,
# so each window is a contiguous run and the (block, T, w) temporaries stay small. float32
# input (Qlib's bars) stays float32: half the memory traffic.
_BLOCK = 16


def _win_dtype(x: np.ndarray) -> type:
    return np.float32 if x.dtype == np.float32 else np.float64


def _padded(x: np.ndarray, window: int, fill: float) -> np.ndarray:
    T, N = x.shape
    padded = np.full((N, T + window - 1), fill, dtype=_win_dtype(x))
    padded[:, window - 1 :] = x.T
    return padded


def _blocks(padded: np.ndarray, window: int) -> Iterator[tuple[slice, np.ndarray]]:
    for lo in range(0, padded.shape[0], _BLOCK):
        cols = slice(lo, lo + _BLOCK)
        yield cols, sliding_window_view(padded[cols], window, axis=1)  # (block, T, w)


def quantiles(x: np.ndarray, window: int, qs: Iterable[float]) -> list[np.ndarray]:
    """``Quantile(x, N, q)`` for several q from one sort of each window.

    pandas' linear rule: position ``q * (n - 1)`` among the window's n non-NaN
    values (sorted; NaN sort last), interpolated between its two neighbours.
    """
    T, N = x.shape
    n = count(x, window).T  # (N, T), like the blocks
    picks = []
    for q in qs:
        pos = q * (n - 1.0)
        lo = np.floor(pos)
        frac = pos - lo
        lo_i = np.clip(lo, 0, window - 1).astype(np.intp)
        # no neighbour needed when the position is whole; the clip only bites on empty windows (NaN anyway)
        hi_i = np.where(frac > 0, np.minimum(lo_i + 1, window - 1), lo_i)
        out = np.empty((N, T))
        picks.append((lo_i, hi_i, frac, out))
    for cols, win in _blocks(_padded(x, window, np.nan), window):
        ordered = np.sort(win, axis=-1)
        for lo_i, hi_i, frac, out in picks:
            v_lo = np.take_along_axis(ordered, lo_i[cols, :, None], axis=-1)[..., 0].astype(np.float64)
            v_hi = np.take_along_axis(ordered, hi_i[cols, :, None], axis=-1)[..., 0]
            out[cols] = v_lo + (v_hi - v_lo) * frac[cols]
    result = []
    for _, _, _, out in picks:
        out[(n == 0)] = np.nan
        result.append(np.ascontiguousarray(out.T))
    return result


def quantile(x: np.ndarray, window: int, q: float) -> np.ndarray:
    """``Quantile(x, N, q)`` (pandas' linear interpolation over the window's non-NaN values)."""
    return quantiles(x, window, [q])[0]


def ranks(x: np.ndarray, windows: Iterable[int]) -> dict[int, np.ndarray]:
    """``Rank(x, N)`` for each window N: pandas' ``rolling(N, min_periods=1).rank(pct=True)``.

    Average rank of today's value among the window's non-NaN values over ties,
    ``#less + (#equal + 1) / 2`` (#equal counts today itself), divided by their
    number; NaN when today's value is NaN. Counted lag by lag in one pass for all
    windows (the windows nest); NaN compares false, so missing bars drop out.
    """
    wanted = sorted(set(windows))
    T = x.shape[0]
    less = np.zeros(x.shape, dtype=np.int32)
    equal = np.zeros(x.shape, dtype=np.int32)
    n = np.zeros(x.shape, dtype=np.int32)
    valid = ~np.isnan(x)
    out: dict[int, np.ndarray] = {}
    for j in range(wanted[-1] if wanted else 0):
        if j < T:
            past, today = x[: T - j], x[j:]
            less[j:] += past < today
            equal[j:] += past == today
            n[j:] += valid[: T - j]
        if j + 1 in wanted:
            with np.errstate(invalid="ignore", divide="ignore"):
                res = (less + (equal + 1) / 2) / n
            res[~valid] = np.nan
            out[j + 1] = res
    return out


def rank(x: np.ndarray, window: int) -> np.ndarray:
    """``Rank(x, N)``: percentile rank of today's value in its window (see :func:`ranks`)."""
    return ranks(x, [window])[window]


def _flat_rolling(x: np.ndarray, window: int):
    """pandas rolling over all instruments as one series, columns separated by w - 1 NaN."""
    T, N = x.shape
    padded = np.full((N, T + window - 1), np.nan)
    padded[:, window - 1 :] = x.T
    return pd.Series(padded.ravel(), copy=False).rolling(window, min_periods=1)


def _unflat(series: pd.Series, shape: tuple[int, int], window: int) -> np.ndarray:
    T, N = shape
    # one instrument (a block of width 1): the transposed slice is contiguous already, so ascontiguousarray
    # returns the series' own read-only array, which callers write NaN into
    return np.array(series.to_numpy().reshape(N, T + window - 1)[:, window - 1 :].T, order="C", copy=True)


def corr(
    x: np.ndarray, y: np.ndarray, window: int, std_x: np.ndarray | None = None, std_y: np.ndarray | None = None
) -> np.ndarray:
    """``Corr(x, y, N)``: pairwise-complete rolling correlation, NaN where either rolling std is ~0.

    ``std_x`` / ``std_y`` may pass precomputed ``std(x, N)`` / ``std(y, N)``.
    """
    # one long series instead of N columns: pandas' pairwise moments cost a Python round per column
    res = _unflat(_flat_rolling(x, window).corr(_flat_rolling(y, window).obj), x.shape, window)
    sx = std(x, window) if std_x is None else std_x
    sy = std(y, window) if std_y is None else std_y
    res[(np.abs(sx) <= STD_ZERO_ATOL) | (np.abs(sy) <= STD_ZERO_ATOL)] = np.nan
    return res


# ----------------------------------------------------------------------------- IdxMax / IdxMin


def _idx_extreme(x: np.ndarray, window: int, start: np.ndarray | None, is_max: bool) -> np.ndarray:
    T, N = x.shape
    if start is None:
        start = first_stored(x)
    rows = np.arange(T)[:, None]
    before = rows < start[None, :]
    fill = -np.inf if is_max else np.inf
    # rows before the first stored bar do not exist in Qlib: make them lose every comparison
    padded = _padded(np.where(before, x.dtype.type(fill), x), window, fill)
    out = np.empty((T, N))
    pick = np.argmax if is_max else np.argmin
    for cols, win in _blocks(padded, window):
        out[:, cols] = pick(win, axis=-1).T  # 0-based in the full window; NaN wins, as in numpy
    # 1-based position in the window truncated at the first stored bar
    out += 1.0 - np.clip(window - 1 - (rows - start[None, :]), 0, None)
    out[(count(x, window) == 0) | before] = np.nan  # pandas' min_periods=1
    return out


def idxmax(x: np.ndarray, window: int, start: np.ndarray | None = None) -> np.ndarray:
    """``IdxMax(x, N)``: 1-based position of the window's maximum (first NaN if any; first of ties).

    Qlib: ``rolling(N, min_periods=1).apply(lambda a: a.argmax() + 1, raw=True)``
    over the instrument's stored bars. ``start``: per column, the first stored
    row (default: the first non-NaN row of ``x``); the window is cut there.
    """
    return _idx_extreme(x, window, start, True)


def idxmin(x: np.ndarray, window: int, start: np.ndarray | None = None) -> np.ndarray:
    """``IdxMin(x, N)``: 1-based position of the window's minimum (first NaN if any; first of ties)."""
    return _idx_extreme(x, window, start, False)


# ----------------------------------------------------------------------------- Slope / Rsquare / Resi


class LinReg(NamedTuple):
    """Rolling OLS of a series on its position in the window, for one window length."""

    window: int
    slope: np.ndarray
    rsquare: np.ndarray
    resi: np.ndarray


def linreg(x: np.ndarray, windows: Iterable[int], std_x: dict[int, np.ndarray] | None = None) -> Iterator[LinReg]:
    """``Slope``, ``Rsquare`` and ``Resi`` of ``x`` for several windows in one pass, shortest first.

    Window sums of y, j*y and y^2 (j = lag, 0 today) are accumulated directly lag
    by lag, so no long cumulative sum of prices loses digits; the windows nest, so
    the longest one's pass yields every shorter one on the way. Sums over the
    lags alone (count, j, j^2) come exactly from integer cumulative sums.
    ``std_x`` may pass precomputed ``std(x, N)`` per window for Rsquare's
    near-constant mask.
    """
    T, N = x.shape
    valid = ~np.isnan(x)
    y = np.where(valid, x, 0).astype(np.float64)
    rows = np.arange(T, dtype=np.int64)[:, None]
    # sums over stored rows i <= t of 1, i, i^2; a window's sums over lags j = t - i follow from
    # these in integer-valued float64, exact for T up to ~1e5
    c0 = np.cumsum(valid, axis=0, dtype=np.int64)
    c1 = np.cumsum(valid * rows, axis=0)
    c2 = np.cumsum(valid * (rows * rows), axis=0)
    s_y, s_jy, s_yy, tmp = (np.zeros((T, N)) for _ in range(4))
    pending = sorted(set(windows))
    for j in range(pending[-1] if pending else 0):
        if j < T:
            yj = y[: T - j]
            s_y[j:] += yj
            np.multiply(yj, yj, out=tmp[: T - j])
            s_yy[j:] += tmp[: T - j]
            np.multiply(yj, float(j), out=tmp[: T - j])
            s_jy[j:] += tmp[: T - j]
        if j + 1 in pending:
            yield _linreg_window(j + 1, valid, y, c0, c1, c2, s_y, s_jy, s_yy, std_x)


def _window_diff(c: np.ndarray, w: int) -> np.ndarray:
    out = c.astype(np.float64)
    out[w:] -= c[:-w]
    return out


def _linreg_window(w, valid, y, c0, c1, c2, s_y, s_jy, s_yy, std_x) -> LinReg:
    T = y.shape[0]
    t = np.arange(T, dtype=np.float64)[:, None]
    n = _window_diff(c0, w)
    s_i = _window_diff(c1, w)
    s_jj = _window_diff(c2, w)  # sum of i^2, turned into sum of (t - i)^2 = i^2 - 2 t i + t^2
    s_jj -= 2 * t * s_i
    s_jj += t * t * n
    s_j = np.subtract(t * n, s_i, out=s_i)  # sum of (t - i)
    with np.errstate(invalid="ignore", divide="ignore"):
        sxx = np.multiply(n, s_jj, out=s_jj)
        sxx -= s_j * s_j
        sxy = n * s_jy
        sxy -= s_j * s_y
        syy = n * s_yy
        syy -= s_y * s_y
        slope_j = sxy / sxx  # against the lag; position in the window = w - lag, so slope = -slope_j
        # residual of today (lag 0): y_t - (mean_y - slope_j * mean_j)
        resi = np.subtract(s_y, slope_j * s_j, out=s_j)
        resi /= n
        np.subtract(y, resi, out=resi)
        resi[~valid] = np.nan
        rsq = np.multiply(sxy, sxy, out=sxy)
        rsq /= sxx
        rsq /= syy
        rsq[syy < 0] = np.nan  # Qlib takes sqrt of the variance product: negative -> NaN
    np.negative(slope_j, out=slope_j)
    few = n < 2
    slope_j[few] = np.nan
    rsq[few] = np.nan
    resi[few] = np.nan
    sd = std_x[w] if std_x is not None and w in std_x else std(np.where(valid, y, np.nan), w)
    rsq[np.abs(sd) <= STD_ZERO_ATOL] = np.nan
    return LinReg(w, slope_j, rsq, resi)


def slope(x: np.ndarray, window: int) -> np.ndarray:
    """``Slope(x, N)``: OLS slope of the window's values on their position."""
    return next(linreg(x, [window])).slope


def rsquare(x: np.ndarray, window: int) -> np.ndarray:
    """``Rsquare(x, N)``: R^2 of that regression (NaN where the rolling std is ~0)."""
    return next(linreg(x, [window])).rsquare


def resi(x: np.ndarray, window: int) -> np.ndarray:
    """``Resi(x, N)``: today's residual from that regression."""
    return next(linreg(x, [window])).resi
