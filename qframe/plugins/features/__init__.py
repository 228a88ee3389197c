"""Built-in feature sets."""

from __future__ import annotations

from qframe.core.hookspecs import hookimpl
from qframe.plugins.features.alpha158 import Alpha158
from qframe.plugins.features.alpha360 import Alpha360


@hookimpl
def register_feature_sets(register) -> None:
    register(
        "alpha158",
        Alpha158,
        "Qlib's Alpha158: 158 price/volume features (kbar, price, 29 rolling operators x 5 windows)",
    )
    register("alpha360", Alpha360, "Qlib's Alpha360: close/open/high/low/vwap/volume over 60 days, over today's value")
