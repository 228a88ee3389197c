"""qframe's plugin hooks (pluggy, project name ``qframe``).

Every hook is of the "register callback" kind used by llm and datasette: it receives a ``register`` function and
calls it once per item it contributes::

    @hookimpl
    def register_models(register):
        register("ridge", RidgeModel, "Closed-form ridge regression")

Built-in components go through exactly these hooks (``qframe.plugins``), so a third-party plugin is a peer of the
built-ins. What each kind of object must do is in :mod:`qframe.core.contracts`.

Each hookspec's docstring ends with when it is called (:data:`CALLED`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

import pluggy

from qframe.core.contracts import (
    Dataset,
    Factory,
    FeatureSet,
    Model,
    Processor,
    Recorder,
    Reweighter,
    SearchSpace,
    Strategy,
    TunerBackend,
)

if TYPE_CHECKING:  # windows imports pandas: registering the plugins must not
    from qframe.core.windows import TaskGenerator

hookspec = pluggy.HookspecMarker("qframe")
hookimpl = pluggy.HookimplMarker("qframe")

T = TypeVar("T", contravariant=True)


class Register(Protocol[T]):
    """The callback each hook receives: ``register(name, obj, description="")``, once per item.

    ``name``: the name configs use (``model.name: ridge``), a non-empty string, unique per kind across all plugins
    (a second plugin registering it is an error naming both). ``obj``: what the hook's kind registers (a factory, or
    a search space). ``description``: one line for ``qframe plugins``.
    """

    def __call__(self, name: str, obj: T, description: str = "") -> None: ...


#: kind of item -> the hook that registers it, in definition order (filled by :func:`_registers`)
KINDS: dict[str, str] = {}

#: the call semantics every hook shares, appended to each hookspec's docstring
CALLED = """
    Called once per plugin that implements it, when a process first builds the registry (every run, every sweep,
    ``qframe plugins``; again only after ``reset_registry()``), plugins in registration order, built-ins first. The
    implementation should only call ``register``: no data, no heavy imports (a factory imports what it needs when it
    is called). An exception skips the plugin (third-party) with one warning line.
