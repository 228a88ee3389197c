"""The sweep and its Hydra config: the objective and search space it reads from it, the changes it makes to it."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

from qframe.core.errors import ConfigError
from qframe.tuning.settings import SweepSettings
from qframe.tuning.space import Space, combine, format_value


def use_sweep_config(config: Any) -> None:
    """Resolve ``${hydra:...}`` interpolations (sweep dir, workdir) against the sweep's own config."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(config)


def move_sweep_dir(config: Any, sweep_dir: Path) -> None:
    """Point the sweep (and the jobs Hydra composes from its overrides) at ``sweep_dir``."""
    from omegaconf import open_dict, read_write

    # HydraConfig marks the hydra node read-only
    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.sweep.dir = str(sweep_dir)
        with read_write(config.hydra.overrides.hydra):
            config.hydra.overrides.hydra.append(f"hydra.sweep.dir={sweep_dir}")
    use_sweep_config(config)


def sweep_objective(config: Any, settings: SweepSettings) -> tuple[str | None, list[str]]:
    """The objective's name, and the override that selects it in every trial (for ``hydra.sweeper.objective``)."""
    from omegaconf import OmegaConf

    has_key = OmegaConf.select(config, "objective", default=None) is not None
    name = settings.objective or (OmegaConf.select(config, "objective") if has_key else None)
    if has_key and name is not None:
        from qframe.core.workflow import metric_names

        if name not in metric_names():
            raise ConfigError(
                f"hydra.sweeper.objective={name!r} is not a metric a run records; "
                f"valid options: {', '.join(metric_names())}"
            )
    return name, ([f"objective={name}"] if settings.objective and has_key else [])


def search_space(settings: SweepSettings, arguments: list[str], objective_override: list[str]) -> Space:
    """The space of ``settings.spaces``, ``settings.params`` and the sweep ``arguments``; every other argument, and
    ``objective_override``, fixed."""
    from omegaconf import OmegaConf

    params = settings.params
    if params is not None and not isinstance(params, dict):
        params = OmegaConf.to_container(params, resolve=False)
    space = combine(named_spaces(list(settings.spaces or [])), params, arguments)
    if objective_override:  # hydra.sweeper.objective replaces an `objective=` argument (else that one reaches trials)
        space.fixed = [f for f in space.fixed if not f.startswith("objective=")] + objective_override
    return space


def check_space_keys(config: Any, space: Space) -> None:
    """Refuse a searched key the sweep's composed config does not have, before any trial (each trial would fail on
    it); the error names the closest keys. ``+key``/``++key`` add a key and are left to the trial (a component
    checks its own parameters); a key under a searched config group may exist only in the group's other options."""
    searched = {param.key for param in space.params}
    for param in space.params:
        key = param.key
        if key.startswith(("+", "~")) or "@" in key or any(key.startswith(f"{other}.") for other in searched):
            continue
        if _has_key(config, key):
            continue
        raise ConfigError(
            f"search space key {key} is not in the config; closest valid keys: {', '.join(closest_keys(config, key))}; "
            f"fix the key, or add a new key with ++{key}=..."
        )


def _has_key(config: Any, key: str) -> bool:
    """Whether the dotted ``key`` is in ``config``, a ``???`` (missing) value included; what cannot be told (an
    interpolated or list node on the way) counts as there: the trial will say."""
    from omegaconf import DictConfig

    node = config
    for part in key.split("."):
        if not isinstance(node, DictConfig):
            return True
        if part not in node.keys():
            return False
        try:
            node = node[part]
        except Exception:  # noqa: BLE001 - a missing or unresolvable value: the key itself is there
            return True
    return True


def closest_keys(config: Any, key: str) -> list[str]:
    """The config's dotted keys most like ``key``; none alike: the keys at the deepest level of ``key`` that
    exists."""
    from omegaconf import DictConfig, OmegaConf

    def paths(node: DictConfig, prefix: str) -> list[str]:
        out = []
        for name, value in node.items_ex(resolve=False):
            if not prefix and name == "hydra":
                continue
            out.append(f"{prefix}{name}")
            if isinstance(value, DictConfig):
                out += paths(value, f"{prefix}{name}.")
        return out

    close = difflib.get_close_matches(key, paths(config, ""), n=3, cutoff=0.6)
    if close:
        return close
    parent = key
    while parent:
        parent = parent.rpartition(".")[0]
        node = OmegaConf.select(config, parent, default=None) if parent else config
        if isinstance(node, DictConfig):
            prefix = f"{parent}." if parent else ""
            return sorted(prefix + str(k) for k in node.keys() if str(k) != "hydra")[:12]
    return []


def warn_constant_choices(space: Space) -> None:
    """One warning per searched key with a single value: it is a constant, searched for nothing."""
    for param in space.params:
        if param.kind == "choice" and len(param.values) == 1:
            print(
                f"qframe: warning: search space {param.key}={param.source} has one value, so it is a constant: "
                f"give it as a plain override ({param.key}={format_value(param.values[0])})",
                file=sys.stderr,
            )


def named_spaces(names: list[str]) -> list[dict]:
    """The registered search spaces ``names`` (``hydra.sweeper.spaces``), each checked against its contract."""
    from qframe.core.registry import get_registry

    registry = get_registry()
    out = []
    for name in names or []:
        try:
            item = registry.get("search_space", name)
        except ConfigError as exc:
            raise ConfigError(f"hydra.sweeper.spaces: {exc}") from None
        space = item.obj() if callable(item.obj) else item.obj
        out.append(dict(space))
    return out
