"""LightGBM's binned train and valid Datasets, built once and reused by the runs that would build the same ones.

Binning (sampling ``bin_construct_sample_cnt`` rows, placing the histogram bin edges, mapping every row to its bins,
bundling features) is a fixed cost of every fit; in a sweep or a grid on one split it is the same work each time. A
run given a :class:`~qframe.core.context.FitCache` looks its Datasets up in LightGBM's binary Dataset format
(``Dataset.save_binary``, loaded by file name) under a key of the data's identity and of every parameter that can
change the bins; the first run that misses builds them and writes them atomically under a file lock (a concurrent
run waits for it, then loads). Loading happens in the run's own process: nothing is binned in a parent that forks
(LightGBM's construction starts an OpenMP thread pool, and GNU libgomp is not fork-safe).

The key leaves out only parameters known to act on the boosting alone (:data:`TRAINING_ONLY`): any other parameter,
including ones LightGBM adds later, changes the key, so a doubt costs a rebuild, never a wrong Dataset.
``min_data_in_leaf`` (and ``min_sum_hessian_in_leaf``) is in the key while ``feature_pre_filter`` is true (LightGBM's
default): the pre-filter drops the features that no split of that size can use. A search over ``min_data_in_leaf``
shares its bins with ``feature_pre_filter: false`` (LightGBM's own advice for such searches; conf/tuner/lightgbm.yaml).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qframe.core.cache import cache_key
from qframe.core.context import FitCache
from qframe.core.memory import trim_heap

#: where, under a work directory's cache, the binned Datasets live (``qframe cache`` lists and clears them)
BINS_DIR = "lightgbm-bins"
#: bump when what is stored changes meaning (a new LightGBM binary format is keyed by the version below)
BINS_VERSION = "1"

#: LightGBM parameters (main names) that act on the boosting only, never on the binned Dataset
TRAINING_ONLY = frozenset(
    {
        "objective",
        "boosting",
        "learning_rate",
        "num_leaves",
        "max_depth",
        "num_threads",
        "verbosity",
        "lambda_l1",
        "lambda_l2",
        "feature_fraction",
        "feature_fraction_bynode",
        "feature_fraction_seed",
        "bagging_fraction",
        "bagging_freq",
        "bagging_seed",
        "min_gain_to_split",
        "max_delta_step",
        "path_smooth",
        "extra_trees",
        "extra_seed",
        "num_iterations",
        "early_stopping_round",
        "metric",
        "first_metric_only",
        "metric_freq",
        "is_provide_training_metric",
        "alpha",
        "huber_delta",
    }
)
#: parameters the ``feature_pre_filter`` uses when it is on (LightGBM's default): then they change the Dataset
PRE_FILTER_PARAMS = frozenset({"min_data_in_leaf", "min_sum_hessian_in_leaf"})


def _aliases() -> dict[str, str]:
    """Alias -> main name of every LightGBM parameter (empty when this LightGBM does not say: names stay as given)."""
    import lightgbm as lgb

    table = getattr(getattr(lgb.basic, "_ConfigAliases", None), "_get_all_param_aliases", None)
    try:
        return {alias: main for main, names in table().items() for alias in (main, *names)} if table else {}
    except Exception:  # noqa: BLE001 - unknown aliases only make the key stricter
        return {}


def _is_true(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "+", "yes")


def binning_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of ``params`` that can change the binned Dataset, by LightGBM's main names."""
    aliases = _aliases()
    main = {aliases.get(k, k): v for k, v in params.items()}
    pre_filter = _is_true(main.get("feature_pre_filter", True))
    return {
        k: v for k, v in sorted(main.items()) if k not in TRAINING_ONLY and (pre_filter or k not in PRE_FILTER_PARAMS)
    }


