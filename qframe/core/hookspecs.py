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
    """Register dataset loaders: ``factory(**params) -> Dataset`` with ``load(cache_dir=None) -> MarketData``.

    Selected by ``dataset.name``; ``params`` are the other ``dataset.*`` keys.
    """


@hookspec
def register_feature_sets(register: Register) -> None:
    """Register feature sets: ``factory(**params) -> FeatureSet``.

    A FeatureSet has ``config() -> dict`` (part of the feature-cache key) and ``compute(market) -> FeatureResult``.
    Selected by ``handler.features.name``.
    """


@hookspec
def register_processors(register: Register) -> None:
    """Register data processors: ``factory(**params) -> Processor`` with ``fit(panel)`` and ``transform(panel)``.

    Named in the ``handler.processors`` / ``handler.learn_processors`` lists as ``{name: ..., <params>}``.
    """


@hookspec
def register_models(register: Register) -> None:
    """Register models: ``factory(**params) -> Model`` (:class:`qframe.core.model.Model`).

    ``fit(X, y, X_valid, y_valid)``, ``predict(X) -> scores``, ``save(directory) -> files``, ``info() -> dict``.
    Selected by ``model.name``.
    """


@hookspec
def register_strategies(register: Register) -> None:
    """Register strategies: ``factory(**params) -> Strategy``.

    ``backtest(scores, market, start=, end=) -> DataFrame`` of daily ``return``, ``cost``, ``bench`` (and
    ``turnover``) indexed by date. Selected by ``strategy.name``.
    """


@hookspec
def register_recorders(register: Register) -> None:
    """Register recorders: ``factory(**params) -> recorder``, a callable ``recorder(result, cfg)``.

    Called once at the end of each successful run with the :class:`qframe.core.workflow.RunResult` and the resolved
    config dict. Enabled by the top-level ``recorders`` list: ``recorders=[name]`` or ``[{name: ..., <params>}]``.
    """


@hookspec
def register_search_spaces(register: Register) -> None:
    """Register named hyperparameter search spaces: ``obj`` is a dict ``{override key: sweep expression}``.

    Expressions use Hydra's extended override grammar, exactly as in ``hydra.sweeper.params``, e.g.
    ``{"model.alpha": "tag(log, interval(0.001, 10))", "strategy.topk": "choice(20, 30, 50)"}``. ``obj`` may also be
    a zero-argument callable returning such a dict.
    """


@hookspec
def register_tuner_backends(register: Register) -> None:
    """Register tuner backends (search algorithms): ``factory(**params) -> algo``.

    ``algo`` follows hyperopt's ``suggest`` protocol, ``algo(new_ids, domain, trials, seed) -> list[dict]``
    (``hyperopt.tpe.suggest`` is one). Import heavy libraries inside the factory, not at module level.
    Selected by ``hydra.sweeper.algo``.
    """


def hookspec_names() -> list[str]:
    """The names of every qframe hook, in definition order."""
    return [name for name, obj in globals().items() if callable(obj) and hasattr(obj, "qframe_spec")]
