"""A multi-stage tuning pipeline (``hydra.sweeper.stages``): its stages, checked as a whole before any trial, and
the order they may run in.

A stage is a search of its own (fixed overrides, a search space, ``n_trials``, an objective and direction) that
starts from the base config, from an earlier stage's best trial (``from: <stage>``: that trial's settings become
fixed overrides of every trial), or from the global best of the stages declared before it (``from: best``). A stage
that searches and sets only ``strategy.*`` / ``evaluation.*`` keys and starts from another stage *re-evaluates*
that stage's best trial's predictions: its trials get ``from_run=<that trial's run>`` and fit no model.

Everything here runs before any trial: a bad pipeline is one :class:`ConfigError` line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from qframe.core.errors import ConfigError
from qframe.tuning.settings import DIRECTIONS, STAGE_FIELDS, SweepSettings
from qframe.tuning.space import flatten_params

#: ``from: best``: the global best of the stages declared before this one
BEST = "best"
#: what a stage that re-evaluates predictions may set: the rest (model, handler, data, segments) needs a refit
REEVALUATED = ("strategy", "evaluation")
#: what a re-evaluation takes from its source run, never from the command line (qframe.core.reuse.ADOPTED)
ADOPTED = ("model", "handler")
#: what a re-evaluation must leave as its source had it: changing it changes the predictions
REFIT = ("model", "handler", "dataset", "segments", "from_run")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


@dataclass
class Stage:
    """One stage of a pipeline, as declared (``source``: its ``from``)."""

    name: str
    overrides: list[str] = field(default_factory=list)
    spaces: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    n_trials: int = 20
    objective: str | None = None
    direction: str = "maximize"
    source: str | None = None
    index: int = 0  # its place in the declaration order
    depends: list[str] = field(default_factory=list)  # the stages it waits for
    reevaluates: bool = False  # its trials re-evaluate the source trial's predictions (from_run), no fit

    def definition(self) -> dict[str, Any]:
        """What defines the stage (a finished stage whose definition changed is not resumed)."""
        return {
            "overrides": list(self.overrides),
            "spaces": list(self.spaces),
            "params": {k: str(v) for k, v in self.params.items()},
            "n_trials": int(self.n_trials),
            "objective": self.objective,
            "direction": self.direction,
            "from": self.source,
        }

    def settings(self, base: SweepSettings) -> SweepSettings:
        """The single sweep's settings of this stage."""
        from dataclasses import replace

        return replace(
            base,
            n_trials=int(self.n_trials),
            objective=self.objective,
            direction=self.direction,
            spaces=list(self.spaces),
            params=dict(self.params) or None,
            stages=None,
            resume=False,
            # each stage draws its own points (the same seed would make every stage's k-th draw the same quantile);
            # the first stage draws what a single sweep with this seed draws
            seed=int(base.seed) + 1000 * self.index,
        )


@dataclass
class Pipeline:
    """The stages in declaration order; :meth:`order` is an order they can run in."""

    stages: dict[str, Stage]
    objective: str | None
    direction: str

    def order(self) -> list[str]:
        """Every stage after those it depends on, otherwise in declaration order."""
        done: list[str] = []
        while len(done) < len(self.stages):
            done.append(next(n for n, s in self.stages.items() if n not in done and set(s.depends) <= set(done)))
        return done

    def compared(self, stage: Stage) -> bool:
        """Whether ``stage``'s best takes part in the global best: it optimises the pipeline's objective the same
        way (a best of another metric is not comparable)."""
        return stage.objective == self.objective and stage.direction == self.direction


def override_key(line: str) -> str:
    """The key an override sets (``++model.x=1`` -> ``model.x``; ``model=mlp`` -> ``model``)."""
    return line.split("=", 1)[0].lstrip("+~").split("@", 1)[0]


def _section(key: str) -> str:
    return key.split(".", 1)[0]


def _plain(value: Any) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=False)
    return value


