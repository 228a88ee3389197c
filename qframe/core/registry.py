"""The component registry, filled through the pluggy hooks in :mod:`qframe.core.hookspecs`.

One :class:`pluggy.PluginManager` holds the built-in plugins (``DEFAULT_PLUGINS``)
and the third-party ones found in the ``qframe`` entry-point group;
:func:`get_registry` asks each ``register_*`` hook for its items once and
indexes them by kind and name.

A third-party plugin that fails to import, or raises while registering, costs
one warning line on stderr naming it and the error; every other plugin still
loads. ``QFRAME_LOAD_PLUGINS=a,b`` loads only those entry points (or
distributions) by name, ``QFRAME_LOAD_PLUGINS=`` none; built-ins always load.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import re
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from qframe.core import hookspecs
from qframe.core.errors import ConfigError, reject_unknown_params

#: the entry-point group third-party plugins declare (``[project.entry-points.qframe]``)
ENTRY_POINT_GROUP = "qframe"
#: comma-separated entry-point or distribution names to load (unset: all; empty: none)
LOAD_PLUGINS_ENV = "QFRAME_LOAD_PLUGINS"

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
    "qframe.plugins.recorders",
    "qframe.plugins.tuning",
)


@dataclass(frozen=True)
class Item:
    """One registered component: what ``register(name, obj, description)`` recorded, and which plugin did."""

    kind: str
    name: str
    obj: Any
    description: str
    plugin: str


@dataclass
class PluginSource:
    """Where a loaded plugin came from (for ``qframe plugins`` and error messages)."""

    source: str  # "built-in", "entry point" or "in-process"
    package: str | None = None
    version: str | None = None
    entry_point: str | None = None


@dataclass
class PluginFailure:
    """A third-party plugin that was skipped, and why."""

    plugin: str
    package: str | None
    error: str

    def message(self) -> str:
        pkg = f" (package {self.package})" if self.package and self.package != self.plugin else ""
        return f"plugin {self.plugin!r}{pkg} skipped: {self.error}"


class Registry:
    """Registered items by kind and name."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Item]] = {kind: {} for kind in KINDS}

    def add(self, item: Item) -> None:
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
                        f"{name!r} is a {other_kind}, not a {kind} (plugin {other[name].plugin!r} registers it as a "
                        f"{other_kind}); "
                        f"valid {kind} names: {', '.join(self.names(kind)) or '(none)'}"
                    )
            raise ConfigError(f"unknown {kind} {name!r}; valid options: {', '.join(self.names(kind)) or '(none)'}")
        return table[name]

    def create(self, kind: str, name: str, /, config_key: str | None = None, **params: Any) -> Any:
        """Instantiate the registered factory ``name`` with ``params``.

        A parameter the factory does not take is a ConfigError naming ``config_key.<param>`` (default: the kind)
        and the closest valid names, whether the factory's signature says so or its call raises Python's
        "unexpected keyword argument".
        """
        item = self.get(kind, name)
        key = config_key or kind
        factory = item.obj
        accepted = accepted_parameters(factory)
        if accepted is not None:
            reject_unknown_params(f"{kind} {name!r}", key, params, accepted)
        try:
            return factory(**params)
        except TypeError as exc:
            unexpected = _UNEXPECTED_KEYWORD.search(str(exc))
            if unexpected and unexpected["name"] in params:
                valid = [k for k in params if k != unexpected["name"]]
                reject_unknown_params(f"{kind} {name!r}", key, {unexpected["name"]: None}, valid)
            raise


_UNEXPECTED_KEYWORD = re.compile(r"unexpected keyword argument '(?P<name>\w+)'")


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


# ---------------------------------------------------------------------------------------------------------------------
# discovery


def _warn(message: str) -> None:
    # one plain line, like the CLI's "qframe: error:" lines; warnings.warn would add a source line
    print(f"qframe: warning: {message}", file=sys.stderr)


