"""``qframe plugins``: list installed plugins, their versions, hooks and registered items.

Fast on purpose: it loads the plugins and asks their hooks for items, nothing else (no data, no MLflow, no model
libraries: built-in factories import those only when called).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from qframe.core.discovery import DEFAULT_PLUGINS, Plugins, get_plugins, plugin_conf_dir
from qframe.core.errors import QFrameError
from qframe.core.hookspecs import KINDS, hookspec_names
from qframe.core.registry import Registry, build_registry


@dataclass
class PluginInfo:
    """One loaded (or skipped) plugin, as ``qframe plugins`` shows it."""

    name: str
    source: str
    package: str | None
    version: str | None
    hooks: list[str]
    conf_dir: str | None = None
    #: ``{kind, name, description, error}`` per registered item (error: its broken contract, or None)
    items: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_plugins(plugins: Plugins | None = None, registry: Registry | None = None) -> list[PluginInfo]:
    """Every plugin: built-ins first, then third-party ones by name, then the skipped ones with their error."""
    plugins = plugins or get_plugins()
    registry = registry or build_registry(plugins)
    by_plugin: dict[str, list[dict[str, Any]]] = {}
    for kind in KINDS:
        for item in registry.items(kind):
            error = "; ".join(item.problems) or None
            by_plugin.setdefault(item.plugin, []).append(
                {"kind": kind, "name": item.name, "description": item.description, "error": error}
            )
    pm = plugins.manager
    failed = {f.plugin: f for f in plugins.failures}
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        src = plugins.source_of(name)
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        conf = plugin_conf_dir(plugin) if name not in DEFAULT_PLUGINS else None
        error = failed[name].error if name in failed else None
        items = by_plugin.get(name, [])
        infos.append(PluginInfo(name, src.source, src.package, src.version, hooks, conf and str(conf), items, error))
    for f in plugins.failures:
        if pm.get_plugin(f.plugin) is None:
            infos.append(PluginInfo(f.plugin, "entry point", f.package, None, [], error=f.error))
    infos.sort(key=lambda i: (i.source != "built-in", i.name))
    return infos


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qframe plugins", description="List qframe's plugins: built-in ones and those installed as packages."
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--hook", metavar="NAME", help="only plugins implementing this hook, e.g. register_models")
    return parser


def _text(infos) -> str:
    lines = []
    for info in infos:
        version = f" {info.version}" if info.version else ""
        package = f", package {info.package}" if info.package and info.package not in (info.name, "qframe") else ""
        lines.append(f"{info.name}{version} ({info.source}{package})")
        if info.error:
            lines.append(f"  error: {info.error}")
        if info.hooks:
            lines.append(f"  hooks: {', '.join(info.hooks)}")
        if info.conf_dir:
            lines.append(f"  config: {info.conf_dir}")
        width = max((len(f"{i['kind']} {i['name']}") for i in info.items), default=0)
        for item in info.items:
            label = f"{item['kind']} {item['name']}"
            lines.append(f"  {label:<{width}}  {item['description']}".rstrip())
            if item["error"]:
                lines.append(f"  {'':<{width}}  error: does not follow its contract: {item['error']}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run ``qframe plugins``; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.hook and args.hook not in hookspec_names():
        print(
            f"qframe: error: unknown hook {args.hook!r}; valid options: {', '.join(hookspec_names())}",
            file=sys.stderr,
        )
        return 2
    try:
        infos = list_plugins()
    except QFrameError as exc:
        print(f"qframe: error: {exc}", file=sys.stderr)
        return 2
    if args.hook:
        infos = [i for i in infos if args.hook in i.hooks]
    if args.json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
    elif not infos:
        print(f"no plugin implements {args.hook}: none registered" if args.hook else "no plugin loaded")
    else:
        print(_text(infos))
    return 0
