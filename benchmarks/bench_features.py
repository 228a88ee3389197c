"""Micro-benchmark: Alpha158 on a random-walk market (default 300 instruments x 2500 days).

Run: ``.venv/bin/python benchmarks/bench_features.py [--instruments 300] [--days 2500] [--profile]``.
Prints the cold compute time and the process's peak RSS.

``--threads K`` computes the workflow's way instead (:func:`qframe.core.handler.panel_of` without a cache: blocks
of instruments, K at a time, scattered into the sample matrix plus the label), e.g. at scale:
``.venv/bin/python benchmarks/bench_features.py --instruments 3000 --threads 2``.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd

from qframe.core import ops
from qframe.core.data import MarketData
from qframe.core.features import label
from qframe.plugins.features.alpha158 import Alpha158


def random_market(n_inst: int, n_days: int, seed: int = 0) -> MarketData:
    """OHLCV random walks with late listings and scattered suspended days."""
    rng = np.random.default_rng(seed)
    shape = (n_days, n_inst)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, shape), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.01, shape))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.01, shape)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.01, shape)))
    volume = np.exp(rng.normal(13, 0.5, shape))
    vwap = (high + low + close) / 3
    listed = np.arange(n_days)[:, None] >= rng.integers(0, n_days // 4, n_inst)[None, :]
    missing = ~listed | (rng.random(shape) < 0.005)
    fields = {"open": open_, "high": high, "low": low, "close": close, "volume": volume, "vwap": vwap}
    for arr in fields.values():
        arr[missing] = np.nan
    calendar = pd.bdate_range("2010-01-04", periods=n_days)
    instruments = pd.Index([f"SH{600000 + i}" for i in range(n_inst)])
    return MarketData(
        calendar=calendar,
        instruments=instruments,
        fields={k: v.astype(np.float32).astype(float) for k, v in fields.items()},
    )


def _time(fn, *args, repeat: int = 1) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--days", type=int, default=2500)
    parser.add_argument("--profile", action="store_true", help="also time each operator once")
    parser.add_argument("--threads", type=int, help="the workflow's blocks of instruments, this many at a time")
    args = parser.parse_args()
    market = random_market(args.instruments, args.days)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.threads:
        from qframe.core.handler import panel_of

        t = time.perf_counter()
        panel, _, _ = panel_of(market, Alpha158(), "alpha158", 1, None, threads=args.threads)
        elapsed = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"alpha158 + label, {args.threads} thread(s), {args.days} days x {args.instruments} instruments: "
            f"{len(panel):,} rows x {len(panel.names)} in {elapsed:.2f} s; peak RSS {rss:.0f} MB "
            f"(before compute {rss0:.0f} MB); sample matrix {panel.X.nbytes / 2**20:.0f} MB"
        )
        return
    t = time.perf_counter()
    result = Alpha158().compute(market)
    elapsed = time.perf_counter() - t
    t = time.perf_counter()
    label(market)
    t_label = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"alpha158 {args.days} days x {args.instruments} instruments: {len(result.names)} features in {elapsed:.2f} s "
        f"(label {t_label * 1000:.0f} ms); peak RSS {rss:.0f} MB (before compute {rss0:.0f} MB); "
        f"output {result.values.nbytes / 2**20:.0f} MB"
    )
    if args.profile:
        c = market.fields["close"].astype(np.float32)
        v = market.fields["volume"].astype(np.float32)
        for w in (5, 60):
            for name, fn, fargs in [
                ("mean", ops.mean, (c, w)),
                ("std", ops.std, (c, w)),
                ("max", ops.max, (c, w)),
                ("quantile", ops.quantile, (c, w, 0.8)),
                ("rank", ops.rank, (c, w)),
                ("idxmax", ops.idxmax, (c, w)),
                ("corr", ops.corr, (c, v, w)),
                ("slope+rsquare+resi", lambda x, w: list(ops.linreg(x, [w])), (c, w)),
            ]:
                print(f"  {name:>20} w={w:<3} {_time(fn, *fargs, repeat=3) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
