"""A component from its config section: a registered name, or Hydra's ``_target_`` for an ad-hoc one.

``{name: ridge, alpha: 1}`` makes the registered ``ridge`` with ``alpha=1``; ``{_target_: my_pkg.MyModel, alpha: 1}``
imports ``my_pkg.MyModel`` and calls it with ``alpha=1``. Either way the product is checked against the kind's
contract (:mod:`qframe.core.contracts`) before any data is read. Unlike Hydra's ``instantiate``, nested sections
are passed as plain values (not instantiated) and ``_args_``/``_partial_``/``_recursive_``/``_convert_`` are refused.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from typing import Any

from qframe.core import contracts
from qframe.core.errors import ConfigError
from qframe.core.registry import Registry, instantiate

TARGET = "_target_"


def build_component(registry: Registry, kind: str, section: Any, key: str) -> tuple[str, Any]:
    """(name, component) of the config section at ``key``: a registered name, ``{name: ..., <params>}`` or
    ``{_target_: module.Name, <params>}``; the name of a ``_target_`` component is its dotted path."""
    if isinstance(section, str):
        section = {"name": section}
    if not isinstance(section, Mapping) or not (section.get("name") or section.get(TARGET)):
        got = f"keys {', '.join(map(str, section))}" if isinstance(section, Mapping) else repr(section)
        raise ConfigError(
            f"{key} must be a {kind} name, {{name: <{kind}>, <params>}} or {{{TARGET}: <module.Name>, <params>}} "
            f"(got {got}); valid {kind} names: {', '.join(registry.names(kind)) or '(none installed)'}"
        )
    params = dict(section)
    name, target = params.pop("name", None), params.pop(TARGET, None)
    if name and target:
        raise ConfigError(
            f"{key} sets both name={name!r} and {TARGET}={target!r}; keep one (to replace a config group's "
            f"section: '~{key}' '+{key}={{{TARGET}:{target},...}}')"
        )
    if name:
        return name, registry.create(kind, name, config_key=key, **params)
    unsupported = sorted(k for k in params if str(k).startswith("_") and str(k).endswith("_"))
    if unsupported:
        raise ConfigError(
            f"{key}.{unsupported[0]} is not supported: qframe calls {key}.{TARGET} with the section's other keys "
            "as keyword arguments, nothing more"
        )
    factory = locate(str(target), f"{key}.{TARGET}")
    owner = f"{kind} {target!r} ({key}.{TARGET})"
    problems = contracts.check_registered(kind, factory)  # a class is checked before it is called
    if problems:
        raise contracts.breach(owner, kind, problems)
    return str(target), contracts.require(kind, instantiate(factory, params, f"{kind} {target!r}", key), owner)


def component_name(section: Any) -> str | None:
    """What a config section calls its component: its ``name``, or its ``_target_`` path (for logs and tables)."""
    if isinstance(section, Mapping):
        return section.get("name") or section.get(TARGET)
    return section if isinstance(section, str) else None


def locate(path: str, key: str) -> Any:
    """The object a dotted path names (``pkg.module.Class``, ``pkg.module.Class.factory``); a ConfigError naming
    ``key`` and the import problem if there is none."""
    parts = path.split(".")
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise ConfigError(f"{key}={path!r} is not a dotted path module.Name (e.g. my_package.models.MyModel)")
    module, depth = None, len(parts) - 1
    while module is None:
        module_name = ".".join(parts[:depth])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # the path's own module (or a package of it) is missing: a shorter prefix may be the module
            # (``pkg.module.Class.factory``); a module missing inside the user's code is their error
            own = {".".join(parts[:k]) for k in range(1, depth + 1)}
            if depth > 1 and exc.name in own:
                depth -= 1
                continue
            raise ConfigError(f"{key}={path!r}: cannot import {module_name}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - whatever the user's module raises on import is their one line
            raise ConfigError(f"{key}={path!r}: importing {module_name} failed: {type(exc).__name__}: {exc}") from None
    obj: Any = module
    for i, attr in enumerate(parts[depth:], start=depth):
        if not hasattr(obj, attr):
            owner = ".".join(parts[:i])
            public = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(attr, public, n=1)
            hint = f"; did you mean {owner}.{close[0]}?" if close else ""
            raise ConfigError(f"{key}={path!r}: {owner} has no attribute {attr!r}{hint}")
        obj = getattr(obj, attr)
    if not callable(obj):
        raise ConfigError(f"{key}={path!r} is a {type(obj).__name__}, not a class or factory function")
    return obj
