"""Factories named by import path, imported when first used: what keeps registering the plugins cheap.

Every process builds the plugin manager (``qframe --help``, an error line, a run, each sweep worker), so a plugin
module that imports its classes at the top makes all of them pay for pandas, LightGBM or torch. A built-in
plugin registers ``lazy("qframe.plugins.datasets.qlib_bin:QlibBinDataset")`` instead: calling it, or reading its
signature (what the registry does to check parameters), imports the target; until then nothing is imported.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any


class LazyFactory:
    """A callable standing for ``module:attribute``, imported on the first call or signature inspection."""

    __slots__ = ("target", "_resolved")

    def __init__(self, target: str) -> None:
        module, sep, attribute = target.partition(":")
        if not sep or not module or not attribute:
            raise ValueError(f"lazy target {target!r}: expected 'package.module:attribute'")
        self.target = target
        self._resolved: Any = None

    def resolve(self) -> Any:
        """The object named by the target (imported once)."""
        if self._resolved is None:
            module, _, attribute = self.target.partition(":")
            obj: Any = importlib.import_module(module)
            for part in attribute.split("."):
                obj = getattr(obj, part)
            self._resolved = obj
        return self._resolved

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:  # inspect.signature() reads it: the target's own parameters
        return inspect.signature(self.resolve())

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


def lazy(target: str) -> LazyFactory:
    """A factory for ``"package.module:attribute"`` that imports it only when called (or its signature is read)."""
    return LazyFactory(target)
