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
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qframe.core.cache import ArrayCache, cache_key
from qframe.core.components import build_component
from qframe.core.data import MarketData
from qframe.core.errors import ConfigError, DataError
from qframe.core.features import label as make_label
from qframe.core.memory import trim_heap
from qframe.core.panel import Panel
from qframe.core.progress import Progress
from qframe.core.registry import Registry

log = logging.getLogger("qframe")

SEGMENTS = ("train", "valid", "test")
#: ``handler.suspended``: a member's day without a bar (suspended) has no row ("drop", qframe's default), or has one
#: with the features the day's history gives and NaN elsewhere ("keep", Qlib's: every day of a membership spell
#: between the instrument's first and last bar); docs/qlib_semantics.md
SUSPENDED = ("drop", "keep")


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
    #: ``lookback(k)``: the rows of the k trading days before the test segment, from the unfiltered features with
    #: the shared processors applied (no learn processor: DropnaLabel must not make gaps in prediction windows)
    lookback: Callable[[int], Panel] | None = field(default=None, repr=False)


def make_feature_set(registry: Registry, features_cfg: dict[str, Any]) -> tuple[str, Any]:
    """(name, feature set) of ``handler.features``: a registered name or a ``_target_``."""
    return build_component(registry, "feature_set", features_cfg, "handler.features")


def suspended_rule(handler_cfg: dict[str, Any]) -> str:
    """``handler.suspended`` checked: "drop" (the default) or "keep"."""
    value = handler_cfg.get("suspended") or "drop"
    if value not in SUSPENDED:
        options = ", ".join(SUSPENDED)
        raise ConfigError(f"handler.suspended={value!r}; valid options: {options} (docs/qlib_semantics.md)")
    return str(value)


def sample_rows(market: MarketData, suspended: str = "drop") -> np.ndarray:
    """(T, N) bool: the (day, instrument) cells that are rows of the panel.

    A universe member's day with a close, and with ``suspended="keep"`` also its days without one between the
    instrument's first and last bar (Qlib's rows: its data holds every stored day of a membership spell).
    """
    has_bar = ~np.isnan(market.fields["close"])
    if suspended == "drop":
        return market.universe & has_bar
    listed = np.logical_or.accumulate(has_bar, axis=0) & np.logical_or.accumulate(has_bar[::-1], axis=0)[::-1]
    return market.universe & listed


def feature_threads(handler_cfg: dict[str, Any]) -> int:
    """``handler.num_threads`` checked: the threads computing features (null: every core this process may use).

    A parallel sweep's jobs get their share of the cores (the app sets it from :mod:`qframe.launch.threads`).
    """
    from qframe.launch.threads import cores

    value = handler_cfg.get("num_threads")
    if value is None:
        return cores()
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"handler.num_threads={value!r}: give a positive integer, or null for every core")
    return value


def label_horizon(label_cfg: dict[str, Any]) -> int:
    horizon = int(label_cfg.get("horizon", 1))
    if horizon < 1:
        raise ConfigError(f"handler.label.horizon must be >= 1, got {horizon}")
    return horizon


def build_panel(
    market: MarketData,
    registry: Registry,
    features_cfg: dict[str, Any],
    label_cfg: dict[str, Any],
    cache_dir: Path | None,
    suspended: str = "drop",
    threads: int = 1,
) -> tuple[Panel, dict[str, str], bool]:
    """The full feature panel (universe rows only), from the cache when possible; and whether it was."""
    name, feature_set = make_feature_set(registry, features_cfg)
    return panel_of(market, feature_set, name, label_horizon(label_cfg), cache_dir, suspended, threads)