"""

_F = TypeVar("_F", bound=Callable[..., None])


def _registers(kind: str) -> Callable[[_F], _F]:
    """Mark a function as the qframe hookspec that registers items of ``kind``."""

    def mark(function: _F) -> _F:
        KINDS[kind] = function.__name__
        function.__doc__ = (function.__doc__ or "").rstrip() + "\n" + CALLED
        return hookspec(function)

    return mark


@_registers("dataset")
def register_datasets(register: Register[Factory[Dataset]]) -> None:
    """Register dataset loaders.

    :param register: call ``register(name, factory, description)`` per dataset; ``factory(**params)`` makes a
        :class:`~qframe.core.contracts.Dataset`.

    Selected by ``dataset.name``; ``params`` are the other ``dataset.*`` keys. The factory is called once per run,
    before any data is read.
    """


@_registers("feature_set")
def register_feature_sets(register: Register[Factory[FeatureSet]]) -> None:
    """Register feature sets.

    :param register: call ``register(name, factory, description)`` per feature set; ``factory(**params)`` makes a
        :class:`~qframe.core.contracts.FeatureSet`.

    Selected by ``handler.features.name``; ``params`` are the other ``handler.features.*`` keys.
    """


@_registers("processor")
def register_processors(register: Register[Factory[Processor]]) -> None:
    """Register data processors.

    :param register: call ``register(name, factory, description)`` per processor; ``factory(**params)`` makes a
        :class:`~qframe.core.contracts.Processor`.

    Named in the ``handler.processors`` (every segment) and ``handler.learn_processors`` (train and valid) lists as
    ``name`` or ``{name: ..., <params>}``; one object per list entry and run, fitted on the train segment.
    """


@_registers("model")
def register_models(register: Register[Factory[Model]]) -> None:
    """Register models.

    :param register: call ``register(name, factory, description)`` per model; ``factory(**params)`` makes a
        :class:`~qframe.core.contracts.Model` (optionally with the ``PanelModel`` and ``ConstantHint``
        capabilities).

    Selected by ``model.name``; ``params`` are the other ``model.*`` keys. One model per run: fitted on train
    (valid for early stopping), then it predicts the test segment.
    """


@_registers("reweighter")
def register_reweighters(register: Register[Factory[Reweighter]]) -> None:
    """Register sample reweighters.

    :param register: call ``register(name, factory, description)`` per reweighter; ``factory(**params)`` makes a
        :class:`~qframe.core.contracts.Reweighter`.

    Selected by ``reweighter.name``; ``params`` are the other ``reweighter.*`` keys. Made before any data is read
    (a model that takes no ``sample_weight`` is refused then, unless the reweighter is ``none``); its ``reweight``
    is called once per fit, on the processed train segment, and qframe checks and normalises what it returns.
    """


@_registers("strategy")
def register_strategies(register: Register[Factory[Strategy]]) -> None:
    """Register strategies.

    :param register: call ``register(name, factory, description)`` per strategy; ``factory(**params)`` makes a
        :class:`~qframe.core.contracts.Strategy` (optionally with ``MarketCheck``).

    Selected by ``strategy.name``; its ``backtest`` runs once per run on the test segment's scores.
    """


@_registers("recorder")
def register_recorders(register: Register[Factory[Recorder]]) -> None:
    """Register recorders.

    :param register: call ``register(name, factory, description)`` per recorder; ``factory(**params)`` makes a
        :class:`~qframe.core.contracts.Recorder`, a callable ``recorder(result, cfg)``.

    Enabled by the top-level ``recorders`` list (``recorders=[name]`` or ``[{name: ..., <params>}]``): made before
    the run starts, called once after each successful run with its
    :class:`~qframe.core.workflow.RunResult` and the resolved config dict.
    """


@_registers("task_generator")
def register_task_generators(register: Register[TaskGenerator]) -> None:
    """Register task generators: the task list of a ``trainer=rolling`` study.

    :param register: call ``register(name, generator, description)`` per generator; ``generator`` is a
        :class:`~qframe.core.windows.TaskGenerator`, ``generator(calendar, oos, horizon, **settings) -> windows``:
        the data's trading calendar, the out-of-sample span's calendar positions ``(lo, hi)``, the label horizon and
        the ``trainer`` section's other keys (``step``, ``train_days``, your own), returning
        :class:`~qframe.core.windows.Window` objects whose test slices tile the span.

    Selected by ``trainer.generator`` (the built-in ``rolling``: sliding or expanding walk-forward windows). Called
    once per study, before any work; qframe refuses windows whose test slices overlap or leave the span, and fit
    spans that end less than the label horizon before their test slice.
    """


@_registers("search_space")
def register_search_spaces(register: Register[SearchSpace | Callable[[], SearchSpace]]) -> None:
    """Register named hyperparameter search spaces.

    :param register: call ``register(name, space, description)`` per space; ``space`` is a
        :data:`~qframe.core.contracts.SearchSpace`, ``{override key: sweep expression}`` in Hydra's extended
        override grammar exactly as in ``hydra.sweeper.params``, e.g.
        ``{"model.alpha": "tag(log, interval(0.001, 10))", "strategy.topk": "choice(20, 30, 50)"}``, or a
        zero-argument callable returning one (called when a sweep names it).

    Named by ``hydra.sweeper.spaces``; merged before ``hydra.sweeper.params``.
    """


@_registers("tuner_backend")
def register_tuner_backends(register: Register[TunerBackend]) -> None:
    """Register tuner backends (search algorithms).

    :param register: call ``register(name, backend, description)`` per backend; ``backend`` is a
        :class:`~qframe.core.contracts.TunerBackend`, called with keyword arguments (``n_startup_trials``) and
        returning a :class:`~qframe.core.contracts.SearchAlgorithm` (hyperopt's suggest protocol,
        ``algo(new_ids, domain, trials, seed) -> list[dict]``; ``hyperopt.tpe.suggest`` is one).

    Selected by ``hydra.sweeper.algo``; the backend is called once per sweep. Import the search library inside it,
    not at module level.
    """


def hookspec_names() -> list[str]:
    """The names of every qframe hook, in definition order."""
    return list(KINDS.values())
