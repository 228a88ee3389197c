"""MLflow imported without the FastAPI gateway a qframe run never uses, and without the collector's passes.

``import mlflow`` (and so ``import mlflow.<anything>``) runs ``mlflow/__init__``, which imports ``mlflow.genai``;
its judges import ``mlflow.gateway.constants``, and so the ``mlflow.gateway`` package, whose ``__init__`` imports
``mlflow.gateway.utils`` and with it FastAPI, Starlette and their pydantic models (~0.1-0.25 s). Nothing of it
records a run. :func:`defer_packages` runs that ``__init__`` when one of the package's attributes is first read
instead of when it is imported: ``from mlflow.gateway import get_gateway_uri`` works as before (the ``__init__``
runs then), and a submodule (``mlflow.gateway.constants``) imports as usual, with only its own imports. The
``__init__`` only re-exports two names (no registration, no side effect), which is what makes deferring it safe;
that is checked for the MLflow versions in :data:`KNOWN_VERSIONS`, any other MLflow is imported as it is.
(``importlib.util.LazyLoader`` cannot do this: reading a package's ``__path__``, which importing any submodule
does, already runs its ``__init__``. ``mlflow.genai``'s own ``__init__`` cannot be deferred: its modules import
each other in cycles that only resolve in the order it imports them.)

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
#: the MLflow versions whose deferred ``__init__`` modules are known to only re-export names
KNOWN_VERSIONS = ("3.17.",)


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


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds the :data:`DEFERRED` packages as the other finders would, and wraps their loader."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name not in DEFERRED or not _known_version():
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return None
        spec.loader = _DeferredInit(spec.loader)
        return spec


def _known_version() -> bool:
    """Whether the MLflow being imported is a known one (its ``mlflow.version``, imported first by ``mlflow``)."""
    found = sys.modules.get("mlflow.version")
    return str(getattr(found, "VERSION", "")).startswith(KNOWN_VERSIONS)


_FINDER = _DeferringFinder()


def defer_packages() -> None:
    """Install the finder (once) that defers :data:`DEFERRED`'s ``__init__`` code; no effect once MLflow is
    imported."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


@contextmanager
def quiet_gc() -> Iterator[None]:
    """No cyclic collection while the block imports; what exists at its end is left out of later passes (it lives
    as long as the process). Nothing is changed where the collector is off already (a caller's choice)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def import_mlflow() -> ModuleType:
    """``mlflow``, imported the first time with :func:`defer_packages` and :func:`quiet_gc`."""
    if "mlflow" in sys.modules:
        return sys.modules["mlflow"]
    defer_packages()
    with quiet_gc():
        import mlflow

        return mlflow