def parse_pipeline(settings: SweepSettings, arguments: list[str], config_objective: str | None) -> Pipeline:
    """The pipeline ``hydra.sweeper.stages`` declares, checked as a whole: names, fields, ``from`` (known, earlier
    for ``best``, no cycle), a search space per stage, re-evaluating stages that need no refit. ``arguments``: the
    command line's overrides (fixed for every trial; a sweep argument is refused: spaces are the stages' own)."""
    raw = _plain(settings.stages)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(
            "hydra.sweeper.stages must be a non-empty mapping {name: stage}, e.g. "
            "{lightgbm: {overrides: [model=lightgbm], spaces: [lightgbm], n_trials: 20}}"
        )
    if settings.spaces or settings.params:
        raise ConfigError(
            "hydra.sweeper.spaces/params are a single sweep's: with hydra.sweeper.stages give each stage its own "
            "(hydra.sweeper.stages.<name>.spaces or .params)"
        )
    swept = [a for a in arguments if _is_sweep(a)]
    if swept:
        raise ConfigError(
            f"sweep argument {swept[0]} with hydra.sweeper.stages: a pipeline's search spaces are its stages' own; "
            f"put it in a stage's params (hydra.sweeper.stages.<name>.params)"
        )
    objective = settings.objective or config_objective
    stages: dict[str, Stage] = {}
    for name, doc in raw.items():
        stages[str(name)] = _stage(str(name), doc, settings, objective, list(stages))
    _check_cycles(stages)
    pipeline = Pipeline(stages, objective, settings.direction)
    for stage in stages.values():
        _check_reevaluation(stage, stages, arguments)
    return pipeline


def _is_sweep(argument: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_override(argument).is_sweep_override()
    except Exception:  # noqa: BLE001 - a malformed argument: Hydra's own composition of the trials says so
        return False


def _stage(name: str, doc: Any, settings: SweepSettings, objective: str | None, earlier: list[str]) -> Stage:
    where = f"hydra.sweeper.stages.{name}"
    if not _NAME.fullmatch(name) or name == BEST:
        raise ConfigError(
            f"{where}: bad stage name {name!r}; a name is letters, digits, _ and - (starting with a letter), "
            f"and not {BEST!r} (from: {BEST} means the global best)"
        )
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{where} must be a mapping of {', '.join(STAGE_FIELDS)}, got {doc!r}")
    unknown = sorted(set(doc) - set(STAGE_FIELDS))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]} is not a stage field; valid fields: {', '.join(STAGE_FIELDS)}")
    overrides = doc.get("overrides") or []
    if isinstance(overrides, str):
        overrides = [overrides]
    if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
        raise ConfigError(f"{where}.overrides must be a list of key=value overrides, e.g. [model=mlp], got {overrides}")
    swept = [o for o in overrides if _is_sweep(o)]
    if swept:
        raise ConfigError(f"{where}.overrides: {swept[0]} is a search space; put it in {where}.params")
    spaces = doc.get("spaces") or []
    if isinstance(spaces, str):
        spaces = [spaces]
    params = doc.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{where}.params must be a mapping {{key: grammar}}, got {params!r}")
    if not spaces and not params:
        raise ConfigError(
            f"{where} has no search space: give it spaces (e.g. [lightgbm], see `qframe plugins`) or params "
            "({key: grammar})"
        )
    try:
        n_trials = int(doc.get("n_trials", 20))
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.n_trials must be an integer >= 1, got {doc.get('n_trials')!r}") from None
    if n_trials < 1:
        raise ConfigError(f"{where}.n_trials must be >= 1, got {n_trials}")
    direction = doc.get("direction") or settings.direction
    if direction not in DIRECTIONS:
        raise ConfigError(f"{where}.direction={direction!r}; valid options: {', '.join(DIRECTIONS)}")
    source = doc.get("from")
    if source is not None:
        source = str(source)
        if source == name:
            raise ConfigError(f"{where}.from={source}: a stage cannot start from itself")
        if source == BEST and not earlier:
            raise ConfigError(
                f"{where}.from=best: no stage is declared before {name}, so there is no best to start from; "
                "declare the stages it should start from before it, or use from: null"
            )
    stage = Stage(
        name,
        list(overrides),
        [str(s) for s in spaces],
        dict(params),
        n_trials,
        doc.get("objective") or objective,
        direction,
        source,
    )
    stage.index = len(earlier)
    stage.depends = list(earlier) if source == BEST else ([source] if source else [])
    return stage


