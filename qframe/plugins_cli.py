"""``qframe plugins``: list installed plugins, their versions, hooks and registered items.

Fast on purpose: it loads the plugins and asks their hooks for items, nothing else (no data, no MLflow, no model
libraries: built-in factories import those only when called).
"""

from __future__ import annotations

import argparse
import json
import sys

from qframe.core.errors import QFrameError


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
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run ``qframe plugins``; returns the exit status."""
    from qframe.core.hookspecs import hookspec_names
    from qframe.core.registry import list_plugins

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
