"""From a market to model-ready segments: features, label, universe, segments, processors.

This is qframe's counterpart of Qlib's DataHandlerLP + DatasetH: features are
computed once over the whole (date x instrument) panel (or read from the
cache), rows are kept where the instrument is a universe member with a bar,
the calendar is cut into train/valid/test, and processors are fitted on the
train segment only.
"""

from __future__ import annotations

import logging
import mmap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qframe.core.cache import ArrayCache, cache_key
from qframe.core.data import MarketData
from qframe.core.errors import ConfigError
from qframe.core.features import label as make_label
from qframe.core.panel import Panel
from qframe.core.registry import Registry

log = logging.getLogger("qframe")

SEGMENTS = ("train", "valid", "test")


@dataclass
class PreparedData:
    """Processed segments plus the raw test label (for honest evaluation)."""

    segments: dict[str, Panel]
    raw_test_label: pd.Series
    bounds: dict[str, tuple[pd.Timestamp, pd.Timestamp]]
    dropped_features: dict[str, str]
    processors: list[Any]
    from_cache: bool
    timings: dict[str, float] = field(default_factory=dict)


def build_panel(
    market: MarketData,
    registry: Registry,
    features_cfg: dict[str, Any],
    label_cfg: dict[str, Any],
    cache_dir: Path | None,
) -> tuple[Panel, dict[str, str], bool]:
    """The full feature panel (universe rows only), from the cache when possible."""
    features_cfg = dict(features_cfg)
    name = features_cfg.pop("name")
    feature_set = registry.create("feature_set", name, **features_cfg)
    horizon = int(label_cfg.get("horizon", 1))
    if horizon < 1:
        raise ConfigError(f"handler.label.horizon must be >= 1, got {horizon}")
    cache = ArrayCache(cache_dir) if cache_dir is not None else None
    key = cache_key("panel", market.fingerprint(), name, feature_set.config(), {"horizon": horizon})
    if cache is None:
        panel, dropped = _compute_panel(market, feature_set, horizon)
        return panel, dropped, False
    with cache.lock(key):
        hit = cache.load(key)
        if hit is None:
            panel, dropped = _compute_panel(market, feature_set, horizon)
            arrays = {"day": panel.day, "inst": panel.inst, "y": panel.y, "X": panel.X}
            cache.save(key, arrays, {"names": panel.names, "dropped": dropped})
            # continue from the file mapping, so the computed block is freed and memory is the same as on a hit
            del panel, arrays
            hit, from_cache = cache.load(key), False
        else:
            from_cache = True
    a = hit.arrays
    panel = Panel(a["X"], a["y"], a["day"], a["inst"], hit.meta["names"], market.calendar, market.instruments)
    panel.release = hit.release
    return panel, hit.meta["dropped"], from_cache


#: cells (days x instruments) per block when a per-instrument feature set is computed block by block
BLOCK_CELLS = 1 << 18


