"""The ``qframe`` console script: checks cheap things itself, then hands the command line to Hydra."""

from __future__ import annotations

import re
import sys

_GROUP_OVERRIDE = re.compile(r"^[+]{0,2}(?P<group>[A-Za-z_][\w/]*)=(?P<value>[^=]*)$")


def config_groups() -> dict[str, list[str]]:
    """Config group -> available options, from qframe's config directory."""
    from qframe.app import conf_dir

    root = conf_dir()
    groups: dict[str, list[str]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        groups[sub.name] = sorted(f.stem for f in sub.glob("*.yaml"))
    return groups


def check_group_overrides(argv: list[str]) -> str | None:
    """A one-line error for ``group=option`` naming an unknown option, else None."""
    multirun = "-m" in argv or "--multirun" in argv
    groups = None
    for arg in argv:
        match = _GROUP_OVERRIDE.match(arg)
        if not match:
            continue
        groups = groups if groups is not None else config_groups()
        group, value = match["group"], match["value"]
        if group not in groups or value in ("", "null"):
            continue
        values = value.split(",") if multirun and "(" not in value else [value]
        for v in values:
            if v not in groups[group]:
                return f"unknown {group} {v!r}; valid options: {', '.join(groups[group])}"
    return None


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    problem = check_group_overrides(argv)
    if problem:
        print(f"qframe: error: {problem}", file=sys.stderr)
        sys.exit(2)
    from qframe.app import hydra_main

    sys.argv = [sys.argv[0], *argv]
    hydra_main()


if __name__ == "__main__":
    main()
