"""The ``qframe`` console script.

``qframe plugins``, ``qframe cache``, ``qframe data`` and ``qframe runs`` are handled here; everything else is a Hydra
run or sweep. Before Hydra sees the command line, the cheap things are checked (override syntax, config group options)
so that a mistake costs one ``qframe: error:`` line and exit status 2 instead of a Hydra traceback; errors Hydra
raises while composing the config are turned into such a line too.
"""

from __future__ import annotations

import gc
import os
import re
import sys
from collections.abc import Callable

_GROUP_OVERRIDE = re.compile(r"^[+]{0,2}(?P<group>[A-Za-z_][\w/]*)=(?P<value>[^=]*)$")
_SWEEPER_PARAM = re.compile(r"^hydra\.sweeper\.params\.[^=]+=")
_HOME_VALUE = re.compile(r"^(?P<key>[+~]{0,2}[\w./@-]+)=(?P<value>~[^'\",]*)$")


#: exception names that mean "fix the config or the data" when a job reports its failure as "Name: message"
_USER_ERRORS = ("QFrameError", "ConfigError", "DataError", "DegenerateResult")


def sweeper_param_overrides(argv: list[str]) -> list[str]:
    """``hydra.sweeper.params.<key>=<grammar>`` adds a key to the search space, or replaces one.

    Hydra's struct mode refuses a new key (and any key while ``params`` is null, as with ``tuner=lightgbm``,
    whose space is a named one) unless it is force-added: ``++`` does exactly "add or replace".
    """
    return [f"++{arg}" if _SWEEPER_PARAM.match(arg) else arg for arg in argv]


def preset_parts_for_removed_groups(argv: list[str]) -> list[str]:
    """``~model`` / ``~handler`` (a component given by ``_target_``) also turn off the preset's parts for them.

    conf/config.yaml picks a preset's model and handler parts with the defaults-list interpolations
    ``${preset}_${model}`` and ``${preset}_${handler}_${model}``, which Hydra cannot resolve once either group is
    removed; naming an option that does not exist (``off``) for those optional entries skips them instead. A
    custom component has no preset part anyway.
    """
    removed = {arg[1:].split("=", 1)[0] for arg in argv if arg.startswith("~")}
    if not removed & {"model", "handler"}:
        return argv
    given = {arg.split("=", 1)[0].lstrip("+~") for arg in argv}
    return argv + [f"{part}=off" for part in ("preset_model", "preset_handler") if part not in given]


def quote_home_paths(argv: list[str]) -> list[str]:
    """``key=~/path`` as a quoted string: Hydra's grammar reads an unquoted ``~`` as its delete operator."""
    out = []
    for arg in argv:
        match = _HOME_VALUE.match(arg)
        out.append(f"{match['key']}='{match['value']}'" if match else arg)
    return out


def config_groups() -> dict[str, list[str]]:
    """Config group -> available options: qframe's own plus those shipped by loaded plugins.

    Raises ConfigError when a plugin ships an option that clashes with an existing one.
    """
    from qframe.app import conf_dir
    from qframe.config_groups import merged_config_groups

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
        if value.startswith("{"):  # the whole section inline, e.g. {_target_: my_pkg.MyModel}: not an option name
            if arg.startswith("+") and f"~{group}" in argv[: argv.index(arg)]:
                continue
            return (
                f"{group}={value} gives the {group} section inline: delete the chosen {group} option first, "
                f"'~{group}' '+{group}={value}'"
            )
        values = value.split(",") if multirun and "(" not in value else [value]
        for v in values:
            if v not in groups[group]:
                return f"unknown {group} {v!r}; valid options: {', '.join(groups[group])}"
    return None


def command_overrides(argv: list[str]) -> list[str]:
    """The ``key=value`` overrides of a command line, without Hydra's flags (``-m``, ``--cfg job``...)."""
    try:
        from hydra._internal.utils import get_args_parser  # Hydra's own parser: it knows which flags take values
    except ImportError:  # pragma: no cover - a Hydra without it: every non-flag argument is an override
        return [a for a in argv if not a.startswith("-")]
    try:
        args, _ = get_args_parser().parse_known_args(argv)
    except SystemExit:  # a malformed flag: Hydra reports it itself
        return []
    return list(args.overrides or [])


