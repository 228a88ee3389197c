"""The numbers behind the run report: factor (signal) and portfolio analysis of one run's test segment.

Plain pandas / numpy on what a run already has (its scores, daily IC, backtest report and the market's closes), so
the same functions serve a finished run and a recorded one (:mod:`qframe.experiments.report_cli`). Conventions are
qframe's own: the score dated t trades at t+1's close, so the h-day forward return of a score dated t is
``close(t+h+1) / close(t+1) - 1`` (the handler's label at horizon h); drawdown and accumulation follow
:func:`qframe.core.evaluation.risk_analysis`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: IC decay is measured over these horizons (trading days)
DECAY_HORIZONS = tuple(range(1, 21))
#: daily quantile groups of the score (1 = lowest)
N_QUANTILES = 5
#: window of the rolling information ratio (trading days)
IR_WINDOW = 60


def score_matrix(scores: pd.Series) -> pd.DataFrame:
    """The scores as a dates x instruments frame (the last score of a (date, instrument) pair wins)."""
    s = scores.iloc[:, 0] if isinstance(scores, pd.DataFrame) else scores
    s = s[~s.index.duplicated(keep="last")]
    return s.unstack("instrument").sort_index()


def forward_returns(close: pd.DataFrame, dates: pd.DatetimeIndex, horizons=DECAY_HORIZONS) -> dict[int, pd.DataFrame]:
    """``{h: close(t+h+1) / close(t+1) - 1}`` on ``dates`` (rows of ``close``, a calendar x instruments frame).

    NaN where a close is missing (a suspension, or past the end of the calendar).
    """
    values = close.to_numpy(dtype=float)
    pos = close.index.get_indexer(dates)
    T = len(close)
    out = {}
    for h in horizons:
        entry, exit_ = pos + 1, pos + 1 + h
        ok = (pos >= 0) & (exit_ < T)
        fwd = np.full((len(dates), values.shape[1]), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            fwd[ok] = values[exit_[ok]] / values[entry[ok]] - 1.0
        out[h] = pd.DataFrame(fwd, index=dates, columns=close.columns)
    return out


def _row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` over the cells both have; NaN below 2."""
    ok = np.isfinite(a) & np.isfinite(b)
    n = ok.sum(axis=1).astype(float)
    a, b = np.where(ok, a, 0.0), np.where(ok, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ac = np.where(ok, a - (a.sum(axis=1) / n)[:, None], 0.0)
        bc = np.where(ok, b - (b.sum(axis=1) / n)[:, None], 0.0)
        corr = (ac * bc).sum(axis=1) / np.sqrt((ac * ac).sum(axis=1) * (bc * bc).sum(axis=1))
    corr[n < 2] = np.nan
    return np.clip(corr, -1.0, 1.0)


def _row_rank(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) of each row's cells under ``mask`` (NaN elsewhere), as pandas' ``rank(axis=1)``.

    One argsort of the rows (masked cells sorted last) gives ordinal ranks, which are the average ranks wherever a
    row has no tie; the rows with ties (rare for model scores, common for returns of halted names) go to pandas.
    """
    values = np.where(mask, a, np.inf)
    order = np.argsort(values, axis=1, kind="stable")
    ranks = np.empty_like(values)
    rows = np.arange(len(values))[:, None]
    ranks[rows, order] = np.arange(1, values.shape[1] + 1, dtype=float)
    ranks[~mask] = np.nan
    ordered = np.take_along_axis(values, order, axis=1)
    tied = ((ordered[:, 1:] == ordered[:, :-1]) & np.isfinite(ordered[:, 1:])).any(axis=1)
    if tied.any():
        ranks[tied] = pd.DataFrame(np.where(mask[tied], a[tied], np.nan)).rank(axis=1, method="average").to_numpy()
    return ranks


def daily_ic(signal: pd.DataFrame, target: pd.DataFrame) -> pd.DataFrame:
    """Daily IC (Pearson) and Rank IC (Spearman) of two aligned dates x instruments frames."""
    a, b = signal.to_numpy(dtype=float), target.reindex_like(signal).to_numpy(dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    return pd.DataFrame(
        {"IC": _row_corr(a, b), "RankIC": _row_corr(_row_rank(a, ok), _row_rank(b, ok))}, index=signal.index
    )


def ic_decay(signal: pd.DataFrame, forward: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Mean daily IC and Rank IC of the score against each horizon's forward return (index: horizon).

    Each horizon is :func:`daily_ic`'s; the score's ranks are computed once and re-ranked only on the days where a
    horizon's forward returns leave out instruments the score has (a suspension, the calendar's end).
    """
    a = signal.to_numpy(dtype=float)
    has = np.isfinite(a)
    base = _row_rank(a, has)
    rows = {}
    for h, fwd in forward.items():
        b = fwd.reindex_like(signal).to_numpy(dtype=float)
        ok = has & np.isfinite(b)
        ranks = base.copy()
        differ = (ok != has).any(axis=1)
        if differ.any():
            ranks[differ] = _row_rank(a[differ], ok[differ])
        ranks[~ok] = np.nan
        # pandas' mean skips the days without an IC, as the run's own IC does
        rows[h] = {
            "IC": pd.Series(_row_corr(a, b)).mean(),
            "RankIC": pd.Series(_row_corr(ranks, _row_rank(b, ok))).mean(),
        }
    return pd.DataFrame(rows).T.rename_axis("horizon")


def signal_autocorrelation(signal: pd.DataFrame, lag: int = 1) -> pd.Series:
    """Daily rank correlation of each day's scores with those ``lag`` days before (alphalens' turnover proxy)."""
    a = signal.to_numpy(dtype=float)
    prev = np.full_like(a, np.nan)
    prev[lag:] = a[:-lag]
    ok = np.isfinite(a) & np.isfinite(prev)
    return pd.Series(_row_corr(_row_rank(a, ok), _row_rank(prev, ok)), index=signal.index, name="autocorrelation")


def quantile_returns(signal: pd.DataFrame, forward: pd.DataFrame, n: int = N_QUANTILES) -> pd.DataFrame:
    """Each day's mean forward return of the instruments in each score quantile (columns 1..n, 1 = lowest score).

    Per day, the instruments with both a score and a forward return are ranked by score (ties by order) and cut
    into ``n`` groups of (nearly) equal size: group ``floor((rank - 1) * n / count) + 1``. A day with fewer than
    ``n`` such instruments has no quantile returns (NaN).
    """
    a, f = signal.to_numpy(dtype=float), forward.reindex_like(signal).to_numpy(dtype=float)
    ok = np.isfinite(a) & np.isfinite(f)
    rank = pd.DataFrame(np.where(ok, a, np.nan)).rank(axis=1, method="first").to_numpy()
    count = ok.sum(axis=1)[:, None]
    with np.errstate(invalid="ignore"):
        group = np.floor((rank - 1) * n / count)
    out = np.full((len(a), n), np.nan)
    for g in range(n):
        member = ok & (group == g)
        k = member.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, g] = np.where(member, f, 0.0).sum(axis=1) / k
    out[count[:, 0] < n] = np.nan
    return pd.DataFrame(out, index=signal.index, columns=pd.RangeIndex(1, n + 1, name="quantile"))


