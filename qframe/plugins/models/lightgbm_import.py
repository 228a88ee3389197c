"""LightGBM imported without its scikit-learn estimators: ~0.7 s less for every process that fits or loads a booster.

``import lightgbm`` imports ``lightgbm.sklearn`` (the ``LGBMRegressor`` family), whose ``lightgbm.compat`` imports
scikit-learn whenever it is installed (MLflow installs it), and scikit-learn imports ``scipy.stats``: ~0.7 s on an
idle machine, most of lightgbm's import time. qframe uses only LightGBM's core API (``Dataset``, ``train``,
``Booster``), which never touches scikit-learn. lightgbm 4.x has no switch for this; its ``compat`` module treats
scikit-learn as optional (``try: from sklearn ... except ImportError``: placeholders instead). So while this thread
imports lightgbm, a finder answers ``ModuleNotFoundError`` for ``sklearn`` (other threads import it as usual).

The price: in a process where this ran first, lightgbm's scikit-learn estimators are its placeholders
(``LGBMRegressor()`` raises "scikit-learn is required for lightgbm.sklearn"). Code that wants them imports
``lightgbm`` itself before qframe's model does (a plugin module's top-level ``import lightgbm``, run when the plugin
is discovered): where ``lightgbm`` or ``sklearn`` is imported already, or the lightgbm is not a 4.x, this is a
plain ``import lightgbm``.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType

#: the lightgbm major versions whose ``compat`` module is known to fall back when scikit-learn is missing
_KNOWN_MAJOR = "4."


class _NoSklearnHere(importlib.abc.MetaPathFinder):
    """``import sklearn`` (and its submodules) fails in one thread, as if scikit-learn were not installed."""

    def __init__(self, thread: int) -> None:
        self.thread = thread

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if threading.get_ident() == self.thread and name.split(".", 1)[0] == "sklearn":
            raise ModuleNotFoundError(f"No module named {name!r} (qframe imports lightgbm without it)", name=name)
        return None


def _shortcut_applies() -> bool:
    if "lightgbm" in sys.modules or "sklearn" in sys.modules:
        return False
    try:
        return version("lightgbm").startswith(_KNOWN_MAJOR)
    except PackageNotFoundError:
        return False  # the plain import raises the error a user should see


def import_lightgbm() -> ModuleType:
    """The ``lightgbm`` module, imported (the first time) without scikit-learn when that is safe; see the module doc."""
    if not _shortcut_applies():
        import lightgbm

        return lightgbm
    finder = _NoSklearnHere(threading.get_ident())
    sys.meta_path.insert(0, finder)
    try:
        import lightgbm
    except ImportError:
        # a lightgbm that needs scikit-learn after all: drop what was half imported, import it the plain way
        for name in [m for m in sys.modules if m == "lightgbm" or m.startswith("lightgbm.")]:
            del sys.modules[name]
        sys.meta_path.remove(finder)
        import lightgbm
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
    return lightgbm
