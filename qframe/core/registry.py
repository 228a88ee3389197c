"""The component registry, filled through the pluggy hooks in :mod:`qframe.core.hookspecs`.

One :class:`pluggy.PluginManager` holds the built-in plugins (``DEFAULT_PLUGINS``)
and, later, third-party ones; :func:`get_registry` asks each ``register_*`` hook
for its items once and indexes them by kind and name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import pluggy

from qframe.core import hookspecs
from qframe.core.errors import ConfigError

#: kind -> hook name
KINDS = {
    "dataset": "register_datasets",
    "feature_set": "register_feature_sets",
    "processor": "register_processors",
    "model": "register_models",
    "strategy": "register_strategies",
    "recorder": "register_recorders",
    "search_space": "register_search_spaces",
    "tuner_backend": "register_tuner_backends",
}

#: the built-in plugins, registered through the same hooks as any third-party plugin
DEFAULT_PLUGINS = (
    "qframe.plugins.datasets",
    "qframe.plugins.features",
    "qframe.plugins.processors",
    "qframe.plugins.models",
    "qframe.plugins.strategies",
)


@dataclass(frozen=True)
class Item:
    """One registered component."""

    kind: str
    name: str
    obj: Any
    description: str
    plugin: str


class Registry:
    """Registered items by kind and name."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Item]] = {kind: {} for kind in KINDS}

    def add(self, item: Item) -> None:
        table = self._items[item.kind]
        if not item.name or not isinstance(item.name, str):
            raise ConfigError(f"plugin {item.plugin!r} registered a {item.kind} without a name")
        if item.obj is None:
            raise ConfigError(f"plugin {item.plugin!r} registered {item.kind} {item.name!r} without an object")
        if item.name in table:
            other = table[item.name].plugin
            raise ConfigError(
                f"{item.kind} {item.name!r} is registered twice: by plugin {other!r} and by plugin {item.plugin!r}; "
                "uninstall one of them or rename the item"
            )
        table[item.name] = item

    def names(self, kind: str) -> list[str]:
        return sorted(self._items[kind])

    def items(self, kind: str) -> list[Item]:
        return [self._items[kind][n] for n in self.names(kind)]

    def get(self, kind: str, name: str) -> Item:
        """The item ``name`` of ``kind``, or a ConfigError listing the valid names."""
        table = self._items[kind]
        if name not in table:
            for other_kind, other in self._items.items():
                if name in other and other_kind != kind:
                    raise ConfigError(
                        f"{name!r} is a {other_kind}, not a {kind}; valid {kind} names: {', '.join(self.names(kind))}"
                    )
            raise ConfigError(f"unknown {kind} {name!r}; valid options: {', '.join(self.names(kind)) or '(none)'}")
        return table[name]

    def create(self, kind: str, name: str, **params: Any) -> Any:
        """Instantiate the registered factory ``name`` with ``params``."""
        return self.get(kind, name).obj(**params)


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("qframe")
    pm.add_hookspecs(hookspecs)
    for modname in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
    return pm


_PM: pluggy.PluginManager | None = None
_REGISTRY: Registry | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    global _PM
    if _PM is None:
        _PM = make_plugin_manager()
    return _PM


def build_registry(pm: pluggy.PluginManager) -> Registry:
    registry = Registry()
    for kind, hook_name in KINDS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)

            def register(name: str, obj: Any, description: str = "", *, _kind=kind, _plugin=plugin_name) -> None:
                registry.add(Item(_kind, name, obj, description, _plugin))

            impl.function(register=register)
    return registry


def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry(get_plugin_manager())
    return _REGISTRY


def reset_registry() -> None:
    """Forget the cached registry so the next :func:`get_registry` asks the hooks again."""
    global _REGISTRY
    _REGISTRY = None
