"""Hydra's composition errors as one ``qframe: error:`` line that names the problem and the fix."""

from __future__ import annotations

import difflib
import re
from typing import Any

_NOT_IN_STRUCT = re.compile(r"Key '(?P<key>[^']+)' is not in struct")
_MISSING_OPTION = re.compile(r"Could not find '(?P<path>[^']+)'")
_MULTIPLE_VALUES = re.compile(
    r"Multiple values for (?P<group>[\w/]+)\. To override a value use 'override \S+: (?P<option>\S+)'"
)


def closest(word: str, candidates: list[str]) -> list[str]:
    """The candidates that look like ``word`` (a typo), best first."""
    return difflib.get_close_matches(word, candidates, n=3, cutoff=0.6)


def _compose_without(overrides: list[str], bad: str) -> Any | None:
    """The config composed from ``overrides`` minus the offending ones (``bad`` key), or None if even that fails."""
    from hydra import compose, initialize_config_dir

    from qframe.app import conf_dir

    keep = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != bad]
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return compose(config_name="config", overrides=keep)
    except Exception:  # noqa: BLE001 - only used to list valid keys; the original error is reported either way
        return None


def unknown_key_message(full_key: str, value: str | None, overrides: list[str]) -> str:
    """``unknown key model.learnin_rate (model lightgbm); did you mean model.learning_rate? valid keys: ...``."""
    from omegaconf import DictConfig, OmegaConf

    cfg = _compose_without(overrides, full_key)
    parts = full_key.split(".")
    parent_path, node = "", cfg
    if cfg is not None:
        # the deepest existing node on the key's path: that is where the key would have to be
        for depth in range(len(parts) - 1, -1, -1):
            candidate = OmegaConf.select(cfg, ".".join(parts[:depth]), default=None) if depth else cfg
            if isinstance(candidate, DictConfig):
                parent_path, node = ".".join(parts[:depth]), candidate
                break
    prefix = f"{parent_path}." if parent_path else ""
    missing = parts[len(parent_path.split(".")) if parent_path else 0]
    valid = [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []
    owner = ""
    if isinstance(node, DictConfig) and isinstance(node.get("name"), str) and parent_path:
        owner = f" ({parent_path} {node.get('name')})"
    message = f"unknown key {prefix}{missing}{owner}"
    close = closest(missing, valid)
    if close:
        message += f": did you mean {' or '.join(prefix + c for c in close)}?"
    if valid:
        message += f"{' ' if close else '; '}valid keys: {', '.join(valid)}"
    if parent_path and parent_path.split(".")[0] in ("model", "strategy", "dataset") and value is not None:
        kind = parent_path.split(".")[0]
        message += f"; a parameter the {kind} takes that its config does not list: +{prefix}{missing}={value}"
    return message


def describe_hydra_error(exc: BaseException, overrides: list[str]) -> str | None:
    """One line for an error Hydra or OmegaConf raised while composing or resolving the config; None otherwise."""
    import yaml
    from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    cause = exc.__cause__
    if isinstance(exc, yaml.MarkedYAMLError):  # a config file that is not valid YAML, e.g. a key written twice
        mark = exc.problem_mark
        where = f"{mark.name} line {mark.line + 1}" if mark is not None else "a config file"
        problem = exc.problem or type(exc).__name__
        hint = (
            "; a mapping holds each key once (two stages of a pipeline need two names)"
            if "duplicate" in problem
            else ""
        )
        return f"cannot read {where}: {problem}{hint}"
    if isinstance(exc, MissingConfigException):
        text = str(exc)
        match = _MISSING_OPTION.search(text)
        options = re.findall(r"^\t(\S+)$", text.split("Config search path:")[0], flags=re.M)
        if match and options:
            group, _, option = match["path"].rpartition("/")
            hint = closest(option, options)
            also = f"; did you mean {hint[0]}?" if hint else ""
            return f"unknown {group} {option!r}{also}; valid options: {', '.join(options)}"
        return text.splitlines()[0]
    if isinstance(exc, ConfigCompositionException) and isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        full_key = getattr(cause, "full_key", None)
        if full_key and _NOT_IN_STRUCT.search(str(cause)):
            bad = next((o for o in overrides if o.split("=", 1)[0].lstrip("+~") == str(exc).split("'")[1]), None)
            key = str(exc).split("'")[1] if "'" in str(exc) else full_key
            value = bad.split("=", 1)[1] if bad and "=" in bad else None
            return unknown_key_message(key, value, overrides)
    multiple = _MULTIPLE_VALUES.match(str(exc))
    if multiple:
        group, option = multiple["group"], multiple["option"]
        return f"{group} is chosen already (by default or earlier on the command line): use {group}={option}, no '+'"
    if isinstance(exc, HydraException):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(cause, OmegaConfBaseException):
            first += f": {str(cause).strip().splitlines()[0]}"
        return first
    if isinstance(exc, OmegaConfBaseException):
        text = str(exc).strip().splitlines()
        key = getattr(exc, "full_key", None)
        return f"invalid config{f' at {key}' if key else ''}: {text[0] if text else type(exc).__name__}"
    return None