def _allowed_plugins() -> set[str] | None:
    raw = os.environ.get(LOAD_PLUGINS_ENV)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    seen: set[str] = set()
    out = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in seen:  # the same distribution on sys.path twice lists its entry points twice
            seen.add(ep.name)
            out.append(ep)
    return out


def load_entry_point_plugins(pm: pluggy.PluginManager) -> list[PluginFailure]:
    """Register every plugin of the ``qframe`` entry-point group that imports; return the ones that did not.

    Unlike :meth:`pluggy.PluginManager.load_setuptools_entrypoints`, one broken plugin does not stop the others.
    """
    allowed = _allowed_plugins()
    failures: list[PluginFailure] = []
    points = _entry_points()
    if allowed:
        installed = {ep.name for ep in points} | {ep.dist.metadata["Name"] for ep in points if ep.dist is not None}
        for name in sorted(allowed - installed):
            _warn(
                f"{LOAD_PLUGINS_ENV} names {name!r}, which is not an installed plugin (entry point or distribution); "
                f"installed: {', '.join(sorted(installed)) or 'none'}"
            )
    for ep in points:
        dist = getattr(ep, "dist", None)
        package = dist.metadata["Name"] if dist is not None else None
        if allowed is not None and ep.name not in allowed and package not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - any error in third-party code must cost one line, not the run
            failure = PluginFailure(ep.name, package, f"cannot load {ep.value!r}: {type(exc).__name__}: {exc}")
            failures.append(failure)
            _warn(failure.message())
            continue
        sources(pm)[ep.name] = PluginSource(
            "entry point", package, dist.version if dist is not None else None, f"{ep.name} = {ep.value}"
        )
    return failures


def sources(pm: pluggy.PluginManager) -> dict[str, PluginSource]:
    """Plugin name -> where it came from, kept on the plugin manager."""
    if not hasattr(pm, "_qframe_sources"):
        pm._qframe_sources = {}
    return pm._qframe_sources


def failures(pm: pluggy.PluginManager) -> list[PluginFailure]:
    """Third-party plugins skipped by this plugin manager (load or registration errors)."""
    if not hasattr(pm, "_qframe_failures"):
        pm._qframe_failures = []
    return pm._qframe_failures


def source_of(pm: pluggy.PluginManager, name: str) -> PluginSource:
    if name in DEFAULT_PLUGINS:
        return PluginSource("built-in", "qframe", _qframe_version())
    return sources(pm).get(name) or PluginSource("in-process")


def _qframe_version() -> str | None:
    try:
        return importlib.metadata.version("qframe")
    except importlib.metadata.PackageNotFoundError:
        return None


def make_plugin_manager(load_external: bool = True) -> pluggy.PluginManager:
    """A plugin manager with qframe's hookspecs, the built-ins and (unless told not to) the entry-point plugins."""
    pm = pluggy.PluginManager("qframe")
    pm.add_hookspecs(hookspecs)
    for modname in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
    if load_external:
        failures(pm).extend(load_entry_point_plugins(pm))
    return pm