def _compute_panel(market: MarketData, feature_set: Any, horizon: int) -> tuple[Panel, dict[str, str]]:
    rows = market.universe & ~np.isnan(market.fields["close"])
    day, inst = np.nonzero(rows)  # row-major: sorted by date, then instrument
    T, N = market.shape
    width = max(1, BLOCK_CELLS // max(T, 1))
    if getattr(feature_set, "per_instrument", False) and N > width:
        X, names, dropped = _compute_blocks(market, feature_set, rows, width)
    else:
        result = feature_set.compute(market)
        names, dropped = list(result.names), dict(result.dropped)
        values = result.values
        if isinstance(values, np.ndarray) and values.ndim == 3:
            X = _compact_rows(values.reshape(-1, values.shape[2]), np.flatnonzero(rows.ravel()))
        else:
            X = np.empty((len(day), len(values)), dtype=np.float32)
            for j, arr in enumerate(values):
                X[:, j] = arr[rows]
    y = make_label(market, horizon=horizon)[rows].astype(np.float32)
    panel = Panel(X, y, day.astype(np.int32), inst.astype(np.int32), names, market.calendar, market.instruments)
    return panel, dropped


def _compute_blocks(
    market: MarketData, feature_set: Any, rows: np.ndarray, width: int
) -> tuple[np.ndarray, list[str], dict[str, str]]:
    """Features of blocks of instruments scattered into the sample matrix.

    Only valid for feature sets that look at each instrument's own history (``per_instrument``). The full
    (T, N, F) block then never exists: peak memory is the sample matrix plus one block's features.
    """
    position = np.full(rows.shape, -1, dtype=np.int64)
    position[rows] = np.arange(int(rows.sum()))
    X = None
    names: list[str] = []
    dropped: dict[str, str] = {}
    for lo in range(0, rows.shape[1], width):
        cols = slice(lo, lo + width)
        result = feature_set.compute(market.take_instruments(cols))
        if X is None:
            names, dropped = list(result.names), dict(result.dropped)
            X = np.empty((len(position[rows]), len(names)), dtype=np.float32)
        block_rows = rows[:, cols]
        X[position[:, cols][block_rows]] = result.values[block_rows]
        del result
    return X, names, dropped


def _compact_rows(flat: np.ndarray, keep: np.ndarray, chunk: int = 1 << 15) -> np.ndarray:
    """``flat[keep]`` built in place at the front of ``flat`` (``keep`` ascending), without a second matrix.

    The full (date x instrument) feature block is about twice the universe rows; copying the kept rows out
    would hold both at once. Moving them forward chunk by chunk is safe because ``keep[i] >= i``: a chunk
    reads rows at or after the ones it writes, and later chunks read rows after every row written so far.
    The freed tail of an mmap-backed block is handed back to the OS.
    """
    if len(keep) == len(flat):
        return flat
    for lo in range(0, len(keep), chunk):
        hi = min(lo + chunk, len(keep))
        flat[lo:hi] = flat[keep[lo:hi]]
    _release_tail(flat, len(keep) * flat.shape[1] * flat.itemsize)
    return flat[: len(keep)]


def _release_tail(arr: np.ndarray, used_bytes: int) -> None:
    base = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    if isinstance(base, mmap.mmap) and hasattr(base, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        start = -(-used_bytes // mmap.PAGESIZE) * mmap.PAGESIZE
        if start < len(base):
            base.madvise(mmap.MADV_DONTNEED, start, len(base) - start)


def resolve_segments(
    calendar: pd.DatetimeIndex, segments_cfg: dict[str, Any]
) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    """Dates of train/valid/test: explicit ``[start, end]`` pairs, or a fractional split when all are null."""
    first, last = calendar[0], calendar[-1]
    explicit = {s: segments_cfg.get(s) for s in SEGMENTS}
    if all(v is None or all(x is None for x in v) for v in explicit.values()):
        fractions = list(segments_cfg.get("fractions") or (0.6, 0.2, 0.2))
        if len(fractions) != 3 or min(fractions) <= 0:
            raise ConfigError(f"segments.fractions must be three positive numbers, got {fractions}")
        cuts = np.cumsum(np.asarray(fractions) / sum(fractions)) * len(calendar)
        edges = [0, *np.round(cuts).astype(int)]
        bounds = {}
        for s, lo, hi in zip(SEGMENTS, edges[:-1], edges[1:], strict=True):
            if hi <= lo:
                raise ConfigError(f"segments: the {s} segment is empty ({len(calendar)} trading days in the data)")
            bounds[s] = (calendar[lo], calendar[hi - 1])
        return bounds
    bounds = {}
    for s in SEGMENTS:
        pair = explicit[s]
        if pair is None or len(pair) != 2:
            raise ConfigError(f"segments.{s} must be [start, end] (dates; null = open end), got {pair}")
        lo = pd.Timestamp(pair[0]) if pair[0] is not None else first
        hi = pd.Timestamp(pair[1]) if pair[1] is not None else last
        if lo > hi:
            raise ConfigError(f"segments.{s}: start {lo.date()} is after end {hi.date()}")
        if hi < first or lo > last:
            raise ConfigError(
                f"segments.{s} = {lo.date()}..{hi.date()} is outside the data ({first.date()}..{last.date()}); "
                f"set segments.{s}=[start,end] within it"
            )
        bounds[s] = (max(lo, first), min(hi, last))
    order = [bounds[s] for s in SEGMENTS]
    for (a, b), name in zip(zip(order[:-1], order[1:], strict=True), ("train/valid", "valid/test"), strict=True):
        if a[1] >= b[0]:
            log.warning(
                "segments %s overlap (%s >= %s): evaluation is not out of sample", name, a[1].date(), b[0].date()
            )
    return bounds


def _make_processors(registry: Registry, specs: list[Any], key: str) -> list[Any]:
    processors = []
    for i, spec in enumerate(specs or []):
        spec = {"name": spec} if isinstance(spec, str) else dict(spec)
        if "name" not in spec:
            raise ConfigError(f"{key}[{i}] has no 'name'; valid options: {', '.join(registry.names('processor'))}")
        processors.append(registry.create("processor", spec.pop("name"), **spec))
    return processors


def prepare(
    market: MarketData,
    registry: Registry,
    handler_cfg: dict[str, Any],
    segments_cfg: dict[str, Any],
    cache_dir: Path | None,
) -> PreparedData:
    """Features, segments and fitted processors for one run."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    use_cache = handler_cfg.get("cache", True)
    panel, dropped, hit = build_panel(
        market, registry, handler_cfg["features"], handler_cfg.get("label") or {}, cache_dir if use_cache else None
    )
    timings["features"] = time.perf_counter() - t0
    if dropped:
        log.warning("dropped %d features: %s", len(dropped), "; ".join(f"{k} ({v})" for k, v in dropped.items()))
    if not panel.names:
        raise ConfigError("no feature could be computed from this data; it needs at least a close series")

    t0 = time.perf_counter()
    bounds = resolve_segments(market.calendar, segments_cfg)
    dates = market.calendar.to_numpy()
    raw: dict[str, Panel] = {}
    for s, (lo, hi) in bounds.items():
        day_lo = int(np.searchsorted(dates, lo.to_datetime64(), "left"))
        day_hi = int(np.searchsorted(dates, hi.to_datetime64(), "right"))
        # rows are sorted by date, so a segment is a contiguous block: a view, not a copy
        part = panel.rows(*np.searchsorted(panel.day, [day_lo, day_hi], "left"))
        if len(part) == 0:
            raise ConfigError(
                f"segments.{s} = {lo.date()}..{hi.date()} holds no sample in the universe; widen it or check "
                "dataset.start/end and the universe"
            )
        raw[s] = part
    raw_test_label = raw["test"].series(raw["test"].y, "label")

    processors = _make_processors(registry, handler_cfg.get("processors"), "handler.processors")
    learn = _make_processors(registry, handler_cfg.get("learn_processors"), "handler.learn_processors")
    out = dict(raw)
    for proc in processors:  # shared: fitted on train, applied to every segment
        if proc.stateful:
            proc.fit(out["train"])
        out = {s: proc.transform(p) for s, p in out.items()}
    for proc in learn:  # learn-only: fitted on train, applied to train and valid
        if proc.stateful:
            proc.fit(out["train"])
        out.update({s: proc.transform(out[s]) for s in ("train", "valid")})
    if panel.release is not None:
        panel.release()  # segments that were copied by processors no longer need the mapped pages
    if len(out["train"]) == 0:
        raise ConfigError("the train segment is empty after processing (every label NaN?)")
    timings["processors"] = time.perf_counter() - t0
    return PreparedData(out, raw_test_label, bounds, dropped, processors + learn, hit, timings)
