"""The ``qframe`` console script: ``qframe plugins`` itself; otherwise checks cheap things, then hands argv to Hydra."""

from __future__ import annotations

import re
import sys

_GROUP_OVERRIDE = re.compile(r"^[+]{0,2}(?P<group>[A-Za-z_][\w/]*)=(?P<value>[^=]*)$")
_SWEEPER_PARAM = re.compile(r"^hydra\.sweeper\.params\.[^=]+=")


def sweeper_param_overrides(argv: list[str]) -> list[str]:
    """``hydra.sweeper.params.<key>=<grammar>`` adds a key to the search space, or replaces one.

    Hydra's struct mode refuses a new key (and any key while ``params`` is null, as with ``tuner=lightgbm``,
    whose space is a named one) unless it is force-added: ``++`` does exactly "add or replace".
    """
    return [f"++{arg}" if _SWEEPER_PARAM.match(arg) else arg for arg in argv]


def config_groups() -> dict[str, list[str]]:
    """Config group -> available options: qframe's own plus those shipped by loaded plugins.

    Raises ConfigError when a plugin ships an option that clashes with an existing one.
    """
    from qframe.app import conf_dir
    from qframe.core.registry import merged_config_groups

    return merged_config_groups(conf_dir())


def check_group_overrides(argv: list[str], groups: dict[str, list[str]] | None = None) -> str | None:
    """A one-line error for ``group=option`` naming an unknown option, else None."""
    multirun = "-m" in argv or "--multirun" in argv
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
    if argv[:1] == ["plugins"]:
        from qframe.plugins_cli import main as plugins_main

        sys.exit(plugins_main(argv[1:]))
    from qframe.core.errors import QFrameError

    argv = sweeper_param_overrides(argv)
    try:
        # always: loads the plugins once (the run needs them anyway) and rejects clashing plugin config groups
        problem = check_group_overrides(argv, config_groups())
    except QFrameError as exc:
        problem = str(exc)
    if problem:
        print(f"qframe: error: {problem}", file=sys.stderr)
        sys.exit(2)
    from qframe.app import hydra_main

    sys.argv = [sys.argv[0], *argv]
    hydra_main()


if __name__ == "__main__":
    main()
