"""What two processes at once get from this machine's cores: the ceiling of any "2 slots vs 1" figure.

The same pure-CPU work (1-thread LightGBM fits; a numpy loop) is done twice in turn by one process and once each by
two processes at once, forked after the imports and started together, so what differs is only how many cores run.
On a machine whose two vCPUs share a physical core, or whose neighbours load the host, this is well under 2x and
it changes from minute to minute: the benchmarks that compare slots print it before and after their runs.
"""

from __future__ import annotations

import time
from typing import Any


def _lightgbm_fit(seed: int) -> None:
    """A 1-thread LightGBM fit (a window's fit with 2 slots on 2 cores: ``cores // slots`` = 1 thread)."""
    import numpy as np

    from qframe.plugins.models.lightgbm_import import import_lightgbm

    lgb = import_lightgbm()
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((40_000, 40), dtype=np.float32)
    y = X[:, :5].sum(axis=1) + rng.standard_normal(40_000, dtype=np.float32)
    params = {"objective": "regression", "num_leaves": 63, "num_threads": 1, "verbose": -1, "seed": seed}
    lgb.train(params, lgb.Dataset(X, y), num_boost_round=100)


def _numpy_loop(seed: int) -> None:
    """Single-threaded numpy work (sorts and cumulative sums of 1M floats)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for _ in range(6):
        x = rng.standard_normal(1_000_000)
        np.sort(x)
        np.cumsum(x)


CEILING_TASKS = {"LightGBM fits (1 thread)": _lightgbm_fit, "numpy loop": _numpy_loop}


def _worker(task: str, seeds: list[int], go: Any) -> None:
    go.wait()
    for seed in seeds:
        CEILING_TASKS[task](seed)


def ceiling(task: str, repeat: int = 3) -> tuple[float, float]:
    """Median walls (1 process doing the task twice, 2 processes doing it once each), the two alternated
    ``repeat`` times: forked after the imports and started together, so what differs is only how many cores run."""
    import multiprocessing
    import statistics

    CEILING_TASKS[task](99)  # imports and first-use costs paid before the fork
    ctx = multiprocessing.get_context("fork")
    walls: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeat):
        for plan in ([[0, 1]], [[0], [1]]):
            go = ctx.Event()
            procs = [ctx.Process(target=_worker, args=(task, seeds, go)) for seeds in plan]
            for p in procs:
                p.start()
            t0 = time.perf_counter()
            go.set()
            for p in procs:
                p.join()
            walls[len(plan)].append(time.perf_counter() - t0)
    return statistics.median(walls[1]), statistics.median(walls[2])


def print_ceiling(when: str) -> dict[str, float]:
    out = {}
    for task in CEILING_TASKS:
        one, two = ceiling(task)
        out[task] = one / two
        print(
            f"hardware ceiling ({when}), {task}: 1 process x2 {one:.2f} s, 2 processes x1 {two:.2f} s (medians of 3): "
            f"{one / two:.2f}x"
        )
    return out