def panel_of(
    market: MarketData,
    feature_set: Any,
    name: str,
    horizon: int,
    cache_dir: Path | None,
    suspended: str = "drop",
    threads: int = 1,
    before_compute: Callable[[], None] | None = None,
) -> tuple[Panel, dict[str, str], bool]:
    """:func:`build_panel` for a feature set already made; ``threads`` compute a per-instrument feature set's
    blocks of instruments side by side (the numbers do not depend on it). ``before_compute`` is called before the
    features are computed, not when they come from the cache."""
    cache = ArrayCache(cache_dir) if cache_dir is not None else None
    rule = {"horizon": horizon} if suspended == "drop" else {"horizon": horizon, "suspended": suspended}
    key = cache_key("panel", market.fingerprint(), name, feature_set.config(), rule)  # "drop": the key it always had
    if cache is None:
        if before_compute is not None:
            before_compute()
        panel, dropped = _compute_panel(market, feature_set, horizon, suspended, threads)
        return panel, dropped, False
    with cache.lock(key):
        hit = cache.load(key)
        if hit is None:
            if before_compute is not None:
                before_compute()
            panel, dropped = _compute_panel(market, feature_set, horizon, suspended, threads)
            arrays = {"day": panel.day, "inst": panel.inst, "y": panel.y, "X": panel.X}
            described = {"feature_set": name, "market": market.name, "rows": len(panel), "horizon": horizon}
            cache.save(key, arrays, {"names": panel.names, "dropped": dropped, **described})
            # continue from the file mapping, so the computed block is freed and memory is the same as on a hit
            del panel, arrays
            trim_heap()  # the feature blocks' freed memory too (glibc would keep ~100 MB of it resident)
            hit, from_cache = cache.load(key), False
        else:
            from_cache = True
    a = hit.arrays
    panel = Panel(a["X"], a["y"], a["day"], a["inst"], hit.meta["names"], market.calendar, market.instruments)
    panel.release = hit.release
    return panel, hit.meta["dropped"], from_cache


#: cells (days x instruments) per block when a per-instrument feature set is computed block by block; with k
#: threads each block has 1/k of them, so the blocks in flight hold the memory one block holds with one thread.
#: Alpha158 on 300 x 2500 (2 threads): the blocks in flight add ~310 MB to the feature matrix at 1 << 18, ~110 MB
#: at 1 << 16, in the same time (benchmarks/README.md, bench_memory.py)
BLOCK_CELLS = 1 << 16


def _compute_panel(
    market: MarketData, feature_set: Any, horizon: int, suspended: str = "drop", threads: int = 1
) -> tuple[Panel, dict[str, str]]:
    rows = sample_rows(market, suspended)
    day, inst = np.nonzero(rows)  # row-major: sorted by date, then instrument
    T, N = market.shape
    threads = max(1, int(threads))
    width = max(1, BLOCK_CELLS // max(T, 1) // threads)
    if getattr(feature_set, "per_instrument", False) and N > width:
        X, names, dropped = _compute_blocks(market, feature_set, rows, width, threads)
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
    market: MarketData, feature_set: Any, rows: np.ndarray, width: int, threads: int = 1
) -> tuple[np.ndarray, list[str], dict[str, str]]:
    """Features of blocks of instruments scattered into the sample matrix, ``threads`` blocks at a time.

    Only valid for feature sets that look at each instrument's own history (``per_instrument``). The full
    (T, N, F) block then never exists: peak memory is the sample matrix plus the blocks in flight. numpy's and
    pandas' kernels release the GIL, so threads share the cores; each block writes its own rows of the matrix.
    """
    position = np.full(rows.shape, -1, dtype=np.int64)
    position[rows] = np.arange(int(rows.sum()))
    n_rows = int(rows.sum())
    out: dict[str, Any] = {}
    made = threading.Lock()

    def block(lo: int) -> None:
        cols = slice(lo, lo + width)
        result = feature_set.compute(market.take_instruments(cols))
        with made:  # the first block done says the names and allocates the matrix
            if "X" not in out:
                X = np.empty((n_rows, len(result.names)), dtype=np.float32)
                out.update(X=X, names=list(result.names), dropped=dict(result.dropped))
        block_rows = rows[:, cols]
        out["X"][position[:, cols][block_rows]] = result.values[block_rows]

    starts = range(0, rows.shape[1], width)
    if threads == 1:
        for lo in starts:
            block(lo)
    else:
        # joined before returning: a sweep's parent computes features here, then forks
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="qframe-features") as pool:
            # a thread's block is freed before it takes the next: at most ``threads`` blocks exist at once
            futures = [pool.submit(block, lo) for lo in starts]
            try:
                for done in futures:
                    done.result()
            except BaseException:  # an error (or Ctrl-C): the blocks not started yet are not computed for nothing
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    return out["X"], out["names"], out["dropped"]


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


#: trading days each segment needs at the least: fewer make the IC, risk and early stopping mean nothing
MIN_SEGMENT_DAYS = 10


