"""The component registry: every item the plugins' ``register_*`` hooks registered, by kind and name.

:func:`build_registry` asks each loaded plugin (:mod:`qframe.core.discovery`) for its items once;
:meth:`Registry.create` makes a component from its registered factory and checks the product against its contract
(:mod:`qframe.core.contracts`). A broken contract found at registration (a class without a required method) is kept
with the item and reported, as one line naming the plugin, when the item is used.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from qframe.core import contracts
from qframe.core.discovery import (
    DEFAULT_PLUGINS,
    PluginFailure,
    Plugins,
    get_plugins,
)
from qframe.core.errors import ConfigError, reject_unknown_params
from qframe.core.hookspecs import KINDS


@dataclass(frozen=True)
class Item:
    """One registered component: what ``register(name, obj, description)`` recorded, and which plugin did."""

    kind: str
    name: str
    obj: Any
    description: str
    plugin: str
    #: what breaks its contract, found at registration (reported when the item is used)
    problems: tuple[str, ...] = ()

    def owner(self) -> str:
        """``plugin 'acme' model 'foo'``: how messages name the item."""
        return f"plugin {self.plugin!r} {self.kind} {self.name!r}"


class Registry:
    """Registered items by kind and name."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Item]] = {kind: {} for kind in KINDS}

    def add(self, item: Item) -> None:
        """Add ``item``; a missing name or object and a name taken by another plugin are ConfigErrors."""
        table = self._items[item.kind]
        if not item.name or not isinstance(item.name, str):
            raise ConfigError(
                f"plugin {item.plugin!r} registered a {item.kind} without a name (got {item.name!r}); "
                "call register(name, obj, description)"
            )
        if item.obj is None:
            raise ConfigError(f"plugin {item.plugin!r} registered {item.kind} {item.name!r} without an object")
        if item.name in table:
            other = table[item.name].plugin
            raise ConfigError(
                f"{item.kind} {item.name!r} is registered twice: by plugin {other!r} and by plugin {item.plugin!r}; "
                "uninstall one of them or rename the item"
            )
        table[item.name] = _checked(item)

    def names(self, kind: str) -> list[str]:
        return sorted(self._items[kind])

    def items(self, kind: str) -> list[Item]:
        return [self._items[kind][n] for n in self.names(kind)]

    def get(self, kind: str, name: str) -> Item:
        """The item ``name`` of ``kind``: a ConfigError listing the valid names, or naming its broken contract."""
        table = self._items[kind]
        if name not in table:
            for other_kind, other in self._items.items():
                if name in other and other_kind != kind:
                    raise ConfigError(
                        f"{name!r} is a {other_kind}, not a {kind} (plugin {other[name].plugin!r} registers it as a "
                        f"{other_kind}); "
                        f"valid {kind} names: {', '.join(self.names(kind)) or '(none)'}"
                    )
            raise ConfigError(f"unknown {kind} {name!r}; valid options: {', '.join(self.names(kind)) or '(none)'}")
        item = table[name]
        if item.problems:
            raise contracts.breach(item.owner(), kind, list(item.problems))
        return item

    def create(self, kind: str, name: str, /, config_key: str | None = None, **params: Any) -> Any:
        """Make the registered component ``name`` of ``kind`` with ``params``, checked against its contract.

        A parameter the factory does not take is a ConfigError naming ``config_key.<param>`` (default: the kind)
        and the closest valid names.
        """
        item = self.get(kind, name)
        product = instantiate(item.obj, params, f"{kind} {name!r}", config_key or kind)
        return contracts.require(kind, product, item.owner())


_UNEXPECTED_KEYWORD = re.compile(r"unexpected keyword argument '(?P<name>\w+)'")


