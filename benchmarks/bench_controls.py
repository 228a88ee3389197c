"""Time of the honest controls (qframe.core.controls) against one backtest, on the default synthetic market.

Scores: one random-score "model" on the universe rows of the last 20 % of the calendar (the default test segment),
so the time does not depend on a fit. Prints the model backtest + risk, and the controls' stage for 0, 5, 20 and
50 random runs with buy-and-hold (best of 3 each).

    python benchmarks/bench_controls.py [--instruments 300] [--days 2500]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from qframe.core.controls import ControlSettings, run_controls
from qframe.core.evaluation import risk_report
from qframe.plugins.datasets.synthetic import SyntheticDataset
from qframe.plugins.strategies.topk_dropout import TopkDropoutStrategy


def best_of(fn, n: int = 3) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
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
    window = (market.calendar[lo], market.calendar[-1])
    strategy = TopkDropoutStrategy()

    def model() -> tuple[pd.DataFrame, dict]:
        report = strategy.backtest(scores, market, start=window[0], end=window[1])
        return report, risk_report(report)

    report, risk = model()
    print(f"market {args.instruments} x {args.days}, test {len(report)} days, {len(scores):,} scores")
    print(f"model backtest + risk: {best_of(model):.3f} s")
    for n in (0, 5, 20, 50):
        settings = ControlSettings(random=n, buy_and_hold=True)
        s = best_of(lambda s=settings: run_controls(s, strategy, "topk_dropout", market, scores, report, risk, 252,
                                                   "sum", window))  # fmt: skip
        print(f"controls, {n:2d} random + buy-and-hold: {s:.3f} s")


if __name__ == "__main__":
    main()
