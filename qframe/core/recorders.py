"""The ``recorders`` config list: made before a run starts, called with its result when it has finished."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qframe.core.components import build_component
from qframe.core.contracts import Recorder
from qframe.core.registry import Registry


def make_recorders(registry: Registry, specs: Iterable[Any] | None) -> list[tuple[str, Recorder]]:
    """(name, recorder) of each entry: a registered name, ``{name: ..., <params>}`` or ``{_target_: ..., <params>}``."""
    return [build_component(registry, "recorder", spec, f"recorders[{i}]") for i, spec in enumerate(specs or [])]


def run_recorders(recorders: list[tuple[str, Recorder]], result: Any, cfg: dict[str, Any]) -> None:
    """Call each recorder with the finished run's result and its config, in order."""
    for _name, recorder in recorders:
        recorder(result, cfg)