def _segment_pair(value: Any, name: str) -> tuple[pd.Timestamp | None, pd.Timestamp | None] | None:
    """``[start, end]`` of ``segments.<name>`` as timestamps (None: open end), or None when it is not set."""
    if value is None or (isinstance(value, (list, tuple)) and all(v is None for v in value)):
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"segments.{name} must be [start, end] (dates; null = open end), got {value!r}")
    try:
        lo, hi = (None if v is None else pd.Timestamp(v) for v in value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"segments.{name}={list(value)}: cannot read it as two dates ({exc})") from None
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"segments.{name}: start {lo.date()} is after end {hi.date()}")
    return lo, hi


def _fractions(segments_cfg: dict[str, Any]) -> list[float]:
    fractions = list(segments_cfg.get("fractions") or (0.6, 0.2, 0.2))
    if len(fractions) != 3 or min(fractions) <= 0:
        raise ConfigError(f"segments.fractions must be three positive numbers, got {fractions}")
    return [float(f) for f in fractions]


def _split(lo: int, hi: int, names: list[str], weights: list[float], what: str) -> dict[str, tuple[int, int]]:
    """Calendar positions [lo, hi) cut into consecutive pieces in proportion to ``weights``."""
    n = hi - lo
    if n < len(names):
        raise ConfigError(
            f"segments: {what} leaves {max(n, 0)} trading day(s) for {', '.join(names)}; "
            f"set {' and '.join('segments.' + s for s in names)}=[start,end] or move the other segments"
        )
    cuts = lo + np.round(np.cumsum(np.asarray(weights) / sum(weights)) * n).astype(int)
    edges = [lo, *cuts[:-1], hi]
    out = {}
    for name, a, b in zip(names, edges[:-1], edges[1:], strict=True):
        if b <= a:
            raise ConfigError(f"segments: the {name} segment is empty ({n} trading days to share); set its dates")
        out[name] = (a, b)
    return out


def resolve_segments(
    calendar: pd.DatetimeIndex, segments_cfg: dict[str, Any]
) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    """Dates of train/valid/test.

    Segments given as ``[start, end]`` are used as given (a null end is open: the first or last day of the data).
    Segments left unset share the days around the given ones in the proportions of ``fractions``: with only
    ``segments.test`` set, train and valid split the days before it 3:1 (for the default 0.6/0.2/0.2); with none
    set, the whole calendar is split. Train or valid overlapping test is refused unless
    ``segments.allow_overlap`` is true: the evaluation would not be out of sample.
    """
    first, last = calendar[0], calendar[-1]
    fractions = dict(zip(SEGMENTS, _fractions(segments_cfg), strict=True))
    given = {s: _segment_pair(segments_cfg.get(s), s) for s in SEGMENTS}
    positions: dict[str, tuple[int, int]] = {}  # calendar positions [lo, hi)
    dates = calendar.to_numpy()
    for s, pair in given.items():
        if pair is None:
            continue
        lo = pair[0] if pair[0] is not None else first
        hi = pair[1] if pair[1] is not None else last
        a = int(np.searchsorted(dates, lo.to_datetime64(), "left"))
        b = int(np.searchsorted(dates, hi.to_datetime64(), "right"))
        if b <= a:
            raise ConfigError(
                f"segments.{s} = {lo.date()}..{hi.date()} is outside the data or holds no trading day of it "
                f"({first.date()}..{last.date()}); set segments.{s}=[start,end] within it"
            )
        positions[s] = (a, b)
    # each run of unset segments shares the days between its given neighbours
    i = 0
    while i < len(SEGMENTS):
        if SEGMENTS[i] in positions:
            i += 1
            continue
        j = i
        while j < len(SEGMENTS) and SEGMENTS[j] not in positions:
            j += 1
        run = list(SEGMENTS[i:j])
        lo = positions[SEGMENTS[i - 1]][1] if i > 0 else 0
        hi = positions[SEGMENTS[j]][0] if j < len(SEGMENTS) else len(calendar)
        before = f"segments.{SEGMENTS[i - 1]}" if i > 0 else "the start of the data"
        after = f"segments.{SEGMENTS[j]}" if j < len(SEGMENTS) else "the end of the data"
        positions.update(_split(lo, hi, run, [fractions[s] for s in run], f"the span between {before} and {after}"))
        i = j
    bounds = {s: (calendar[positions[s][0]], calendar[positions[s][1] - 1]) for s in SEGMENTS}
    allow_overlap = bool(segments_cfg.get("allow_overlap", False))
    for s in ("train", "valid"):
        lo, hi = bounds[s]
        t_lo, t_hi = bounds["test"]
        if lo <= t_hi and t_lo <= hi and not allow_overlap:
            raise ConfigError(
                f"segments.{s} ({lo.date()}..{hi.date()}) overlaps segments.test ({t_lo.date()}..{t_hi.date()}): "
                f"the test results would not be out of sample; end {s} before {t_lo.date()}, or set "
                "segments.allow_overlap=true to evaluate in sample on purpose"
            )
    (a_lo, a_hi), (b_lo, b_hi) = bounds["train"], bounds["valid"]
    if a_lo <= b_hi and b_lo <= a_hi:
        log.warning("segments train/valid overlap (%s..%s and %s..%s): early stopping is not out of sample",
                    a_lo.date(), a_hi.date(), b_lo.date(), b_hi.date())  # fmt: skip
    return bounds


