"""What the torch models feed their networks: input sources, and the order of one epoch's mini-batches.

A source holds the labels and day codes of its rows and gives the network input of any row numbers:
:class:`RowSource` from a feature matrix (rows as they are, or Qlib's layout of ``d_feat`` series of days),
:class:`WindowSource` from the time-series sampler. :func:`train_batches` cuts an epoch into mini-batches:
random rows, or whole days for a loss that compares the predictions within each day.

Plain numpy: no torch here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qframe.core.timeseries import TimeSeriesSampler

#: float32 network input -> the same, normalised and without NaN (the model's fitted input normalisation)
Normaliser = Callable[[np.ndarray], np.ndarray]


class RowSource:
    """Input from a float32 feature matrix: one row per sample, or with ``d_feat``, a (steps, d_feat) sequence.

    The sequence form is Qlib's Alpha360 layout: a row is ``d_feat`` groups of ``steps`` days each, oldest first.
    """

    def __init__(
        self, X: np.ndarray, y: np.ndarray | None, day: np.ndarray | None, d_feat: int | None, norm: Normaliser
    ) -> None:
        self.X, self.y, self.day, self.d_feat, self.norm = X, y, day, d_feat, norm

    def __len__(self) -> int:
        return len(self.X)

    def batch(self, rows: np.ndarray) -> np.ndarray:
        """The network input of ``rows``: (batch, features), or (batch, steps, d_feat) with ``d_feat``."""
        x = self.norm(self.X[rows])
        if self.d_feat is None:
            return x
        return x.reshape(len(rows), self.d_feat, -1).transpose(0, 2, 1)


class WindowSource:
    """Sequence input from the time-series sampler: the last days of all features of each row's instrument."""

    def __init__(
        self, sampler: TimeSeriesSampler, y: np.ndarray | None, day: np.ndarray | None, norm: Normaliser
    ) -> None:
        self.sampler, self.y, self.day, self.norm = sampler, y, day, norm

    def __len__(self) -> int:
        return len(self.sampler)

    def batch(self, rows: np.ndarray) -> np.ndarray:
        """The network input of ``rows``: (batch, window, features)."""
        # the sampler leaves missing days NaN, so they become 0 after normalisation, like missing features
        return self.norm(self.sampler.batch(rows))


InputSource = RowSource | WindowSource


def train_batches(y: np.ndarray, day: np.ndarray | None, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch's mini-batches: row numbers of the labelled rows (finite ``y``), in an order drawn from ``rng``.

    With ``day`` (each row's day code, rows sorted by day), every batch is made of whole days: days in random
    order, gathered until a batch has at least ``batch_size`` rows. Without, random rows, ``batch_size`` a batch,
    each batch sorted; a last batch of a single row joins the one before (BatchNorm cannot train on one row).
    Every labelled row is in exactly one batch.
    """
    labelled = np.flatnonzero(np.isfinite(y))
    if day is not None:
        days = day[labelled]
        starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
        groups = np.split(labelled, starts[1:])
        batches, current, size = [], [], 0
        for g in rng.permutation(len(groups)):
            current.append(groups[g])
            size += len(groups[g])
            if size >= batch_size:
                batches.append(np.concatenate(current))
                current, size = [], 0
        if current:
            batches.append(np.concatenate(current))
        return batches
    order = labelled[rng.permutation(len(labelled))]
    batches = [np.sort(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < 2:
        last = batches.pop()  # popped first: `batches[-2] = f(batches.pop())` would write to the wrong batch
        batches[-1] = np.sort(np.r_[batches[-1], last])
    return batches
