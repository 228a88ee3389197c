"""Search spaces: Hydra's extended override grammar -> hyperopt expressions, and sampled values -> overrides.

Grammar (``key=...`` as on the command line or in ``hydra.sweeper.params``):

* ``choice(a, b, c)`` or ``a,b,c``: one of the values (the value itself reaches the job, never an index)
* ``range(start, stop[, step])``: one of ``start, start+step, ...`` below ``stop`` (Hydra's meaning: stop excluded)
* ``interval(lo, hi)``: a float uniform in [lo, hi]; ``int(interval(lo, hi))``: an int in [lo, hi] (both ends included)
* ``tag(log, interval(lo, hi))``: log-uniform (float, or int under ``int(...)``); lo must be > 0
* anything else (``key=3``, ``~key``, ``+key=v``): a fixed override passed to every trial unchanged
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qframe.core.errors import ConfigError


@dataclass(frozen=True)
class Param:
    """One searched parameter."""

    key: str
    kind: str  # "choice", "uniform", "loguniform"
    values: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    integer: bool = False
    source: str = ""  # the grammar text it came from

    def hyperopt(self) -> Any:
        """The hyperopt expression sampling this parameter (labelled by its key)."""
        from hyperopt import hp

        if self.kind == "choice":
            return hp.choice(self.key, list(self.values))
        if self.kind == "uniform":
            if self.integer:
                # +-0.5 gives both ends the same probability as the inner integers after rounding
                return hp.uniform(self.key, self.low - 0.4999, self.high + 0.4999)
            return hp.uniform(self.key, self.low, self.high)
        return hp.loguniform(self.key, math.log(self.low), math.log(self.high))

    def cast(self, value: Any) -> Any:
        """A sampled value with its true Python type (no numpy scalars; ints rounded into range)."""
        if hasattr(value, "item"):
            value = value.item()
        if self.kind == "choice":
            return value
        if self.integer:
            return int(min(max(round(float(value)), int(self.low)), int(self.high)))
        return float(min(max(float(value), self.low), self.high))


@dataclass
class Space:
    """Searched parameters plus the fixed overrides every trial gets."""

    params: list[Param] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)

    def hyperopt(self) -> dict[str, Any]:
        return {p.key: p.hyperopt() for p in self.params}

    def signature(self) -> str:
        """A digest of the space: a resume against a different space is refused."""
        doc = {"params": {p.key: p.source for p in self.params}, "fixed": sorted(self.fixed)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> dict[str, str]:
        return {p.key: p.source for p in self.params}

    def overrides(self, values: Mapping[str, Any]) -> list[str]:
        """The override strings of one trial: the sampled values, then the fixed overrides."""
        return [f"{k}={format_value(v)}" for k, v in values.items()] + list(self.fixed)


def format_value(value: Any) -> str:
    """A Python value as Hydra override grammar (quoted when the plain text would parse differently)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_override(f"k={text}")
        if not parsed.is_sweep_override() and parsed.value() == text:
            return text
    except Exception:  # noqa: BLE001 - any parse failure just means "quote it"
        pass
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _param(key: str, text: str, override: Any) -> Param:
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    value = override.value()
    if isinstance(value, ChoiceSweep) or isinstance(value, RangeSweep):
        if isinstance(value, RangeSweep):
            values = list(override.sweep_iterator())
        else:
            values = list(value.list)
        if not values:
            raise ConfigError(f"search space {key}={text} has no values; give at least one")
        if any(isinstance(v, (dict, list)) for v in values):
            raise ConfigError(f"search space {key}={text}: choice values must be scalars (numbers, strings, bools)")
        return Param(key, "choice", values=tuple(values), source=text)
    if isinstance(value, IntervalSweep):
        low, high = value.start, value.end
        integer = isinstance(low, int) and isinstance(high, int)
        if not low < high:
            raise ConfigError(f"search space {key}={text}: interval needs low < high, got {low} and {high}")
        log = "log" in value.tags
        if log and low <= 0:
            raise ConfigError(f"search space {key}={text}: tag(log, ...) needs a positive lower bound, got {low}")
        unknown = set(value.tags) - {"log"}
        if unknown:
            raise ConfigError(f"search space {key}={text}: unknown tag(s) {sorted(unknown)}; the valid tag is log")
        return Param(key, "loguniform" if log else "uniform", low=low, high=high, integer=integer, source=text)
    raise ConfigError(
        f"search space {key}={text}: unsupported sweep; use choice(...), range(...), interval(...) "
        "or tag(log, interval(...))"
    )


def parse_space(entries: Mapping[str, Any] | list[str]) -> Space:
    """Build a :class:`Space` from ``{key: grammar}`` (or ``["key=grammar", ...]``); later keys win."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException, OverrideParseException

    items = [f"{k}={v}" for k, v in entries.items()] if isinstance(entries, Mapping) else list(entries)
    parser = OverridesParser.create()
    params: dict[str, Param] = {}
    fixed: dict[str, str] = {}
    for item in items:
        try:
            override = parser.parse_override(item)
        except (OverrideParseException, HydraException) as exc:
            first = str(exc).strip().splitlines()[0]
            raise ConfigError(
                f"malformed search space entry {item!r}: {first}; "
                "use choice(a,b), range(lo,hi[,step]), interval(lo,hi), tag(log, interval(lo,hi)), int(...)"
            ) from None
        key = override.get_key_element()
        text = item.split("=", 1)[1] if "=" in item else ""
        if override.is_sweep_override():
            fixed.pop(key, None)
            params[key] = _param(key, text, override)
        else:
            params.pop(key, None)
            fixed[key] = item
    return Space(list(params.values()), list(fixed.values()))


def _literal(value: Any) -> str:
    """A config value (from YAML) as grammar text: strings are grammar already, numbers become literals."""
    if isinstance(value, str):
        return value
    return format_value(value)


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"lr": g}}`` (``hydra.sweeper.params.model.lr=g`` on the command line) -> ``{"model.lr": g}``."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            out.update(flatten_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def combine(named: list[Mapping[str, Any]], params: Mapping[str, Any] | None, arguments: list[str]) -> Space:
    """Named spaces in order, then ``params``, then command-line sweep arguments; the later wins per key."""
    entries: list[str] = []
    for space in named:
        entries += [f"{k}={_literal(v)}" for k, v in space.items()]
    entries += [f"{k}={_literal(v)}" for k, v in flatten_params(params or {}).items()]
    entries += list(arguments)
    space = parse_space(entries)
    if not space.params:
        raise ConfigError(
            "the search space is empty: give hydra.sweeper.params, a named space (hydra.sweeper.spaces=[lightgbm]), "
            "a tuner (tuner=lightgbm) or sweep arguments such as 'model.learning_rate=interval(0.01,0.2)'"
        )
    return space