def check_history(
    calendar: pd.DatetimeIndex,
    bounds: dict[str, tuple[pd.Timestamp, pd.Timestamp]],
    lookback: int,
    horizon: int,
    features: str,
) -> None:
    """Refuse, before any work, data too short for the feature windows, the label and the segments."""
    need = lookback + horizon + 1 + len(SEGMENTS) * MIN_SEGMENT_DAYS
    if len(calendar) < need:
        raise DataError(
            f"the data has {len(calendar)} trading days ({calendar[0].date()}..{calendar[-1].date()}): too few for "
            f"{features} (its longest window is {lookback} days), the label ({horizon + 1} days ahead) and "
            f"{MIN_SEGMENT_DAYS} days for each of train, valid and test; give it at least {need} trading days, or "
            "shorter feature windows (handler.features.*)"
        )
    dates = calendar.to_numpy()
    for s, (lo, hi) in bounds.items():
        days = int(np.searchsorted(dates, hi.to_datetime64(), "right") - np.searchsorted(dates, lo.to_datetime64()))
        if days < MIN_SEGMENT_DAYS:
            raise ConfigError(
                f"segments.{s} = {lo.date()}..{hi.date()} holds {days} trading day(s); each segment needs at least "
                f"{MIN_SEGMENT_DAYS}: widen segments.{s}, or use longer data"
            )


def _make_processors(registry: Registry, specs: list[Any], key: str) -> list[Any]:
    return [build_component(registry, "processor", spec, f"{key}[{i}]")[1] for i, spec in enumerate(specs or [])]


def dropped_summary(dropped: dict[str, str], shown: int = 6) -> list[str]:
    """One line per reason: ``dropped 83 features (needs $open, $high): KMID, KLEN, ... and 77 more``."""
    by_reason: dict[str, list[str]] = {}
    for name, why in dropped.items():
        by_reason.setdefault(why, []).append(name)
    lines = []
    for why, names in by_reason.items():
        more = f" and {len(names) - shown} more" if len(names) > shown else ""
        lines.append(f"dropped {len(names)} feature(s) ({why}): {', '.join(names[:shown])}{more}")
    return lines


def process_segments(raw: dict[str, Panel], processors: list[Any], learn: list[Any]) -> dict[str, Panel]:
    """``raw``'s segments through the processors: each fitted on train, ``processors`` applied to every segment,
    ``learn`` (Qlib's learn_processors) to train and valid only."""
    out = dict(raw)
    for proc in processors:  # shared: fitted on train, applied to every segment
        if getattr(proc, "stateful", True):
            proc.fit(out["train"])
        out = {s: proc.transform(p) for s, p in out.items()}
    for proc in learn:  # learn-only: fitted on train, applied to train and valid
        if getattr(proc, "stateful", True):
            proc.fit(out["train"])
        out.update({s: proc.transform(out[s]) for s in ("train", "valid")})
    return out


