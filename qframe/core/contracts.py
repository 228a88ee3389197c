"""What qframe expects of each kind of component, as typed protocols, and the check of an object against them.

Each protocol states how qframe calls the component: a parameter before ``/`` is passed by position, one after
``*`` by keyword. A component is made by ``factory(**params)`` (a class or a function; ``params`` are the config
section's keys other than ``name``). Optional capabilities are protocols of their own: qframe uses them when the
object has them (``hasattr``), and checks them only then.

:func:`check_registered` looks at what a plugin registers (a class's methods, a search space's entries) when the
registry is built; :func:`require` looks at a factory's product when it is made. Both report a broken contract as a
:class:`~qframe.core.errors.ConfigError` naming the component and what is missing, before the component is used (for
the dataset, model, strategy and recorders: before any data is read).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from qframe.core.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from qframe.core.data import MarketData
    from qframe.core.features import FeatureResult
    from qframe.core.markets import MarketRules
    from qframe.core.panel import Panel
    from qframe.core.workflow import RunResult

T = TypeVar("T", covariant=True)


class Factory(Protocol[T]):
    """What ``register`` takes for every kind but search spaces: a class or function called with the config's
    parameters as keyword arguments."""

    def __call__(self, **params: Any) -> T: ...


# ---------------------------------------------------------------------------------------------------------------------
# data


class Dataset(Protocol):
    """A market source, selected by ``dataset.name``."""

    def load(self, *, cache_dir: Path | None) -> MarketData:
        """The market: dense (T, N) arrays per field on a trading calendar. ``cache_dir`` is qframe's cache
        directory, free to use."""


class MarketRegion(Protocol):
    """Optional: the market the data comes from (``cn``, ``us``; None: unknown), so ``market=auto`` trades by its
    rules (:mod:`qframe.core.markets`); ``region_source`` says how it is known, for the run summary (``Qlib's
    provider_uri .../us_data``). Without ``region`` the dataset's market is unknown: the default rules apply."""

    region: str | None
    region_source: str


class FeatureSet(Protocol):
    """Features computed over the whole market, selected by ``handler.features.name``."""

    def config(self) -> dict[str, Any]:
        """Everything that changes the output: part of the feature-cache key."""

    def compute(self, market: MarketData, /) -> FeatureResult:
        """Names, float32 (T, N, F) values, dropped features with reasons."""


class FeatureSetHints(Protocol):
    """Optional: ``lookback`` (the longest window in days, default 0) lets qframe refuse data too short before any
    work; ``per_instrument = True`` says each instrument's features use its own history only, so qframe may compute
    them on blocks of instruments (less memory)."""

    lookback: int
    per_instrument: bool


class Processor(Protocol):
    """A step of ``handler.processors`` (every segment) or ``handler.learn_processors`` (train and valid)."""

    def fit(self, panel: Panel, /) -> None:
        """Learn parameters from the train segment; called only when ``stateful`` (see :class:`Stateful`)."""

    def transform(self, panel: Panel, /) -> Panel:
        """The processed segment (a new panel; the given one may be a view of the feature cache)."""


class Stateful(Protocol):
    """Optional: ``stateful = False`` says the processor learns nothing, so ``fit`` is never called and may be
    absent. Without the attribute a processor is stateful."""

    stateful: bool


# ---------------------------------------------------------------------------------------------------------------------
# model


class Model(Protocol):
    """A model trained on float32 feature matrices (NaN allowed) and a float label, selected by ``model.name``.

    ``fit`` (or ``fit_panel``) may also take a keyword ``progress`` (a :class:`qframe.core.progress.Progress`): it
    is passed when the method's signature names it. A model that honours sample weights names a keyword
    ``sample_weight`` in it: with a reweighter other than ``none`` it gets one float64 weight per train row (finite,
    >= 0, mean 1 over the labelled rows; the valid rows are unweighted); a model without it and such a reweighter
    is refused before any data is read.
    """

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray, /) -> None:
        """Train; ``X_valid``/``y_valid`` are for early stopping and may be empty."""

    def predict(self, X: np.ndarray, /) -> np.ndarray:
        """One score per row."""

    def save(self, directory: Path, /) -> list[Path]:
        """Write the trained model in a portable, non-pickle format; return the files written."""

    def info(self) -> dict[str, Any]:
        """Facts about the fit worth recording (e.g. best iteration)."""


class PanelModel(Protocol):
    """Optional, instead of ``fit``/``predict``: for models that need dates and instruments (sequences over past
    days, a daily-IC loss). ``checkpoints`` is a directory of the run's own, free to use."""

    def fit_panel(self, train: Panel, valid: Panel, checkpoints: Path, /) -> None: ...

    def predict_panel(self, test: Panel, /) -> np.ndarray: ...


class ConstantHint(Protocol):
    """Optional: why this model may predict one constant (e.g. "too much L1/L2 for this many rows"), for the error
    that refuses such a run."""

    def constant_hint(self) -> str: ...