_PM: pluggy.PluginManager | None = None
_REGISTRY: Registry | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (built-ins plus entry-point plugins, loaded on first use)."""
    global _PM
    if _PM is None:
        _PM = make_plugin_manager()
    return _PM


def collect_items(pm: pluggy.PluginManager, plugin: Any) -> list[Item]:
    """Every item ``plugin`` registers, through each ``register_*`` hook it implements."""
    name = pm.get_name(plugin) or repr(plugin)
    found: list[Item] = []
    for kind, hook_name in KINDS.items():
        impl = next((i for i in getattr(pm.hook, hook_name).get_hookimpls() if i.plugin is plugin), None)
        if impl is None:
            continue

        def register(item_name: str = "", obj: Any = None, description: str = "", *, _kind: str = kind) -> None:
            found.append(Item(_kind, item_name, obj, str(description or ""), name))

        impl.function(register=register)
    return found


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Ask every plugin for its items. A third-party plugin that raises is skipped with one warning line.

    Malformed items (no name, no object) and duplicate names are :class:`ConfigError`s naming the plugins.
    """
    registry = Registry()
    for plugin_name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked
            continue
        _warn_unknown_hooks(pm, plugin_name, plugin)
        try:
            items = collect_items(pm, plugin)
        except Exception as exc:  # noqa: BLE001 - see load_entry_point_plugins
            if plugin_name in DEFAULT_PLUGINS:
                raise
            src = source_of(pm, plugin_name)
            failure = PluginFailure(plugin_name, src.package, f"raised while registering: {type(exc).__name__}: {exc}")
            if not any(f.plugin == plugin_name for f in failures(pm)):
                failures(pm).append(failure)
                _warn(failure.message())
            continue
        for item in items:
            registry.add(item)
    return registry


def _warn_unknown_hooks(pm: pluggy.PluginManager, plugin_name: str, plugin: Any) -> None:
    # pluggy accepts an implementation of a hook nobody specified and never calls it: a typo would fail silently
    unknown = sorted(hc.name for hc in pm.get_hookcallers(plugin) or [] if hc.spec is None)
    warned = pm.__dict__.setdefault("_qframe_unknown_warned", set())
    if unknown and plugin_name not in warned:
        warned.add(plugin_name)
        _warn(
            f"plugin {plugin_name!r} implements unknown hook(s) {', '.join(unknown)}, which qframe never calls; "
            f"valid hooks: {', '.join(KINDS.values())}"
        )


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


# ---------------------------------------------------------------------------------------------------------------------
# plugin config groups


def plugin_conf_dir(plugin: Any) -> Path | None:
    """The Hydra config directory a plugin ships, if any.

    ``plugin.qframe_conf_dir`` (a path, absolute or relative to the plugin's module file) when set; otherwise a
    ``conf/`` directory next to the plugin module's file, when that module is a package or inside one.
    """
    module = plugin if isinstance(plugin, types.ModuleType) else sys.modules.get(type(plugin).__module__)
    base = Path(module.__file__).resolve().parent if getattr(module, "__file__", None) else None
    explicit = getattr(plugin, "qframe_conf_dir", None)
    if explicit:
        path = Path(explicit)
        if not path.is_absolute() and base is not None:
            path = base / path
        return path if path.is_dir() else None
    if base is None or module is None:
        return None
    in_package = hasattr(module, "__path__") or "." in (module.__name__ or "")
    candidate = base / "conf"
    return candidate if in_package and candidate.is_dir() else None


def plugin_conf_dirs(pm: pluggy.PluginManager | None = None) -> list[tuple[str, Path]]:
    """(plugin name, config dir) of every loaded non-built-in plugin that ships Hydra config groups."""
    pm = pm or get_plugin_manager()
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None or name in DEFAULT_PLUGINS:
            continue
        path = plugin_conf_dir(plugin)
        if path is not None:
            out.append((name, path))
    return out


def group_options(conf_root: Path) -> dict[str, list[str]]:
    """Config group (``model``, ``hydra/sweeper``...) -> option names found under ``conf_root``."""
    groups: dict[str, list[str]] = {}
    for f in sorted(conf_root.rglob("*.yaml")):
        rel = f.relative_to(conf_root)
        if len(rel.parts) < 2:  # a primary config at the root, not a group option
            continue
        groups.setdefault("/".join(rel.parts[:-1]), []).append(f.stem)
    return groups


