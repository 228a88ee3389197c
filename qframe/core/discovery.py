"""Finding qframe's plugins: the built-ins, the ``qframe`` entry points of installed packages, and what each ships.

:func:`make_plugins` builds a :class:`pluggy.PluginManager` with qframe's hookspecs, the built-in plugins
(``DEFAULT_PLUGINS``) and the third-party ones found in the ``qframe`` entry-point group, and returns it as
:class:`Plugins` with where each plugin came from and which were skipped.

A third-party plugin that fails to import costs one warning line on stderr naming it and the error; every other
plugin still loads. ``QFRAME_LOAD_PLUGINS=a,b`` loads only those entry points (or distributions) by name,
``QFRAME_LOAD_PLUGINS=`` none; built-ins always load. The variable is read once, by :func:`get_plugins`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from qframe.core import hookspecs

#: the entry-point group third-party plugins declare (``[project.entry-points.qframe]``)
ENTRY_POINT_GROUP = "qframe"
#: comma-separated entry-point or distribution names to load (unset: all; empty: none)
LOAD_PLUGINS_ENV = "QFRAME_LOAD_PLUGINS"

#: the built-in plugins, registered through the same hooks as any third-party plugin
DEFAULT_PLUGINS = (
    "qframe.plugins.datasets",
    "qframe.plugins.features",
    "qframe.plugins.processors",
    "qframe.plugins.models",
    "qframe.plugins.reweighters",
    "qframe.plugins.strategies",
    "qframe.plugins.recorders",
    "qframe.plugins.trainers",
    "qframe.plugins.tuning",
)


def warn(message: str) -> None:
    """One plain ``qframe: warning:`` line on stderr, like the CLI's error lines (warnings.warn adds a source line)."""
    print(f"qframe: warning: {message}", file=sys.stderr)


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


@dataclass
class Plugins:
    """A plugin manager with qframe's hooks, and what loading it found out."""

    manager: pluggy.PluginManager
    #: entry-point plugin name -> where it came from (built-ins and in-process plugins are not listed)
    sources: dict[str, PluginSource] = field(default_factory=dict)
    #: third-party plugins skipped: import or registration errors, each warned about once
    failures: list[PluginFailure] = field(default_factory=list)
    #: plugins already warned about for implementing a hook qframe does not have
    warned_unknown_hooks: set[str] = field(default_factory=set)

    def source_of(self, name: str) -> PluginSource:
        if name in DEFAULT_PLUGINS:
            return PluginSource("built-in", "qframe", _qframe_version())
        return self.sources.get(name) or PluginSource("in-process")

    def fail(self, failure: PluginFailure) -> None:
        """Record a skipped plugin and warn about it (once per plugin)."""
        if not any(f.plugin == failure.plugin for f in self.failures):
            self.failures.append(failure)
            warn(failure.message())

    def warn_unknown_hooks(self, name: str, plugin: Any) -> None:
        # pluggy accepts an implementation of a hook nobody specified and never calls it: a typo would fail silently
        unknown = sorted(hc.name for hc in self.manager.get_hookcallers(plugin) or [] if hc.spec is None)
        if unknown and name not in self.warned_unknown_hooks:
            self.warned_unknown_hooks.add(name)
            warn(
                f"plugin {name!r} implements unknown hook(s) {', '.join(unknown)}, which qframe never calls; "
                f"valid hooks: {', '.join(hookspecs.hookspec_names())}"
            )


def _qframe_version() -> str | None:
    try:
        return importlib.metadata.version("qframe")
    except importlib.metadata.PackageNotFoundError:
        return None


def allowed_plugins(environ: Mapping[str, str]) -> set[str] | None:
    """The plugin names ``QFRAME_LOAD_PLUGINS`` allows (None: all)."""
    raw = environ.get(LOAD_PLUGINS_ENV)
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


def load_entry_point_plugins(plugins: Plugins, allowed: set[str] | None) -> None:
    """Register every plugin of the ``qframe`` entry-point group that imports (of ``allowed``, when given).

    Unlike :meth:`pluggy.PluginManager.load_setuptools_entrypoints`, one broken plugin does not stop the others.
    """
    pm = plugins.manager
    points = _entry_points()
    if allowed:
        installed = {ep.name for ep in points} | {ep.dist.metadata["Name"] for ep in points if ep.dist is not None}
        for name in sorted(allowed - installed):
            warn(
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
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # noqa: BLE001 - any error in third-party code must cost one line, not the run
            plugins.fail(PluginFailure(ep.name, package, f"cannot load {ep.value!r}: {type(exc).__name__}: {exc}"))
            continue
        version = dist.version if dist is not None else None
        plugins.sources[ep.name] = PluginSource("entry point", package, version, f"{ep.name} = {ep.value}")


def make_plugins(load_external: bool = True, allowed: set[str] | None = None) -> Plugins:
    """qframe's hookspecs and built-ins, plus (unless ``load_external`` is false) the entry-point plugins."""
    pm = pluggy.PluginManager("qframe")
    pm.add_hookspecs(hookspecs)
    for modname in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
    plugins = Plugins(pm)
    if load_external:
        load_entry_point_plugins(plugins, allowed)
    return plugins


_PLUGINS: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide plugins: built-ins plus the entry-point plugins ``QFRAME_LOAD_PLUGINS`` allows."""
    global _PLUGINS
    if _PLUGINS is None:
        _PLUGINS = make_plugins(allowed=allowed_plugins(os.environ))
    return _PLUGINS


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (register a plugin object on it for a test, then ``reset_registry()``)."""
    return get_plugins().manager


# ---------------------------------------------------------------------------------------------------------------------
# what a plugin ships


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


def plugin_conf_dirs(plugins: Plugins | None = None) -> list[tuple[str, Path]]:
    """(plugin name, config dir) of every loaded non-built-in plugin that ships Hydra config groups."""
    pm = (plugins or get_plugins()).manager
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None or name in DEFAULT_PLUGINS:
            continue
        path = plugin_conf_dir(plugin)
        if path is not None:
            out.append((name, path))
    return out
