"""The report's figures (matplotlib, Agg), each rendered once to PNG bytes: written as files and embedded in the page.

Every function takes an :class:`~qframe.core.tearsheet.model.Analysis` (or several, for a comparison) and returns a
matplotlib figure; :func:`render` turns figures into PNG bytes. The two standard plots (``cumulative_return.png``,
``ic.png``) come from :mod:`qframe.core.plots` unchanged.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.dates import AutoDateFormatter, AutoDateLocator
from matplotlib.ticker import MaxNLocator

from qframe.core.plots import _pyplot, ic_figure, returns_figure
from qframe.core.tearsheet.analysis import IR_WINDOW, cumulative
from qframe.core.tearsheet.model import Analysis, max_drawdown

SMALL = (6.4, 3.3)


def _axes(title: str, ylabel: str, size=SMALL, right: float = 0.97):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=size)
    # fixed margins rather than tight_layout, which lays every text out twice (~25 % of a small figure's time)
    fig.subplots_adjust(left=0.13, right=right, top=0.9, bottom=0.2)
    fig.qframe_fixed = True
    # an explicit y: matplotlib then skips placing the title clear of the ticks (~0.05 s a figure)
    ax.set_title(title, fontsize=10, y=1.0)
    ax.yaxis.set_major_locator(MaxNLocator(6))  # each tick is an object with two texts: fewer is faster
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    return fig, ax


def _dates(fig, ax, zero: bool = True) -> None:
    if zero:
        ax.axhline(0, color="grey", lw=0.6)
    locator = AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(AutoDateFormatter(locator))
    for label in ax.get_xticklabels():  # autofmt_xdate's look without its subplots_adjust
        label.set(rotation=30, ha="right")


def render(fig) -> bytes:
    """The figure as PNG bytes (closed afterwards); the two standard plots keep their tight layout and 100 dpi."""
    plt = _pyplot()
    buf = io.BytesIO()
    fixed = getattr(fig, "qframe_fixed", False)
    if not fixed:
        fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90 if fixed else 100)
    plt.close(fig)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------------- signal


def ic_daily(a: Analysis):
    _, fig, _ = ic_figure(a.inputs.daily_ic)
    return fig


def ic_histogram(a: Analysis):
    ic = a.inputs.daily_ic["IC"].dropna()
    fig, ax = _axes(f"Daily IC: mean {ic.mean():.4f}, std {ic.std():.4f}", "days")
    ax.hist(ic.to_numpy(), bins=40, color="tab:blue", alpha=0.8)
    ax.axvline(ic.mean(), color="black", lw=1, ls="--", label="mean")
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_xlabel("IC", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def ic_month(a: Analysis):
    by = a.ic_by_month
    fig, ax = _axes("Mean IC by month", "IC")
    colors = np.where(by.to_numpy() >= 0, "tab:blue", "tab:red")
    ax.bar(range(len(by)), by.to_numpy(), color=colors)
    step = max(1, len(by) // 12)
    ax.set_xticks(range(0, len(by), step), by.index[::step], rotation=45, ha="right", fontsize=7)
    ax.axhline(0, color="grey", lw=0.6)
    return fig


def ic_decay(a: Analysis):
    d = a.decay
    fig, ax = _axes("IC decay: mean IC against the h-day forward return", "mean IC")
    ax.plot(d.index, d["IC"].to_numpy(), marker="o", ms=3, label="IC")
    ax.plot(d.index, d["RankIC"].to_numpy(), marker="o", ms=3, label="Rank IC")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("horizon h (trading days)", fontsize=9)
    ax.set_xticks(d.index)
    ax.legend(loc="upper right", fontsize=8)
    return fig


def autocorrelation(a: Analysis):
    s = a.autocorrelation
    fig, ax = _axes(f"Signal rank autocorrelation (lag 1): mean {s.mean():.3f}", "rank correlation with the day before")
    ax.plot(s.index, s.to_numpy(), lw=0.9)
    _dates(fig, ax)
    return fig


def quantile_cumulative(a: Analysis):
    q, mode = a.quantiles, a.inputs.mode
    fig, ax = _axes(f"Cumulative next-day return by score quantile ({len(q.columns)} groups)", "cumulative return")
    cmap = _pyplot().get_cmap("viridis")  # no near-white middle: every quantile stays visible
    for i, col in enumerate(q.columns):
        cum = cumulative(q[col], mode)
        ax.plot(cum.index, cum.to_numpy(), color=cmap(i / max(1, len(q.columns) - 1)), lw=1, label=f"Q{col}")
    ls = cumulative(q[q.columns[-1]] - q[q.columns[0]], mode)
    ax.plot(ls.index, ls.to_numpy(), color="black", lw=1.4, ls="--", label="long-short")
    ax.legend(loc="upper left", fontsize=7, ncol=3)
    _dates(fig, ax)
    return fig


def quantile_mean(a: Analysis):
    s = a.quantile_summary
    fig, ax = _axes("Mean next-day return by quantile (± 1 standard error)", "mean daily return (bp)")
    labels = [f"Q{i}" for i in s.index[:-1]] + ["L-S"]
    ax.bar(labels, s["mean"].to_numpy() * 1e4, yerr=s["stderr"].to_numpy() * 1e4, capsize=4,
           color=["tab:blue"] * (len(s) - 1) + ["black"])  # fmt: skip
    ax.axhline(0, color="grey", lw=0.6)
    return fig


# ---------------------------------------------------------------------------------------------------- portfolio


def returns(a: Analysis):
    _, fig, _ = returns_figure(a.inputs.report, a.inputs.mode, a.inputs.band, a.inputs.buy_and_hold)
    return fig


def drawdown(a: Analysis):
    dd = a.drawdown
    fig, ax = _axes(f"Drawdown of the excess return with cost: max {max_drawdown(a):.4f}", "drawdown")
    ax.fill_between(dd.index, dd.to_numpy(), 0, color="tab:red", alpha=0.4, lw=0)
    ax.plot(dd.index, dd.to_numpy(), color="tab:red", lw=0.8)
    _dates(fig, ax)
    return fig


def monthly_heatmap(a: Analysis):
    table = a.monthly_excess
    fig, ax = _axes("Monthly excess return with cost (%)", "year", size=(6.4, 0.6 + 0.42 * max(2, len(table))))
    values = table.to_numpy(dtype=float) * 100
    finite = values[np.isfinite(values)]
    lim = float(np.abs(finite).max()) if finite.size else 1.0
    ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(12), ["J", "F", "M", "A", "M", "J", "J", "A", "S", "O", "N", "D"])
    ax.set_yticks(range(len(table)), [str(y) for y in table.index])
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7)
    return fig


def rolling_ir(a: Analysis):
    r = a.rolling_ir
    fig, ax = _axes(f"Rolling {IR_WINDOW}-day information ratio (excess with cost, annualised)", "IR")
    ax.plot(r.index, r.to_numpy(), lw=1)
    _dates(fig, ax)
    return fig


def turnover_cost(a: Analysis):
    rep = a.inputs.report
    fig, ax = _axes("Daily turnover and cost", "turnover (fraction of the account)", right=0.88)
    ax.plot(rep.index, rep["turnover"].to_numpy() if "turnover" in rep else np.zeros(len(rep)), lw=0.8,
            label="turnover")  # fmt: skip
    right = ax.twinx()
    right.plot(rep.index, rep["cost"].to_numpy() * 1e4, color="tab:red", lw=0.8, label="cost (bp, right)")
    right.set_ylabel("cost (bp of the account)", fontsize=9)
    right.tick_params(labelsize=8)
    fig.legend(loc="upper right", fontsize=8)
    _dates(fig, ax, zero=False)
    return fig


def holdings(a: Analysis):
    h = a.inputs.report["holdings"]
    fig, ax = _axes("Number of holdings at the close", "instruments held")
    ax.step(h.index, h.to_numpy(), where="post", lw=1)
    ax.set_ylim(bottom=0)
    _dates(fig, ax, zero=False)
    return fig


#: (file stem, section, drawer, is it drawable for this analysis)
FIGURES: list[tuple[str, str, Callable, Callable[[Analysis], bool]]] = [
    ("ic", "signal", ic_daily, lambda a: True),
    ("ic_histogram", "signal", ic_histogram, lambda a: True),
    ("ic_by_month", "signal", ic_month, lambda a: len(a.ic_by_month) > 0),
    ("ic_decay", "signal", ic_decay, lambda a: a.decay is not None),
    ("signal_autocorrelation", "signal", autocorrelation, lambda a: True),
    ("quantile_returns", "signal", quantile_cumulative, lambda a: a.quantiles is not None),
    ("quantile_mean", "signal", quantile_mean, lambda a: a.quantile_summary is not None),
    ("cumulative_return", "portfolio", returns, lambda a: True),
    ("drawdown", "portfolio", drawdown, lambda a: True),
    ("monthly_excess", "portfolio", monthly_heatmap, lambda a: len(a.monthly_excess) > 0),
    ("rolling_ir", "portfolio", rolling_ir, lambda a: True),
    ("turnover_cost", "portfolio", turnover_cost, lambda a: True),
    ("holdings", "portfolio", holdings, lambda a: "holdings" in a.inputs.report),
]


def draw_all(a: Analysis) -> dict[str, tuple[str, bytes]]:
    """``{stem: (section, png bytes)}`` of every figure this analysis can draw, in page order."""
    return {stem: (section, render(draw(a))) for stem, section, draw, ok in FIGURES if ok(a)}


# --------------------------------------------------------------------------------------------------- comparison


def _overlay(title: str, ylabel: str, runs: list[Analysis], series: Callable[[Analysis], pd.Series], dates=True):
    fig, ax = _axes(title, ylabel, size=(9, 4))
    fig.subplots_adjust(left=0.09, bottom=0.16)
    for a in runs:
        s = series(a)
        if s is not None:
            ax.plot(s.index, s.to_numpy(), lw=1, label=a.label, marker=None if dates else "o", ms=3)
    ax.legend(loc="best" if not dates else "upper left", fontsize=8)
    if dates:
        _dates(fig, ax)
    else:
        ax.axhline(0, color="grey", lw=0.6)
    return fig


def compare_all(runs: list[Analysis]) -> dict[str, tuple[str, bytes]]:
    """The comparison page's figures: the runs' curves overlaid."""

    def ls(a: Analysis):
        if a.quantiles is None:
            return None
        q = a.quantiles
        return cumulative(q[q.columns[-1]] - q[q.columns[0]], a.inputs.mode)

    drawers = {
        "cumulative_excess": ("Cumulative excess return with cost", "cumulative return",
                              lambda a: cumulative(a.excess, a.inputs.mode), True),
        "drawdown": ("Drawdown of the excess return with cost", "drawdown", lambda a: a.drawdown, True),
        "rolling_ir": (f"Rolling {IR_WINDOW}-day information ratio", "IR", lambda a: a.rolling_ir, True),
        "ic_rolling": ("Daily IC, 20-day mean", "IC",
                       lambda a: a.inputs.daily_ic["IC"].rolling(20, min_periods=1).mean(), True),
        "ic_decay": ("IC decay over horizons", "mean IC",
                     lambda a: None if a.decay is None else a.decay["IC"], False),
        "long_short": ("Cumulative long-short (top - bottom quantile) next-day return", "cumulative return", ls, True),
    }  # fmt: skip
    return {
        stem: ("comparison", render(_overlay(title, ylabel, runs, fn, dates)))
        for stem, (title, ylabel, fn, dates) in drawers.items()
    }