def _digest(*arrays: np.ndarray | None) -> str:
    """A hash of the arrays' bytes (shape and dtype included); None counts as absent."""
    h = hashlib.blake2b(digest_size=16)
    for arr in arrays:
        if arr is None:
            h.update(b"none")
            continue
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def data_identity(
    identity: str, X: np.ndarray, y: np.ndarray, weight: np.ndarray | None, X_valid: np.ndarray, y_valid: np.ndarray
) -> str:
    """What the Datasets are made of: the caller's identity of the inputs (config and data sources), the labels
    and weights in full, and the feature matrices' shapes and a strided sample of their rows (hashing every feature
    byte would cost a third of the binning it saves; the caller's identity already names the data)."""
    step = max(1, len(X) // 4096)
    return _digest(
        np.frombuffer(identity.encode(), dtype=np.uint8), y, weight, y_valid,
        np.asarray(X[::step]), np.asarray(X_valid[:: max(1, len(X_valid) // 1024)]),
        np.asarray(X.shape), np.asarray(X_valid.shape),
    )  # fmt: skip


def bins_key(params: dict[str, Any], data: str) -> str:
    """The key of the binned Datasets of ``data`` (:func:`data_identity`) under ``params``."""
    import lightgbm as lgb

    return cache_key("lightgbm-bins", BINS_VERSION, lgb.__version__, data, binning_params(params))


@dataclass
class Binned:
    """The train and valid Datasets of a fit (valid None without valid rows), and how they came."""

    train: Any
    valid: Any
    #: seconds spent getting them: binning, or loading the stored bins (waiting for a concurrent build included)
    seconds: float
    #: "built" (binned here, not stored), "stored" (binned here and written for the next runs), "reused" (loaded)
    how: str


#: rows of the train matrix handed to LightGBM at a time once its bins are placed; columns sampled at a time
PUSH_ROWS = 1 << 16
SAMPLE_COLUMNS = 4
#: LightGBM's ``kZeroThreshold`` (``const double kZeroThreshold = 1e-35f``: a float literal widened to double):
#: a sampled value at or below it in magnitude counts as a zero, which LightGBM leaves out of the sample
ZERO_THRESHOLD = float(np.float32(1e-35))


def _sample_columns(X: np.ndarray, indices: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The sampled rows of ``X`` as LightGBM's matrix path collects them: per feature, the values (as doubles)
    that are not zero, NaN included, and their positions in the sample; exact-size arrays, and one shared array of
    positions for the features that lose no value (LightGBM only reads the positions)."""
    every = np.arange(len(indices), dtype=np.int32)
    values: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    for lo in range(0, X.shape[1], SAMPLE_COLUMNS):
        block = X[indices, lo : lo + SAMPLE_COLUMNS]  # a few columns at a time: the copy stays small
        for j in range(block.shape[1]):
            col = block[:, j].astype(np.float64)
            keep = (np.abs(col) > ZERO_THRESHOLD) | np.isnan(col)  # c_api.cpp's filter of a sampled value
            whole = bool(keep.all())
            values.append(col if whole else col[keep])
            rows.append(every if whole else every[keep])
        del block
    return values, rows


def _sampled_handle(X: np.ndarray, params_str: str) -> Any:
    """A LightGBM Dataset handle of the float32 C-contiguous ``X`` binned as ``LGBM_DatasetCreateFromMat`` bins it.

    The same calls in the same order as LightGBM's matrix path, with the run's whole parameter string (the
    Python Sequence path passes only ``Dataset.get_params()``: without ``seed`` it samples other rows, without
    ``min_data_in_leaf`` it pre-filters otherwise, so it places other bins): ``LGBM_SampleIndices``, the sampled
    columns, ``LGBM_DatasetCreateFromSampledColumn``, then the rows pushed. The sample is held in exact-size
    arrays (the matrix path grows per-feature vectors by doubling: ~455 MB for 200 000 rows x 158 features, here
    ~255 MB) and freed before the rows are pushed.
    """
    import ctypes

    from lightgbm.basic import _LIB, _c_str, _safe_call

    n, f = X.shape
    c_params = _c_str(params_str)
    count = ctypes.c_int32(0)
    _safe_call(_LIB.LGBM_GetSampleCount(ctypes.c_int32(n), c_params, ctypes.byref(count)))
    indices = np.empty(count.value, dtype=np.int32)
    got = ctypes.c_int32(0)
    int_p = ctypes.POINTER(ctypes.c_int32)
    _safe_call(_LIB.LGBM_SampleIndices(ctypes.c_int32(n), c_params, indices.ctypes.data_as(int_p), ctypes.byref(got)))
    values, rows = _sample_columns(X, indices[: got.value])
    del indices
    double_p = ctypes.POINTER(ctypes.c_double)
    value_ptrs = (double_p * f)(*(v.ctypes.data_as(double_p) for v in values))
    row_ptrs = (int_p * f)(*(r.ctypes.data_as(int_p) for r in rows))
    per_col = np.array([len(v) for v in values], dtype=np.int32)
    handle = ctypes.c_void_p()
    _safe_call(
        _LIB.LGBM_DatasetCreateFromSampledColumn(
            ctypes.cast(value_ptrs, ctypes.POINTER(double_p)),
            ctypes.cast(row_ptrs, ctypes.POINTER(int_p)),
            ctypes.c_int32(f),
            per_col.ctypes.data_as(int_p),
            ctypes.c_int32(got.value),
            ctypes.c_int32(n),
            ctypes.c_int64(n),
            c_params,
            ctypes.byref(handle),
        )
    )
    del values, rows, value_ptrs, row_ptrs  # the bins are placed: the sample goes before the rows come in
    try:
        for lo in range(0, n, PUSH_ROWS):
            block = X[lo : lo + PUSH_ROWS]
            _safe_call(
                _LIB.LGBM_DatasetPushRows(
                    handle,
                    block.ctypes.data_as(ctypes.c_void_p),
                    ctypes.c_int(0),  # C_API_DTYPE_FLOAT32
                    ctypes.c_int32(len(block)),
                    ctypes.c_int32(f),
                    ctypes.c_int32(lo),
                )
            )  # the last block finishes the Dataset (start + rows == its size), as the matrix path does
    except BaseException:
        _LIB.LGBM_DatasetFree(handle)
        raise
    return handle


@functools.cache
def _lean_dataset_class() -> Any:
    """``lightgbm.Dataset`` that bins a train matrix through :func:`_sampled_handle` (less memory, the same bins;
    tests/test_lightgbm_bins.py compares the binary files); None when this LightGBM lacks the private hook it
    overrides (then LightGBM's own matrix path bins)."""
    import lightgbm as lgb

    if not callable(getattr(lgb.Dataset, "_Dataset__init_from_np2d", None)):
        return None

    class LeanDataset(lgb.Dataset):
        def _Dataset__init_from_np2d(self, *, mat: np.ndarray, params_str: str, ref_dataset: Any) -> Any:
            # a valid set (binned on the train set's bins: no sample) or another layout: LightGBM's own path
            plain = ref_dataset is not None or mat.ndim != 2 or mat.dtype != np.float32 or len(mat) == 0
            if plain or not mat.flags["C_CONTIGUOUS"]:
                return super()._Dataset__init_from_np2d(mat=mat, params_str=params_str, ref_dataset=ref_dataset)
            self._handle = _sampled_handle(mat, params_str)
            return self

    return LeanDataset


def train_dataset(X: np.ndarray, y: np.ndarray, weight: np.ndarray | None, params: dict[str, Any]) -> Any:
    """The (unconstructed) train Dataset of ``X``: binned from exact-size sampled columns where that path exists
    and applies (a linear tree keeps raw values: LightGBM's own path), else LightGBM's ``Dataset(X)``."""
    import lightgbm as lgb

    lean = _lean_dataset_class()
    linear = _is_true({_aliases().get(k, k): v for k, v in params.items()}.get("linear_tree", False))
    cls = lgb.Dataset if lean is None or linear else lean
    return cls(X, label=y, weight=weight, params=params, free_raw_data=True)


def build(
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    weight: np.ndarray | None = None,
) -> Binned:
    """Bin the train rows (and the valid ones on the train bins) now, so the binning is timed apart from the trees."""
    import lightgbm as lgb

    t0 = time.perf_counter()
    trim_heap()  # what the processors freed: the sample goes on top of what the run holds, not of what glibc kept
    train = train_dataset(X, y, weight, params)
    valid = lgb.Dataset(X_valid, label=y_valid, reference=train, params=params) if len(y_valid) else None
    train.construct()
    # LightGBM frees its sampling buffers once the bins are placed; without this glibc keeps those pages resident
    trim_heap()
    if valid is not None:
        valid.construct()
    return Binned(train, valid, time.perf_counter() - t0, "built")


def cached(
    cache: FitCache,
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    weight: np.ndarray | None = None,
) -> Binned:
    """:func:`build`, or the Datasets a run with the same key stored; the first run of a key stores them."""
    import lightgbm as lgb
    from filelock import FileLock

    t0 = time.perf_counter()
    key = bins_key(params, data_identity(cache.identity, X, y, weight, X_valid, y_valid))
    root = Path(cache.directory) / BINS_DIR
    root.mkdir(parents=True, exist_ok=True)
    entry = root / key
    with FileLock(str(root / f"{key}.lock")):
        if (entry / "meta.json").exists():
            train = lgb.Dataset(str(entry / "train.bin"), params=params)
            valid = lgb.Dataset(str(entry / "valid.bin"), reference=train, params=params) if len(y_valid) else None
            train.construct()
            if valid is not None:
                valid.construct()
            return Binned(train, valid, time.perf_counter() - t0, "reused")
        binned = build(params, X, y, X_valid, y_valid, weight)
        _store(entry, binned, {"rows": len(y), "valid_rows": len(y_valid), "features": int(X.shape[1])})
    binned.seconds, binned.how = time.perf_counter() - t0, "stored"
    return binned


def _store(entry: Path, binned: Binned, meta: dict[str, Any]) -> None:
    """Write both Datasets into a fresh directory renamed to ``entry`` once complete (``meta.json`` last)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        binned.train.save_binary(str(tmp / "train.bin"))
        if binned.valid is not None:
            binned.valid.save_binary(str(tmp / "valid.bin"))
        (tmp / "meta.json").write_text(json.dumps(meta))
        shutil.rmtree(entry, ignore_errors=True)  # a half-written entry of a killed run (it has no meta.json)
        os.replace(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