def make_processors(registry: Registry, handler_cfg: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """The ``handler.processors`` and ``handler.learn_processors`` of ``handler_cfg``, made (unfitted)."""
    return (
        _make_processors(registry, handler_cfg.get("processors"), "handler.processors"),
        _make_processors(registry, handler_cfg.get("learn_processors"), "handler.learn_processors"),
    )


def prepare(
    market: MarketData,
    registry: Registry,
    handler_cfg: dict[str, Any],
    segments_cfg: dict[str, Any],
    cache_dir: Path | None,
    progress: Progress | None = None,
    check: Callable[[dict[str, tuple[pd.Timestamp, pd.Timestamp]]], None] | None = None,
    before_compute: Callable[[], None] | None = None,
) -> PreparedData:
    """Features, segments and fitted processors for one run.

    The segments and the length of the data are checked before any feature is computed; so is whatever ``check``
    (called with the segments' bounds) checks. ``before_compute`` is called before features are computed (not on a
    cache hit); the time it takes is not counted as the features'.
    """
    progress = progress or Progress()
    timings: dict[str, float] = {}
    name, feature_set = make_feature_set(registry, handler_cfg["features"])
    horizon = label_horizon(handler_cfg.get("label") or {})
    suspended = suspended_rule(handler_cfg)
    threads = feature_threads(handler_cfg)
    bounds = resolve_segments(market.calendar, segments_cfg)
    check_history(market.calendar, bounds, int(getattr(feature_set, "lookback", 0) or 0), horizon, name)
    if check is not None:
        check(bounds)
    processors = _make_processors(registry, handler_cfg.get("processors"), "handler.processors")
    learn = _make_processors(registry, handler_cfg.get("learn_processors"), "handler.learn_processors")

    t0 = time.perf_counter()
    use_cache = handler_cfg.get("cache", True)
    progress.start("features", f"{name}: reading the cache or computing")
    cache = cache_dir if use_cache else None
    waited = [0.0]

    def wait() -> None:
        t = time.perf_counter()
        if before_compute is not None:
            before_compute()
        waited[0] = time.perf_counter() - t

    panel, dropped, hit = panel_of(market, feature_set, name, horizon, cache, suspended, threads, wait)
    timings["features"] = time.perf_counter() - t0 - waited[0]
    if not panel.names:
        raise ConfigError("no feature could be computed from this data; it needs at least a close series")
    if hit:
        where = "from the cache"
    else:
        where = "computed" + (", cached for the next runs" if use_cache and cache_dir is not None else "")
    progress.finish(f"{name}, {len(panel):,} rows x {len(panel.names)}, {where}", tag=where.split(",")[0])

    t0 = time.perf_counter()
    progress.start("processors", ", ".join(str(getattr(p, "name", type(p).__name__)) for p in processors + learn))
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

    out = process_segments(raw, processors, learn)
    if panel.release is not None:
        panel.release()  # segments that were copied by processors no longer need the mapped pages
    if len(out["train"]) == 0:
        raise ConfigError("the train segment is empty after processing (every label NaN?)")
    timings["processors"] = time.perf_counter() - t0
    progress.finish(f"train {len(out['train']):,} / valid {len(out['valid']):,} / test {len(out['test']):,} rows")
    test_lo = int(np.searchsorted(dates, bounds["test"][0].to_datetime64(), "left"))
    lookback = lookback_of(panel, test_lo, processors)
    return PreparedData(out, raw_test_label, bounds, dropped, processors + learn, hit, timings, lookback)


def lookback_of(panel: Panel, test_lo: int, processors: list[Any]) -> Callable[[int], Panel]:
    """``lookback(k)``: the panel's rows on the k calendar days before position ``test_lo``, shared processors applied.

    Qlib's counterpart is the inference data (DK_I) a time-series dataset extends the test segment back into: every
    day that has features is there, whatever its label. Computed when asked, from the (usually file-backed) panel,
    so a model without windows costs nothing.
    """

    def lookback(days: int) -> Panel:
        lo, hi = np.searchsorted(panel.day, [max(test_lo - int(days), 0), test_lo], "left")
        part = panel.rows(int(lo), int(hi))
        for proc in processors:  # already fitted on train
            part = proc.transform(part)
        # a copy: the caller may keep it after the mapped panel is gone
        return Panel(np.array(part.X), part.y.copy(), part.day.copy(), part.inst.copy(), part.names,
                     part.calendar, part.instruments)  # fmt: skip

    return lookback