def instantiate(factory: Callable[..., Any], params: Mapping[str, Any], owner: str, key: str) -> Any:
    """``factory(**params)``; a parameter it does not take is a ConfigError naming ``key.<param>`` and the closest
    valid names, whether its signature says so or its call raises Python's "unexpected keyword argument"."""
    accepted = accepted_parameters(factory)
    if accepted is not None:
        reject_unknown_params(owner, key, params, accepted)
    missing = [p for p in required_parameters(factory) if p not in params]
    if missing:
        settings = " ".join(f"{key}.{p}=<value>" for p in missing)
        raise ConfigError(f"{owner} needs {', '.join(f'{key}.{p}' for p in missing)}, which is not set: add {settings}")
    try:
        return factory(**params)
    except TypeError as exc:
        unexpected = _UNEXPECTED_KEYWORD.search(str(exc))
        if unexpected and unexpected["name"] in params:
            valid = [k for k in params if k != unexpected["name"]]
            reject_unknown_params(owner, key, {unexpected["name"]: None}, valid)
        raise


def accepted_parameters(factory: Any) -> list[str] | None:
    """The keyword parameters ``factory`` accepts, or None when it takes any (``**kwargs``) or cannot be inspected."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    names = []
    for p in signature.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.append(p.name)
    return names


def required_parameters(factory: Any) -> list[str]:
    """The keyword parameters ``factory`` cannot be called without (empty when it cannot be inspected)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return []
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in signature.parameters.values() if p.kind in keyword and p.default is p.empty]


def _checked(item: Item) -> Item:
    """``item`` with what breaks its contract (as far as registration can tell); a lazy search space is checked
    when it is built (the sweep calls it)."""
    if item.kind == "search_space" and callable(item.obj) and not isinstance(item.obj, Mapping):
        return replace(item, obj=_checked_space_builder(item))
    return replace(item, problems=tuple(contracts.check_registered(item.kind, item.obj)))


def _checked_space_builder(item: Item) -> Callable[[], contracts.SearchSpace]:
    build = item.obj

    def checked_space() -> contracts.SearchSpace:
        space = build()
        problems = contracts.space_problems(space)
        if problems:
            raise contracts.breach(item.owner(), item.kind, problems)
        return space

    return checked_space


# ---------------------------------------------------------------------------------------------------------------------
# filled from the hooks


def collect_items(plugins: Plugins, name: str, plugin: Any) -> list[Item]:
    """Every item ``plugin`` registers, through each ``register_*`` hook it implements."""
    found: list[Item] = []
    for kind, hook_name in KINDS.items():
        impl = next((i for i in getattr(plugins.manager.hook, hook_name).get_hookimpls() if i.plugin is plugin), None)
        if impl is None:
            continue

        def register(item_name: str = "", obj: Any = None, description: str = "", *, _kind: str = kind) -> None:
            found.append(Item(_kind, item_name, obj, str(description or ""), name))

        impl.function(register=register)
    return found


def build_registry(plugins: Plugins) -> Registry:
    """Ask every plugin for its items. A third-party plugin that raises is skipped with one warning line.

    Malformed items (no name, no object) and duplicate names are :class:`ConfigError`s naming the plugins.
    """
    registry = Registry()
    for plugin_name, plugin in plugins.manager.list_name_plugin():
        if plugin is None:  # blocked
            continue
        plugins.warn_unknown_hooks(plugin_name, plugin)
        try:
            items = collect_items(plugins, plugin_name, plugin)
        except Exception as exc:  # noqa: BLE001 - any error in third-party code must cost one line, not the run
            if plugin_name in DEFAULT_PLUGINS:
                raise
            package = plugins.source_of(plugin_name).package
            plugins.fail(PluginFailure(plugin_name, package, f"raised while registering: {type(exc).__name__}: {exc}"))
            continue
        for item in items:
            registry.add(item)
    return registry


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built from :func:`qframe.core.discovery.get_plugins` on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry(get_plugins())
    return _REGISTRY


def reset_registry() -> None:
    """Forget the cached registry so the next :func:`get_registry` asks the hooks again."""
    global _REGISTRY
    _REGISTRY = None
