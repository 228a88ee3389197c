"""Job configs for a sweep without recomposing Hydra's defaults tree for every job.

Hydra composes a job's config from scratch (search path, defaults tree, every YAML file): ~0.18 s a job here, most
of a trial's framework overhead. But the jobs of a sweep differ almost only in plain values (``model.lr=0.05``),
which Hydra applies after composition anyway. So the launcher's parent composes a *template* once per set of
structural overrides (config-group choices, ``hydra.*`` settings), and each job applies its value overrides to the
template with Hydra's own override code, giving the config Hydra itself would compose (a test checks they are
equal). A job applies them in its forked child, to the child's own copy-on-write copy: no copy is made.

That override code is private to Hydra (:mod:`qframe.launch.hydra_compat`): off the fast path every job is composed
in full by Hydra's public ``load_sweep_config``, as Hydra's basic launcher does.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Protocol

#: hydra overrides that only set values and are applied per job (the sweeper passes trial identity through them)
PER_JOB_HYDRA_PREFIX = "hydra.job.env_set."


class PlannedJob(Protocol):
    """A job whose config is ready to build."""

    def config(self, idx: int, in_place: bool = True) -> Any:
        """The config of job ``idx``. ``in_place``: may edit what it was built from (only in a forked child)."""


@dataclass
class TemplateJob:
    """A job's config, ready to build: the composed template plus the value overrides still to apply."""

    template: Any  # DictConfig composed by Hydra with the job's structural overrides
    values: list[Any]  # hydra Override objects applied on top, in command-line order
    overrides: list[Any]  # every override of the job, parsed, in command-line order
    master_hydra: list[str]  # the sweep's own hydra overrides (Hydra puts them first)

    def config(self, idx: int, in_place: bool = True) -> Any:
        """The job's config. ``in_place`` edits the template: only for a forked child, which owns its copy."""
        from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
        from omegaconf import open_dict, read_write

        cfg = self.template if in_place else copy.deepcopy(self.template)
        with read_write(cfg.hydra):
            ConfigLoaderImpl._apply_overrides_to_config(self.values, cfg)
            # what Hydra records of the job's overrides, as its full composition would
            task = [o for o in self.overrides if not o.is_hydra_override()]
            hydra = [o.input_line for o in self.overrides if o.is_hydra_override()]
            cfg.hydra.overrides.task = [o.input_line for o in task]
            cfg.hydra.overrides.hydra = self.master_hydra + hydra
            dirname = cfg.hydra.job.config.override_dirname
            cfg.hydra.job.override_dirname = get_overrides_dirname(
                overrides=task, kv_sep=dirname.kv_sep, item_sep=dirname.item_sep, exclude_keys=dirname.exclude_keys
            )
            with open_dict(cfg.hydra):
                cfg.hydra.job.id = idx
                cfg.hydra.job.num = idx
        return cfg


@dataclass
class ComposedJob:
    """A job whose config Hydra composes in full, with its public ``load_sweep_config`` (off the fast path)."""

    loader: Any  # Hydra's config loader
    master: Any  # the sweep's config
    overrides: list[str]

    def config(self, idx: int, in_place: bool = True) -> Any:
        """The config of job ``idx``, as Hydra's basic launcher composes it (a new one each call)."""
        from omegaconf import open_dict

        cfg = self.loader.load_sweep_config(self.master, list(self.overrides))
        with open_dict(cfg):
            cfg.hydra.job.id = idx
            cfg.hydra.job.num = idx
        return cfg


class JobComposer:
    """Plans job configs for ``master_config``'s sweep, composing each distinct structural template once
    (``fast_path``), or each job in full."""

    def __init__(self, config_loader: Any, master_config: Any, fast_path: bool = True) -> None:
        from omegaconf import OmegaConf

        self.loader = config_loader
        self.master = master_config
        self.fast_path = fast_path
        self.master_hydra: list[str] = list(OmegaConf.to_container(master_config.hydra.overrides.hydra))
        self.templates: dict[tuple[str, ...], Any] = {}
        self._parser: Any = None
        self._parsed: dict[str, tuple[Any, bool]] = {}

    def plan(self, overrides: list[str]) -> PlannedJob:
        """Parse ``overrides``, compose (or reuse) the template of their structural part; off the fast path, the
        job as it is, to compose when it is built."""
        if not self.fast_path:
            return ComposedJob(self.loader, self.master, list(overrides))
        parsed = [self._parse(line) for line in overrides]
        structural = tuple(o.input_line for o, is_structural in parsed if is_structural)
        template = self.templates.get(structural)
        if template is None:
            template = self.loader.load_sweep_config(self.master, list(structural))
            self.templates[structural] = template
        values = [o for o, is_structural in parsed if not is_structural]
        return TemplateJob(template, values, [o for o, _ in parsed], self.master_hydra)

    def _parse(self, line: str) -> tuple[Any, bool]:
        """(the parsed override, whether it is structural); a sweep's fixed overrides repeat in every job, so each
        distinct line is parsed (ANTLR, ~0.3 ms) and classified once."""
        known = self._parsed.get(line)
        if known is None:
            if self._parser is None:
                from hydra.core.override_parser.overrides_parser import OverridesParser

                self._parser = OverridesParser.create()
            override = self._parser.parse_overrides([line])[0]
            known = self._parsed[line] = (override, self._structural(override))
        return known

    def _structural(self, override: Any) -> bool:
        """True for what changes composition itself: config groups, ``hydra.*`` settings, packages, adds of groups."""
        key = override.key_or_group
        if override.package is not None or override.is_sweep_override():
            return True
        if override.is_hydra_override():
            return not key.startswith(PER_JOB_HYDRA_PREFIX)
        if override.is_add() and "." not in key:
            return True  # `+group=option` of a group Hydra knows only through its search path
        return key in self.master.hydra.runtime.choices or self.loader.repository.group_exists(key)
