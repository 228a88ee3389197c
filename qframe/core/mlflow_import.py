"""MLflow imported without what a qframe run never uses (its FastAPI gateway, alembic), and without the collector.

``import mlflow`` (and so ``import mlflow.<anything>``) runs ``mlflow/__init__``, which imports ``mlflow.genai``;
its judges import ``mlflow.gateway.constants``, and so the ``mlflow.gateway`` package, whose ``__init__`` imports
``mlflow.gateway.utils`` and with it FastAPI, Starlette and their pydantic models (~0.1-0.25 s). Nothing of it
records a run. :func:`defer_packages` runs that ``__init__`` when one of the package's attributes is first read
instead of when it is imported: ``from mlflow.gateway import get_gateway_uri`` works as before (the ``__init__``
runs then), and a submodule (``mlflow.gateway.constants``) imports as usual, with only its own imports. The
``__init__`` only re-exports two names (no registration, no side effect), which is what makes deferring it safe.
(``importlib.util.LazyLoader`` cannot do this: reading a package's ``__path__``, which importing any submodule
does, already runs its ``__init__``. ``mlflow.genai``'s and alembic's own ``__init__`` cannot be deferred: their
modules import each other in cycles that only resolve in the order those ``__init__`` modules import them.)

MLflow's SQL store (``mlflow.store.db.utils``) imports alembic's ``MigrationContext`` and ``ScriptDirectory`` at
the top, for its schema check and its migrations; the alembic package imports its migration runtime and every
database's DDL implementation (~0.1 s). While that one module runs, the two modules it imports them from are stand-ins
(:data:`STAND_INS`) whose names import the real alembic when first used: a store whose schema check
:func:`qframe.core.sqlite_store.trust_known_head` answers never imports alembic; one that MLflow checks or migrates
imports it then, as before. Both are done only for the MLflow versions in :data:`KNOWN_VERSIONS`; any other MLflow
is imported as it is.

:func:`quiet_gc` is the other half: importing MLflow and its SQL store leaves ~400 000 objects tracked by the
cyclic collector, nearly all of them living as long as the process (a collection right after finds ~1 500
unreachable); the collector's full passes over the growing heap while they are created are ~1/4 of the import
(0.3-0.4 s of ~1.4 s on the development machine). The collector waits until the imports are done and then leaves
what they made out of its later passes (``gc.freeze``): the few cycles that were garbage then stay in memory.
"""

from __future__ import annotations

import gc
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

#: packages whose ``__init__`` runs on first attribute use (a pure re-export in the known versions)
DEFERRED = ("mlflow.gateway",)
#: module -> {module it imports names from: those names}: while it runs, those modules are stand-ins holding
#: stand-ins for the names, which import the real module when first used. MLflow's SQL store imports alembic's
#: ``MigrationContext`` and ``ScriptDirectory`` at the top, for its schema check and its migrations (which
#: :func:`qframe.core.sqlite_store.trust_known_head` spares a current sqlite store); alembic's package imports its
#: migration runtime and every database's DDL implementation (~0.1 s).
STAND_INS = {
    "mlflow.store.db.utils": {"alembic.migration": ("MigrationContext",), "alembic.script": ("ScriptDirectory",)},
}
#: the MLflow versions whose deferred modules are known to be only re-exports, and whose SQL store uses those names
#: only by attribute (``MigrationContext.configure(...)``, ``ScriptDirectory.from_config(...)``)
KNOWN_VERSIONS = ("3.17.",)


class _StandIn:
    """Stands for ``module.name`` until used: reading an attribute or calling imports the real module and forwards
    to the real object (``MigrationContext.configure(...)`` works; ``isinstance`` against a stand-in does not)."""

    __slots__ = ("_module", "_name")

    def __init__(self, module: str, name: str) -> None:
        self._module, self._name = module, name

    def _target(self) -> Any:
        target = getattr(importlib.import_module(self._module), self._name)
        if isinstance(target, _StandIn):  # used while the importing module still runs: the real one is not there yet
            raise ImportError(f"{self._module}.{self._name} is used before {self._module} can be imported")
        return target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self._module}.{self._name}, imported when used>"


class _DeferredInit(importlib.abc.Loader):
    """The package's own loader, with ``exec_module`` postponed until an attribute the module lacks is read."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        loader, lock = self.loader, threading.RLock()

        def __getattr__(name: str) -> Any:  # PEP 562: called only for attributes the module does not have
            with lock:
                if module.__dict__.get("__getattr__") is __getattr__:
                    del module.__dict__["__getattr__"]
                    loader.exec_module(module)  # the package's own __init__, now
            return getattr(module, name)  # through its own __getattr__, if it defines one

        module.__getattr__ = __getattr__  # type: ignore[method-assign]

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader, ...: the real loader's
        return getattr(self.loader, name)


class _WithStandIns(_DeferredInit):
    """The module's own loader, running its code while :data:`STAND_INS` stand in for the modules it imports from
    (only where none of them is imported yet); afterwards those names import as usual."""

    def exec_module(self, module: ModuleType) -> None:
        wanted = STAND_INS[module.__name__]
        if any(name.split(".", 1)[0] in sys.modules for name in wanted):
            self.loader.exec_module(module)
            return
        stand_ins = {name: ModuleType(name, "stands in while another module imports from it") for name in wanted}
        for name, stand_in in stand_ins.items():
            for attribute in wanted[name]:
                setattr(stand_in, attribute, _StandIn(name, attribute))
        sys.modules.update(stand_ins)
        try:
            self.loader.exec_module(module)
        finally:
            for name, stand_in in stand_ins.items():
                if sys.modules.get(name) is stand_in:
                    del sys.modules[name]


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds the :data:`DEFERRED` and :data:`STAND_INS` modules as the other finders would, and wraps their
    loader, while a known MLflow is imported."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if (name not in DEFERRED and name not in STAND_INS) or not _known_version():
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None:
            return None
        if name in STAND_INS:
            spec.loader = _WithStandIns(spec.loader)
        elif spec.submodule_search_locations is not None:
            spec.loader = _DeferredInit(spec.loader)
        return spec


def _known_version() -> bool:
    """Whether the MLflow being imported is a known one (its ``mlflow.version``, imported first by ``mlflow``)."""
    found = sys.modules.get("mlflow.version")
    return str(getattr(found, "VERSION", "")).startswith(KNOWN_VERSIONS)


_FINDER = _DeferringFinder()


def defer_packages() -> None:
    """Install the finder (once) that defers :data:`DEFERRED`'s code; no effect on what is imported already."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


@contextmanager
def quiet_gc() -> Iterator[None]:
    """No cyclic collection while the block imports; what exists at its end is left out of later passes (it lives
    as long as the process). Only the first block in a process does this (the one that imports): a long-lived
    worker that records many runs goes on collecting what each run leaves. Nothing is changed where the collector
    is off already (a caller's choice)."""
    global _QUIETED
    if _QUIETED or not gc.isenabled():
        yield
        return
    _QUIETED = True
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


_QUIETED = False


def import_mlflow() -> ModuleType:
    """``mlflow``, imported the first time with :func:`defer_packages` and :func:`quiet_gc`."""
    if "mlflow" in sys.modules:
        return sys.modules["mlflow"]
    defer_packages()
    with quiet_gc():
        import mlflow

        return mlflow
