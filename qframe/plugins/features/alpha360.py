"""Qlib's Alpha360 feature set: the six raw daily series over the last 60 days, normalised by today.

As Qlib's ``Alpha360DL`` defines it: ``CLOSE{i} = Ref($close, i) / $close``, the same for
OPEN, HIGH, LOW and VWAP, and ``VOLUME{i} = Ref($volume, i) / ($volume + 1e-12)``, for
i = 59..0, in Qlib's column order (CLOSE59..CLOSE0, OPEN59..OPEN0, HIGH.., LOW.., VWAP..,
VOLUME59..VOLUME0). The columns form 6 groups of ``window`` days, oldest first, which is
what Qlib's GRU/ALSTM reshape into a (days x 6) sequence. ``Ref`` shifts along the
calendar, as qframe's Alpha158 does; rows outside an instrument's stored bars are NaN.
"""

from __future__ import annotations

import numpy as np

from qframe.core import ops
from qframe.core.data import MarketData
from qframe.core.errors import ConfigError
from qframe.core.features import FeatureResult, empty_float32

SERIES = ("CLOSE", "OPEN", "HIGH", "LOW", "VWAP", "VOLUME")
_EPS = np.float32(1e-12)  # Qlib's guard in the volume denominator
VERSION = 1  # bump when the numbers this module produces change (invalidates feature caches)


class Alpha360:
    """Qlib's Alpha360 (6 series x ``window`` days = 360 features by default).

    Args:
        window: days of history per series (Qlib: 60).
    """

    #: every feature looks at one instrument's own history only, so the handler may compute instrument blocks
    per_instrument = True

    def __init__(self, window: int = 60) -> None:
        self.window = int(window)
        if self.window < 1:
            raise ConfigError(f"alpha360: window must be >= 1 day, got {window}")

    @property
    def lookback(self) -> int:
        """Days of history each series looks back over."""
        return self.window

    def names(self) -> list[str]:
        """Feature names in Qlib's column order."""
        return [f"{s}{i}" for s in SERIES for i in range(self.window - 1, -1, -1)]

    def config(self) -> dict:
        """The parameters that define the output (for a cache key)."""
        return {"name": "alpha360", "version": VERSION, "window": self.window}

    def compute(self, market: MarketData) -> FeatureResult:
        """Every series the market's fields allow; a missing field drops its whole group, with the reason."""
        f = {
            k: market.fields[k].astype(np.float32)
            for k in ("open", "high", "low", "close", "volume", "vwap")
            if k in market.fields
        }
        dropped: dict[str, str] = {}
        active = []
        for s in SERIES:
            need = s.lower()
            if need in f:
                active.append(s)
            else:
                for i in range(self.window - 1, -1, -1):
                    dropped[f"{s}{i}"] = f"needs ${need}"
        names = [f"{s}{i}" for s in active for i in range(self.window - 1, -1, -1)]
        T, N = market.shape
        values = empty_float32((T, N, len(names)))
        span = ops.stored_span(*f.values())
        close = f["close"]
        with np.errstate(divide="ignore", invalid="ignore"):
            for g, s in enumerate(active):
                x = f[s.lower()]
                denom = x + _EPS if s == "VOLUME" else close
                for j, lag in enumerate(range(self.window - 1, -1, -1)):
                    values[:, :, g * self.window + j] = ops.ref(x, lag) / denom
        values[~span] = np.nan
        return FeatureResult(names, values, dropped, market.calendar, market.instruments)