def _check_cycles(stages: dict[str, Stage]) -> None:
    """Refuse an unknown ``from`` and a cycle of ``from``s (naming its stages)."""
    for stage in stages.values():
        if stage.source not in (None, BEST) and stage.source not in stages:
            raise ConfigError(
                f"hydra.sweeper.stages.{stage.name}.from={stage.source}: no such stage; valid options: null, best, "
                f"{', '.join(n for n in stages if n != stage.name)}"
            )
    for start in stages:
        path, name = [start], stages[start].source
        while name not in (None, BEST):
            if name in path:
                cycle = " -> ".join([*path[path.index(name) :], name])
                raise ConfigError(f"hydra.sweeper.stages: the stages' from form a cycle ({cycle}); break it")
            path.append(name)
            name = stages[name].source


def _check_reevaluation(stage: Stage, stages: dict[str, Stage], arguments: list[str]) -> None:
    """Mark a stage that re-evaluates predictions; refuse one that would need a refit to do so."""
    from qframe.tuning.sweep_config import named_spaces

    where = f"hydra.sweeper.stages.{stage.name}"
    searched = [k.lstrip("+~") for space in named_spaces(stage.spaces) for k in space]
    searched += [k.lstrip("+~") for k in flatten_params(stage.params)]
    if not searched or not all(_section(k) in REEVALUATED for k in searched):
        return  # it fits models: any override goes
    stage.reevaluates = stage.source is not None
    if stage.source is None:
        raise ConfigError(
            f"{where} searches only {'/'.join(k + '.*' for k in REEVALUATED)} but starts from the base config: give "
            f"it from: <stage> or from: best, so that it re-evaluates that stage's predictions instead of refitting "
            f"the base model in every trial"
        )
    refit = [o for o in stage.overrides if _section(override_key(o)) in REFIT]
    if refit:
        raise ConfigError(
            f"{where} re-evaluates the predictions of its from: stage (it searches only strategy/evaluation keys), "
            f"but its override {refit[0]} changes the model or the data, which needs a refit; move it to a stage "
            f"that fits a model, or search a model key in {stage.name}"
        )
    given = [a for a in arguments if _section(override_key(a)) in ADOPTED]
    if given:
        raise ConfigError(
            f"{given[0]} on the command line: stage {stage.name} re-evaluates recorded predictions (from_run), whose "
            f"model and handler are the source run's; set it in the overrides of the stages that fit models "
            f"(hydra.sweeper.stages.<name>.overrides)"
        )


def merge_fixed(*groups: list[str], searched: set[str] | None = None) -> list[str]:
    """Fixed overrides, one per key, a later group's winning; none for a ``searched`` key."""
    merged: dict[str, str] = {}
    for group in groups:
        for line in group:
            key = override_key(line)
            merged.pop(key, None)
            merged[key] = line
    return [line for key, line in merged.items() if key not in (searched or set())]


def carried(lines: list[str], reevaluates: bool, run_id: str | None) -> tuple[list[str], list[str]]:
    """(fixed overrides, adopted) of a stage starting from a trial whose settings are ``lines`` (its stage's own fixed
    overrides and searched values, with the model settings of the predictions it re-evaluated, if it did).

    A stage that fits models gets them all (``from_run`` aside: it refits). A re-evaluating stage gets
    ``from_run=<the trial's run>`` and what does not make predictions; the model and handler settings are the source
    run's (adopted: kept, for a later stage that refits from this one)."""
    lines = [line for line in lines if override_key(line) != "from_run"]
    if not reevaluates:
        return lines, []
    if run_id is None:
        raise ConfigError(
            "a re-evaluating stage needs its source trial's finished MLflow run: run the pipeline with "
            "hydra.sweeper.mlflow=true (and a tracked qframe task)"
        )
    adopted = [line for line in lines if _section(override_key(line)) in ADOPTED]
    kept = [line for line in lines if _section(override_key(line)) not in ADOPTED]
    return [*kept, f"from_run={run_id}"], adopted