class Reweighter(Protocol):
    """Weights of the train rows for the fit (Qlib's ``Reweighter``), selected by ``reweighter.name``."""

    def reweight(self, train: Panel, /) -> np.ndarray | None:
        """One finite weight >= 0 per row of ``train`` (the processed train segment of the fit), in any scale
        (qframe normalises them to mean 1 over the labelled rows); None: unweighted."""


# ---------------------------------------------------------------------------------------------------------------------
# backtest and recording


class Strategy(Protocol):
    """Turns scores into a daily backtest report, selected by ``strategy.name``."""

    def backtest(
        self, scores: pd.Series, market: MarketData, /, *, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        """The daily report over [start, end], indexed by date, with at least ``return``, ``cost`` and ``bench``
        columns (fractions of the account). ``scores`` is indexed by (datetime, instrument)."""


class MarketCheck(Protocol):
    """Optional: the strategy's own check of the market it will trade, called before any feature is computed.
    Returns notes for the run; raises :class:`~qframe.core.errors.ConfigError` to refuse it."""

    def check_market(self, market: MarketData, start: pd.Timestamp, end: pd.Timestamp, /) -> list[str]: ...


class MarketRulesHook(Protocol):
    """Optional: trade by the run's market rules (price limits, trade unit) where the strategy's own settings do not
    say otherwise; returns the rules as applied. Called once, before :class:`MarketCheck`. A strategy without it
    applies its own trading rules; the market then sets only the annualisation."""

    def use_market_rules(self, rules: MarketRules, /) -> MarketRules: ...


class Recorder(Protocol):
    """Called once at the end of each successful run (after its MLflow run is closed), in the ``recorders`` order."""

    def __call__(self, result: RunResult, cfg: dict[str, Any], /) -> None: ...


# ---------------------------------------------------------------------------------------------------------------------
# tuning

#: a named search space: override key -> sweep expression in Hydra's extended grammar, as in ``hydra.sweeper.params``
#: (``{"model.alpha": "tag(log, interval(0.001, 10))"}``); a plugin may register a zero-argument callable returning one
SearchSpace = Mapping[str, str]


class SearchAlgorithm(Protocol):
    """hyperopt's suggest protocol (``hyperopt.tpe.suggest`` is one): the documents of trials ``new_ids``."""

    def __call__(self, new_ids: list[int], domain: Any, trials: Any, seed: int, /) -> list[dict[str, Any]]: ...


class TunerBackend(Protocol):
    """A factory of search algorithms, selected by ``hydra.sweeper.algo``.

    Called once per sweep with keyword arguments only, each passed when the factory takes it (a parameter of that
    name, or ``**settings``): ``n_startup_trials`` (``hydra.sweeper.n_startup_trials``, an int or None), the random
    trials before the algorithm starts modelling.
    """

    def __call__(self, **settings: Any) -> SearchAlgorithm: ...


# ---------------------------------------------------------------------------------------------------------------------
# the check


@dataclass(frozen=True)
class Contract:
    """The protocol a kind's objects follow, its optional capabilities, and the required methods another member
    makes unnecessary (``fit`` of a model with ``fit_panel``)."""

    name: str
    protocol: type
    capabilities: tuple[type, ...] = ()
    #: required method -> (when it is not required, in words; the test on the object)
    waived: Mapping[str, tuple[str, Callable[[Any], bool]]] = field(default_factory=dict)
    #: what a callable product is called in messages (``recorder(result, cfg)``)
    called_as: str = ""


def _has(name: str) -> Callable[[Any], bool]:
    return lambda obj: hasattr(obj, name)


def _stateless(obj: Any) -> bool:
    return getattr(obj, "stateful", True) is False


#: kind -> contract of what its factories make (search spaces are registered as they are: see check_registered)
CONTRACTS: dict[str, Contract] = {
    "dataset": Contract("Dataset", Dataset, (MarketRegion,)),
    "feature_set": Contract("FeatureSet", FeatureSet, (FeatureSetHints,)),
    "processor": Contract("Processor", Processor, (Stateful,), {"fit": ("needed unless stateful = False", _stateless)}),
    "model": Contract(
        "Model",
        Model,
        (PanelModel, ConstantHint),
        {"fit": ("or fit_panel", _has("fit_panel")), "predict": ("or predict_panel", _has("predict_panel"))},
    ),
    "reweighter": Contract("Reweighter", Reweighter),
    "strategy": Contract("Strategy", Strategy, (MarketCheck, MarketRulesHook)),
    "recorder": Contract("Recorder", Recorder, called_as="recorder"),
    # a backend is a factory like the others; its product is the search algorithm
    "tuner_backend": Contract("TunerBackend", SearchAlgorithm, called_as="algorithm"),
}


def _methods(protocol: type) -> dict[str, Callable[..., Any]]:
    return {
        name: value
        for name, value in vars(protocol).items()
        if inspect.isfunction(value) and (name == "__call__" or not name.startswith("_"))
    }


def _call_form(method: Callable[..., Any]) -> tuple[list[str], list[str]]:
    """(positional, keyword) argument names qframe passes when it calls a protocol method (``self`` left out)."""
    params = list(inspect.signature(method).parameters.values())[1:]
    required = [p for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return [p.name for p in required if p.kind is not p.KEYWORD_ONLY], [
        p.name for p in required if p.kind is p.KEYWORD_ONLY
    ]


def _class_member(cls: type, name: str) -> tuple[bool, Any]:
    """(found, raw member) of ``cls`` from its own and its bases' namespaces (what its instances get as methods)."""
    for klass in cls.__mro__:
        if klass is not object and name in vars(klass):
            return True, vars(klass)[name]
    return False, None


def _signature(obj: Any, name: str, member: Any) -> inspect.Signature | None:
    """The signature ``obj.name`` is called with: for a class, its method's signature without ``self``."""
    try:
        if not inspect.isclass(obj):
            return inspect.signature(obj if name == "__call__" else member)
        if isinstance(member, staticmethod):
            return inspect.signature(member.__func__)
        raw = member.__func__ if isinstance(member, classmethod) else member
        if not inspect.isfunction(raw):
            return None
        signature = inspect.signature(raw)
        return signature.replace(parameters=list(signature.parameters.values())[1:])
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return None


def _method_problem(obj: Any, name: str, spec: Callable[..., Any], called_as: str) -> str | None:
    """What is wrong with ``obj``'s method ``name`` against the protocol's ``spec``, or None (absent is not here)."""
    member = _class_member(obj, name)[1] if inspect.isclass(obj) else getattr(obj, name)
    if not inspect.isclass(obj) and not callable(member):
        return f"{name} is a {type(member).__name__}, not a method"
    signature = _signature(obj, name, member)
    if signature is None:
        return None
    positional, keyword = _call_form(spec)
    try:
        signature.bind(*positional, **dict.fromkeys(keyword))
    except TypeError:
        shown = name if name != "__call__" else called_as
        call = ", ".join([*positional, *(f"{k}=..." for k in keyword)])
        return f"qframe calls {shown}({call}), which its signature {signature} does not accept"
    return None


def _present(obj: Any, name: str) -> bool:
    if inspect.isclass(obj):
        return _class_member(obj, name)[0]
    return callable(obj) if name == "__call__" else hasattr(obj, name)


def contract_problems(kind: str, obj: Any) -> list[str]:
    """What ``obj`` (a product of ``kind``'s factory, or a class whose instances would be) lacks; empty if nothing.

    A class is checked for the methods its instances get from it; attributes set in ``__init__`` are checked on
    the instance only. A kind without a contract (a task generator: a plain callable) has nothing to check.
    """
    if kind not in CONTRACTS:
        return []
    contract = CONTRACTS[kind]
    if inspect.isclass(obj) and _class_member(obj, "__getattr__")[0]:
        return []  # members made up on access: only the instance can tell
    problems = []
    for name, spec in _methods(contract.protocol).items():
        if not _present(obj, name):
            waiver = contract.waived.get(name)
            if waiver is not None and waiver[1](obj):
                continue
            if name == "__call__":
                problems.append(f"not callable as {contract.called_as}({', '.join(_call_form(spec)[0])})")
            else:
                problems.append(f"no method {name}" + (f" ({waiver[0]})" if waiver else ""))
            continue
        problem = _method_problem(obj, name, spec, contract.called_as)
        if problem:
            problems.append(problem)
    for capability in contract.capabilities:
        for name, spec in _methods(capability).items():
            if _present(obj, name):
                problem = _method_problem(obj, name, spec, contract.called_as)
                if problem:
                    problems.append(problem)
    return problems


def space_problems(space: Any) -> list[str]:
    """What keeps ``space`` from being a :data:`SearchSpace`; empty if nothing."""
    if not isinstance(space, Mapping):
        return [f"it is a {type(space).__name__}, not a mapping of override key to sweep expression"]
    return [
        f"entry {key!r}: {value!r} is not a sweep expression string (e.g. 'interval(0.1, 1)')"
        for key, value in space.items()
        if not isinstance(key, str) or not isinstance(value, str)
    ][:1]


def breach(owner: str, kind: str, problems: list[str]) -> ConfigError:
    """The one-line error for a component ``owner`` (``plugin 'acme' model 'foo'``) that breaks its contract."""
    name = CONTRACTS[kind].name if kind in CONTRACTS else "SearchSpace"
    return ConfigError(
        f"{owner} does not follow the {name} contract: {'; '.join(problems)}; see qframe.core.contracts.{name} and "
        "docs/plugins.md"
    )


def check_registered(kind: str, obj: Any) -> list[str]:
    """What is wrong with what a plugin registered for ``kind``, as far as can be told before it is used."""
    if kind == "search_space":
        return [] if callable(obj) and not isinstance(obj, Mapping) else space_problems(obj)
    if not callable(obj):
        return [f"it is a {type(obj).__name__}: register a class or a factory function (called with the parameters)"]
    return contract_problems(kind, obj) if inspect.isclass(obj) else []


def require(kind: str, product: Any, owner: str) -> Any:
    """``product`` (made by a factory of ``kind``) if it follows its contract, else the one-line ConfigError."""
    problems = contract_problems(kind, product)
    if problems:
        raise breach(owner, kind, problems)
    return product
