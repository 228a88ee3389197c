"""Time of the run report (qframe.core.tearsheet: report.html and its PNGs) on the default synthetic market.

Scores: one random-score "model" on the universe rows of the last 20 % of the calendar (the default test segment),
its backtest with TopK-dropout 50/5 and the default 20 random-score controls, so the time does not depend on a fit.
Prints the one-off matplotlib import, then (best of 3) the analysis, each figure (draw + PNG), the page, and the
whole of :func:`~qframe.core.tearsheet.write_report` with its file writes; and peak RSS.

    python benchmarks/bench_report.py [--instruments 300] [--days 2500]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from qframe.core.controls import ControlSettings, run_controls
from qframe.core.evaluation import risk_report, signal_analysis
from qframe.plugins.datasets.synthetic import SyntheticDataset
from qframe.plugins.strategies.topk_dropout import TopkDropoutStrategy


def best_of(fn, n: int = 3) -> float:
    """Best wall time of ``n`` calls."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def cpu_of(fn, n: int = 3) -> float:
    """Best CPU time of ``n`` calls: on a machine shared with other work, closer to the unloaded wall time."""
    times = []
    for _ in range(n):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--days", type=int, default=2500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        market = SyntheticDataset(n_instruments=args.instruments, n_days=args.days).load(cache_dir=Path(tmp))
    lo = int(len(market.calendar) * 0.8)
    t_idx, n_idx = np.nonzero(market.universe[lo:])
    index = pd.MultiIndex.from_arrays(
        [market.calendar[lo + t_idx], market.instruments[n_idx]], names=["datetime", "instrument"]
    )
    scores = pd.Series(np.random.default_rng(0).standard_normal(len(index)), index=index, name="score")
    close = market.fields["close"]
    nxt = np.vstack([close[1:], np.full((1, close.shape[1]), np.nan)])
    nxt2 = np.vstack([close[2:], np.full((2, close.shape[1]), np.nan)])
    label = pd.Series((nxt2 / nxt - 1)[lo + t_idx, n_idx], index=index)
    daily_ic, ic = signal_analysis(scores, label)
    window = (market.calendar[lo], market.calendar[-1])
    strategy = TopkDropoutStrategy()
    report = strategy.backtest(scores, market, start=window[0], end=window[1])
    report["holdings"] = (strategy.last_positions.to_numpy() > 0).sum(axis=1)
    risk = risk_report(report)
    checks = run_controls(ControlSettings(random=20, buy_and_hold=True), strategy, "topk_dropout", market, scores,
                          report, risk, 252, "sum", window)  # fmt: skip
    metrics = {**ic, **{f"{b}.{k}": v for b, r in risk.items() for k, v in r.items()}}

    t0 = time.perf_counter()
    import matplotlib.pyplot  # noqa: F401  (paid once a process, by the two plots before the report existed)

    import_s = time.perf_counter() - t0
    from qframe.core.tearsheet import ReportInputs, analyse, write_report
    from qframe.core.tearsheet.figures import FIGURES, render
    from qframe.core.tearsheet.inputs import closes
    from qframe.core.tearsheet.page import run_page

    def inputs() -> ReportInputs:
        return ReportInputs(
            "0" * 32, "bench", scores, daily_ic, report, metrics, "sum", 252,
            closes(market, pd.DatetimeIndex(scores.index.get_level_values("datetime"))),
            checks.band("sum"), checks.buy_and_hold_curve("sum"), control_lines=checks.lines,
        )  # fmt: skip

    print(f"market {args.instruments} x {args.days}, test {len(report)} days, {len(scores):,} scores")
    print(f"import matplotlib.pyplot (once a process): {import_s:.3f} s")
    a = analyse(inputs())
    print(f"analysis (forward returns, IC decay 1-20, quantiles, tables): {best_of(lambda: analyse(inputs())):.3f} s")
    figs = {}
    for stem, section, draw, ok in FIGURES:
        if ok(a):
            print(f"  figure {stem}: {best_of(lambda d=draw: render(d(a))):.3f} s")
            figs[stem] = (section, render(draw(a)))
    print(f"page (HTML, base64): {best_of(lambda: run_page(a, figs)):.3f} s, {len(run_page(a, figs)) / 1e6:.2f} MB")
    with tempfile.TemporaryDirectory() as out:
        total = best_of(lambda: write_report(inputs(), Path(out)))
        cpu = cpu_of(lambda: write_report(inputs(), Path(out)))
        from qframe.core.plots import plot_ic, plot_returns

        def two_plots() -> None:  # what a run drew before the report (the report draws these two as well)
            plot_returns(report, Path(out) / "r.png", band=checks.band("sum"), buy_and_hold=checks.buy_and_hold_curve())
            plot_ic(daily_ic, Path(out) / "i.png")

        before, before_cpu = best_of(two_plots), cpu_of(two_plots)
    print(f"write_report (analysis + {len(figs)} figures + page + files): {total:.3f} s wall, {cpu:.3f} s CPU")
    print(f"the two plots a run drew before: {before:.3f} s wall, {before_cpu:.3f} s CPU")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
