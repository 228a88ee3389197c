"""Built-in models: LightGBM (Qlib's benchmark defaults) and ridge regression."""

from __future__ import annotations

from qframe.core.hookspecs import hookimpl


def _lightgbm(**params):
    # imported on use: lightgbm (and the scikit-learn it pulls in) costs ~1.5 s to import
    from qframe.plugins.models.lightgbm import LightGBMModel

    return LightGBMModel(**params)


def _linear(**params):
    from qframe.plugins.models.linear import LinearModel

    return LinearModel(**params)


@hookimpl
def register_models(register):
    register("lightgbm", _lightgbm, "LightGBM gradient-boosted trees, early-stopped on the valid segment")
    register("linear", _linear, "Ridge regression on standardised features (closed form, fast)")
