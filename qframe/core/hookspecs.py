"""qframe's plugin hooks (pluggy, project name ``qframe``).

Every hook is of the "register callback" kind used by llm and datasette: it
receives a ``register`` function and calls it once per item it contributes::

    @hookimpl
    def register_models(register):
        register("ridge", RidgeModel, "Closed-form ridge regression")

``register(name, obj, description="")`` records the item with the plugin that
registered it. Built-in components go through exactly these hooks
(``qframe.plugins``), so a third-party plugin is a peer of the built-ins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("qframe")
hookimpl = pluggy.HookimplMarker("qframe")

Register = Callable[..., Any]


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset loaders: ``factory(**cfg) -> Dataset`` with ``load() -> MarketData``."""


@hookspec
def register_feature_sets(register: Register) -> None:
    """Register feature sets: ``factory(**cfg) -> FeatureSet`` computing (T, N) arrays from a MarketData."""


@hookspec
def register_processors(register: Register) -> None:
    """Register data processors: ``factory(**cfg) -> Processor`` with ``fit`` / ``transform``."""


@hookspec
def register_models(register: Register) -> None:
    """Register models: ``factory(**cfg) -> Model`` with ``fit``, ``predict``, ``save``."""


@hookspec
def register_strategies(register: Register) -> None:
    """Register strategies: ``factory(**cfg) -> Strategy`` with ``backtest(scores, market)``."""


@hookspec
def register_recorders(register: Register) -> None:
    """Register recorders: ``factory(**cfg) -> Recorder`` called with each finished run's results."""


@hookspec
def register_search_spaces(register: Register) -> None:
    """Register named hyperparameter search spaces for the sweeper."""


@hookspec
def register_tuner_backends(register: Register) -> None:
    """Register tuner backends (search algorithms) for the sweeper."""
