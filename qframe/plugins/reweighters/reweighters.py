"""The built-in reweighters. Each returns raw relative weights; qframe checks them and scales them to mean 1
(:func:`qframe.core.reweight.sample_weights`)."""

from __future__ import annotations

import math
import numbers

import numpy as np

from qframe.core.errors import ConfigError
from qframe.core.panel import Panel


class NoReweighting:
    """No weights: the fit is exactly the unweighted one (models are not even asked to take weights)."""

    def reweight(self, train: Panel, /) -> None:
        return None


class TimeDecay:
    """``0.5 ** (age / half_life_days)``, ``age`` a row's distance in trading days from the train segment's last
    day (its last date with rows): recent days count more, a row ``half_life_days`` older half as much."""

    def __init__(self, half_life_days: float = 250) -> None:
        value = half_life_days
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
            raise ConfigError(
                f"reweighter.half_life_days must be a number of trading days > 0, got {value!r}; "
                "e.g. reweighter.half_life_days=250 (about a year)"
            )
        self.half_life_days = float(value)

    def reweight(self, train: Panel, /) -> np.ndarray:
        if len(train) == 0:
            return np.empty(0)
        # day codes index the trading calendar, so their difference is the age in trading days
        age = (int(train.day.max()) - train.day.astype(np.int64)).astype(np.float64)
        return 0.5 ** (age / self.half_life_days)


class EqualInstrument:
    """``1 / n_i`` for each row of instrument ``i`` (``n_i`` its labelled train rows): every instrument weighs the
    same in total, so a long-listed name does not outweigh a recent listing."""

    def reweight(self, train: Panel, /) -> np.ndarray:
        labelled = np.isfinite(train.y)
        counts = np.bincount(train.inst[labelled], minlength=len(train.instruments)).astype(np.float64)
        n = counts[train.inst]
        # an unlabelled row plays no part in the fit: weight 0 rather than a division by a zero count
        return np.where(labelled & (n > 0), 1.0 / np.maximum(n, 1.0), 0.0)
