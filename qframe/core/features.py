"""What a feature set returns, and the default label."""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from qframe.core.data import MarketData


@dataclass
class FeatureResult:
    """Computed features of a market.

    Attributes:
        names: the F computed feature names, in column order.
        values: float32 array (T, N, F); ``values.reshape(T * N, F)`` is the
            date-major sample matrix without a copy. NaN where undefined.
        dropped: feature name -> why it was not computed (e.g. "needs $open, $high").
        calendar, instruments: the market's axes (length T and N).
    """

    names: list[str]
    values: np.ndarray
    dropped: dict[str, str] = field(default_factory=dict)
    calendar: pd.DatetimeIndex | None = None
    instruments: pd.Index | None = None

    def __post_init__(self) -> None:
        if self.values.ndim != 3 or self.values.shape[2] != len(self.names):
            raise ValueError(f"values has shape {self.values.shape}, expected (T, N, {len(self.names)})")

    def column(self, name: str) -> np.ndarray:
        """The (T, N) view of one feature."""
        return self.values[:, :, self.names.index(name)]


def empty_float32(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float32 array for a large output, backed by a private anonymous mapping.

    numpy asks the kernel for transparent huge pages on big arrays; where THP
    defrag is "madvise" (a common default) the first touch of a fresh ~0.5 GB
    block stalls in memory compaction, ~1 s on the 2-core reference machine. A
    plain mapping is faulted in 4 KiB pages instead (~0.2 s for the same block).
    """
    nbytes = int(np.prod(shape)) * 4
    if nbytes < (64 << 20) or not hasattr(mmap, "MAP_PRIVATE"):
        return np.empty(shape, dtype=np.float32)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE)
    return np.frombuffer(buf, dtype=np.float32).reshape(shape)


def label(market: MarketData, horizon: int = 1) -> np.ndarray:
    """Qlib's default label ``Ref($close, -(h+1)) / Ref($close, -1) - 1`` as (T, N) float32.

    The value at day t is the return from t+1's close to t+1+h's close, i.e. what
    a position opened at the close after the signal earns; NaN near the end.
    """
    if horizon < 1:
        raise ValueError(f"label horizon must be >= 1, got {horizon}")
    # float32 arithmetic, as Qlib does on its float32 bars
    close = market.fields["close"].astype(np.float32)
    T = close.shape[0]
    out = np.full(close.shape, np.nan, dtype=np.float32)
    if T > horizon + 1:
        out[: T - horizon - 1] = close[horizon + 1 :] / close[1 : T - horizon] - np.float32(1.0)
    return out
