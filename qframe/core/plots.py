"""The two standard run plots (matplotlib, Agg backend, written as PNG)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(fig, ax, title: str, ylabel: str) -> None:
    """Title, axis labels, zero line and legend of a plot over the test segment's dates."""
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_title(title, y=1.0)  # an explicit y: matplotlib skips placing it clear of the ticks (~0.05 s a plot)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("date")
    ax.legend(loc="upper left")  # "best" scans every drawn point: ~0.7 s on a 500-day test segment
    fig.autofmt_xdate()


#: the margins of a 9 x 4.5 in plot, as fractions: room for the y label and the slanted dates. Fixed, as
#: ``tight_layout`` (or ``bbox_inches="tight"``) would draw the figure once more just to measure it
MARGINS = {"left": 0.09, "right": 0.98, "top": 0.92, "bottom": 0.2}


def _save(plt, fig, path: Path) -> Path:
    fig.subplots_adjust(**MARGINS)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def returns_figure(
    report: pd.DataFrame,
    mode: str = "sum",
    band: pd.DataFrame | None = None,
    buy_and_hold: pd.Series | None = None,
):
    """(plt, fig, ax) of the cumulative benchmark return and excess return without and with cost, labelled.

    ``band`` (columns ``p05``, ``p95``, by date): the random-score controls' 5-95 % of cumulative excess return
    with cost, drawn as a shaded band; ``buy_and_hold``: the buy-and-hold control's cumulative excess with cost.
    """
    plt = _pyplot()
    series = {
        "benchmark": report["bench"],
        "excess return without cost": report["return"] - report["bench"],
        "excess return with cost": report["return"] - report["bench"] - report["cost"],
    }
    fig, ax = plt.subplots(figsize=(9, 4.5))
    if band is not None:
        ax.fill_between(
            band.index, band["p05"].to_numpy(), band["p95"].to_numpy(), color="grey", alpha=0.25, lw=0,
            label="random scores, excess with cost (5-95 %)",
        )  # fmt: skip
    for label, r in series.items():
        cum = r.cumsum() if mode == "sum" else (1 + r).cumprod() - 1
        ax.plot(cum.index, cum.to_numpy(), label=label)
    if buy_and_hold is not None:
        ax.plot(
            buy_and_hold.index, buy_and_hold.to_numpy(), color="grey", ls="--", label="buy-and-hold, excess with cost"
        )
    how = "summed" if mode == "sum" else "compounded"
    _label(fig, ax, f"Cumulative return ({how})", f"cumulative return ({how} daily returns)")
    return plt, fig, ax


def plot_returns(
    report: pd.DataFrame,
    path: Path,
    mode: str = "sum",
    band: pd.DataFrame | None = None,
    buy_and_hold: pd.Series | None = None,
) -> Path:
    """The cumulative-return plot of :func:`returns_figure`, written to ``path``."""
    plt, fig, _ = returns_figure(report, mode, band, buy_and_hold)
    return _save(plt, fig, path)


def ic_figure(daily_ic: pd.DataFrame, window: int = 20):
    """(plt, fig, ax) of the daily IC and Rank IC with their rolling means, labelled."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for col, color in (("IC", "tab:blue"), ("RankIC", "tab:orange")):
        # one LineCollection rather than a bar patch per day (bars cost ~1 ms each to build and lay out)
        ax.vlines(daily_ic.index, 0, daily_ic[col].to_numpy(), color=color, alpha=0.35, lw=1.2, label=f"daily {col}")
        rolling = daily_ic[col].rolling(window, min_periods=1).mean()
        ax.plot(rolling.index, rolling.to_numpy(), color=color, label=f"{col} {window}-day mean")
    _label(fig, ax, "Information coefficient on the test segment", "correlation with the label")
    return plt, fig, ax


def plot_ic(daily_ic: pd.DataFrame, path: Path, window: int = 20) -> Path:
    """The IC plot of :func:`ic_figure`, written to ``path``."""
    plt, fig, _ = ic_figure(daily_ic, window)
    return _save(plt, fig, path)
