"""Built-in feature sets."""

from __future__ import annotations

from qframe.core.hookspecs import hookimpl
from qframe.core.lazy import lazy


@hookimpl
def register_feature_sets(register) -> None:
    register(
        "alpha158",
        lazy("qframe.plugins.features.alpha158:Alpha158"),
        "Qlib's Alpha158: 158 price/volume features (kbar, price, 29 rolling operators x 5 windows)",
    )
    register(
        "alpha360",
        lazy("qframe.plugins.features.alpha360:Alpha360"),
        "Qlib's Alpha360: close/open/high/low/vwap/volume over 60 days, over today's value",
    )
