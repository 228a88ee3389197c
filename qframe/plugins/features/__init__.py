"""Built-in feature sets."""

from __future__ import annotations

from qframe.core.hookspecs import hookimpl
from qframe.plugins.features.alpha158 import Alpha158


@hookimpl
def register_feature_sets(register) -> None:
    register(
        "alpha158",
        Alpha158,
        "Qlib's Alpha158: 158 price/volume features (kbar, price, 29 rolling operators x 5 windows)",
    )
