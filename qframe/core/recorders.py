"""The ``recorders`` config list: made before a run starts, called with its result when it has finished."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qframe.core.contracts import Recorder
from qframe.core.errors import ConfigError
from qframe.core.registry import Registry


def make_recorders(registry: Registry, specs: Iterable[Any] | None) -> list[tuple[str, Recorder]]:
    """(name, recorder) of each entry: a registered name or ``{name: ..., <params>}``."""
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
        out.append((name, registry.create("recorder", name, config_key=f"recorders[{i}]", **params)))
    return out


def run_recorders(recorders: list[tuple[str, Recorder]], result: Any, cfg: dict[str, Any]) -> None:
    """Call each recorder with the finished run's result and its config, in order."""
    for _name, recorder in recorders:
        recorder(result, cfg)