def check_override_syntax(overrides: list[str]) -> str | None:
    """A one-line error for the first override Hydra's grammar cannot parse, else None."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for arg in overrides:
        try:
            parser.parse_overrides([arg])
        except OverrideParseException as exc:
            why = str(exc).splitlines()[0]
            if why.startswith("LexerNoViableAltException"):
                why = "a character the override grammar does not allow here"
            return (
                f"cannot parse {arg!r}: {why}; quote a value holding spaces, commas, brackets or '~' "
                f"(e.g. \"key='a value'\"), and close every bracket of a sweep such as interval(lo, hi)"
            )
    return None


def freeze_for_exit() -> None:
    """Leave every object alive now out of the cyclic collector's passes, for a process about to exit.

    The interpreter's teardown clears every module and runs the collector over what a run left (MLflow, SQLAlchemy,
    pandas, Hydra: ~300 000 objects): ~0.9 s after the result is printed, for nothing the run needs. Frozen, the
    teardown takes ~0.05 s. What a frozen cycle would have done when collected is skipped; nothing of a record
    waits for that: the run's store committed every write before its run ended, files are closed where written,
    and ``atexit`` handlers (logging's flush and close) still run.
    """
    gc.freeze()


def main(argv: list[str] | None = None) -> None:
    """The console script (``argv``: None, the process's own arguments; the process then exits, see
    :func:`freeze_for_exit`), or a command line run in this process (``argv`` given: nothing frozen)."""
    exiting = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        sys.exit(_main(argv))
    except BrokenPipeError:  # `qframe --help | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    finally:
        if exiting:
            freeze_for_exit()


def _subcommand(name: str) -> Callable[[list[str]], int] | None:
    if name == "plugins":
        from qframe.plugins_cli import main as plugins_main

        return plugins_main
    if name == "cache":
        from qframe.cache_cli import main as cache_main

        return cache_main
    if name == "data":
        from qframe.data_cli import main as data_main

        return data_main
    if name == "runs":
        from qframe.experiments.cli import main as runs_main

        return runs_main
    return None


def _error(message: str) -> int:
    print(f"qframe: error: {message}", file=sys.stderr)
    return 2


def _main(argv: list[str]) -> int:
    command = _subcommand(argv[0]) if argv else None
    if command is not None:
        return command(argv[1:])
    if argv[:1] in (["--version"], ["-V"]):
        import hydra

        from qframe import __version__

        print(f"qframe {__version__} (Hydra {hydra.__version__}, Python {sys.version.split()[0]})")
        return 0
    from qframe.core.errors import QFrameError

    argv = quote_home_paths(sweeper_param_overrides(argv))
    overrides = command_overrides(argv)
    problem = check_override_syntax(overrides)
    if problem:
        return _error(problem)
    try:
        # always: loads the plugins once (the run needs them anyway) and rejects clashing plugin config groups
        problem = check_group_overrides(argv, config_groups())
    except QFrameError as exc:
        problem = str(exc)
    if problem:
        return _error(problem)
    from qframe.app import hydra_main
    from qframe.hydra_help import asks_for_help, one_repository_for_group_listings

    sys.argv = [sys.argv[0], *preset_parts_for_removed_groups(argv)]
    user_wants_full_error = bool(os.environ.get("HYDRA_FULL_ERROR"))
    # Hydra then raises its composition errors instead of printing them with a hint about this variable
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        with one_repository_for_group_listings(asks_for_help(argv)):
            hydra_main()
    except QFrameError as exc:  # a sweep's own error, or a grid job's (Hydra's basic sweeper re-raises it)
        return _error(str(exc))
    except Exception as exc:
        from qframe.launch.forking import TrialFailed

        if isinstance(exc, TrialFailed):  # a grid job that failed in its own process: its reason, one line
            reason = str(exc)
            print(f"qframe: error: a job of the sweep failed: {reason}", file=sys.stderr)
            return 2 if reason.split(":")[0] in _USER_ERRORS else 1
        from qframe.hydra_errors import describe_hydra_error

        message = None if user_wants_full_error else describe_hydra_error(exc, overrides)
        if message is None:
            raise
        return _error(message)
    return 0


if __name__ == "__main__":
    main()