def merged_config_groups(builtin_root: Path, pm: pluggy.PluginManager | None = None) -> dict[str, list[str]]:
    """Config groups of qframe plus those of every loaded plugin.

    A plugin option that already exists (built-in, or shipped by an earlier plugin) is a :class:`ConfigError`
    naming the plugin and the file: Hydra would silently pick one of the two.
    """
    groups = {g: list(opts) for g, opts in group_options(builtin_root).items()}
    owner = {(g, o): "qframe (built-in)" for g, opts in groups.items() for o in opts}
    for plugin_name, root in plugin_conf_dirs(pm):
        for group, opts in group_options(root).items():
            for opt in opts:
                if (group, opt) in owner:
                    raise ConfigError(
                        f"plugin {plugin_name!r} ships config {group}/{opt}.yaml ({root / group / (opt + '.yaml')}), "
                        f"which clashes with the {group} option {opt!r} of {owner[(group, opt)]}; "
                        "rename the plugin's file or uninstall one of them"
                    )
                owner[(group, opt)] = f"plugin {plugin_name!r}"
                groups.setdefault(group, []).append(opt)
    return {g: sorted(opts) for g, opts in groups.items()}


# ---------------------------------------------------------------------------------------------------------------------
# plugin listing


@dataclass
class PluginInfo:
    """One loaded (or skipped) plugin, as ``qframe plugins`` shows it."""

    name: str
    source: str
    package: str | None
    version: str | None
    hooks: list[str]
    conf_dir: str | None = None
    items: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "package": self.package,
            "version": self.version,
            "hooks": self.hooks,
            "conf_dir": self.conf_dir,
            "items": self.items,
            "error": self.error,
        }


def list_plugins(pm: pluggy.PluginManager | None = None, registry: Registry | None = None) -> list[PluginInfo]:
    """Every plugin: built-ins first, then third-party ones by name, then the skipped ones with their error."""
    pm = pm or get_plugin_manager()
    registry = registry or build_registry(pm)
    by_plugin: dict[str, list[dict[str, str]]] = {}
    for kind in KINDS:
        for item in registry.items(kind):
            by_plugin.setdefault(item.plugin, []).append(
                {"kind": kind, "name": item.name, "description": item.description}
            )
    failed = {f.plugin: f for f in failures(pm)}
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        src = source_of(pm, name)
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        conf = plugin_conf_dir(plugin) if name not in DEFAULT_PLUGINS else None
        infos.append(
            PluginInfo(
                name,
                src.source,
                src.package,
                src.version,
                hooks,
                str(conf) if conf else None,
                by_plugin.get(name, []),
                failed[name].error if name in failed else None,
            )
        )
    for f in failures(pm):
        if pm.get_plugin(f.plugin) is None:
            infos.append(PluginInfo(f.plugin, "entry point", f.package, None, [], error=f.error))
    infos.sort(key=lambda i: (i.source != "built-in", i.name))
    return infos


# ---------------------------------------------------------------------------------------------------------------------
# recorders


def make_recorders(registry: Registry, specs: Iterable[Any] | None) -> list[tuple[str, Callable[..., Any]]]:
    """Instantiate the ``recorders`` config list: each entry a registered name or ``{name: ..., <params>}``."""
    out = []
    for i, spec in enumerate(specs or []):
        if isinstance(spec, str):
            name, params = spec, {}
        elif isinstance(spec, dict) and spec.get("name"):
            name, params = spec["name"], {k: v for k, v in spec.items() if k != "name"}
        else:
            raise ConfigError(
                f"recorders[{i}] must be a recorder name or {{name: ..., <params>}}, got {spec!r}; "
                f"valid options: {', '.join(registry.names('recorder')) or '(none installed)'}"
            )
        recorder = registry.create("recorder", name, **params)
        if not callable(recorder):
            raise ConfigError(f"recorder {name!r} (plugin {registry.get('recorder', name).plugin!r}) is not callable")
        out.append((name, recorder))
    return out


def run_recorders(recorders: list[tuple[str, Callable[..., Any]]], result: Any, cfg: dict[str, Any]) -> None:
    """Call each recorder with the finished run's result and its config."""
    for _name, recorder in recorders:
        recorder(result, cfg)