def quantile_summary(daily: pd.DataFrame) -> pd.DataFrame:
    """Mean daily return of each quantile and its standard error (std / sqrt(days), ddof=1), plus long-short."""
    frame = daily.assign(**{"long-short": daily[daily.columns[-1]] - daily[daily.columns[0]]})
    n = frame.notna().sum()
    return pd.DataFrame({"mean": frame.mean(), "stderr": frame.std(ddof=1) / np.sqrt(n)})


def cumulative(r: pd.Series | pd.DataFrame, mode: str = "sum"):
    """Cumulative return of daily returns: summed (``sum``) or compounded (``product``), NaN days as 0."""
    r = r.fillna(0.0)
    return r.cumsum() if mode == "sum" else (1 + r).cumprod() - 1


def drawdown(r: pd.Series, mode: str = "sum") -> pd.Series:
    """The drawdown curve whose minimum is :func:`~qframe.core.evaluation.risk_analysis`'s ``max_drawdown``."""
    if mode == "sum":
        curve = r.cumsum()
        return curve - curve.cummax()
    curve = (1 + r).cumprod()
    return curve / curve.cummax() - 1


def monthly_table(r: pd.Series, mode: str = "sum") -> pd.DataFrame:
    """Return of each calendar month (years x months 1..12): the days' sum, or compounded with ``product``."""
    if mode == "sum":
        by = r.groupby([r.index.year, r.index.month]).sum()
    else:
        by = (1 + r).groupby([r.index.year, r.index.month]).prod() - 1
    by.index.names = ["year", "month"]
    return by.unstack("month").reindex(columns=range(1, 13))


def monthly_mean(r: pd.Series) -> pd.Series:
    """Mean of a daily series per calendar month (index: ``YYYY-MM``)."""
    by = r.groupby(r.index.to_period("M")).mean()
    by.index = by.index.astype(str)
    return by


def rolling_ir(r: pd.Series, periods: int, window: int = IR_WINDOW) -> pd.Series:
    """Rolling information ratio (mean / std * sqrt(periods), ddof=1) over ``window`` days; NaN before it fills."""
    roll = r.rolling(window, min_periods=window)
    with np.errstate(invalid="ignore", divide="ignore"):
        return roll.mean() / roll.std(ddof=1) * np.sqrt(periods)


def excess(report: pd.DataFrame, cost: bool = True) -> pd.Series:
    """Daily excess return of a backtest report over its benchmark, with or without cost."""
    r = report["return"] - report["bench"]
    return r - report["cost"] if cost else r
