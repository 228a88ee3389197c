"""The sweep and its Hydra config: the objective and search space it reads from it, the changes it makes to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qframe.core.errors import ConfigError
from qframe.tuning.settings import SweepSettings
from qframe.tuning.space import Space, combine


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
