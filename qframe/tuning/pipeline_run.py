"""Running a pipeline (``hydra.sweeper.stages``): every stage a single sweep of its own, in its own subdirectory,
on one launcher whose ``n_jobs`` slots the running stages share.

* A stage starts once the stages it starts from are finished; independent stages run side by side, their trials
  taking the free slots in turn. Each stage is what a single sweep is (:mod:`~qframe.tuning.sweep`): its state
  (``<sweep dir>/<stage>/sweep_state.json``, saved after every trial), the trial loop, the failure rules, the
  outputs (optimization_results.yaml, the trials table, the history plot), an MLflow run with its trials nested
  under it; the stages' runs are nested under the pipeline's own run.
* Job numbers are the pipeline's (no two jobs share one); a job's directory is ``<sweep dir>/<stage>/<job>``.
* ``pipeline_state.json`` records each stage's definition and status. Resumed, a finished stage is not run again
  (and must be unchanged, but for a larger ``n_trials`` where no finished stage started from it: then it
  continues, as a single sweep does), the interrupted one continues as a single sweep resumes, the rest start as
  usual.
* A stage that ends without a best trial (every trial failed, or too many: ``max_failure_rate``) stops the
  pipeline: no trial starts, the running ones end, every output is written, and one line names the stage.
* ``pipeline_results.yaml``: every stage's best and the global best (value, settings as overrides, stage, trial,
  the command that re-runs it); ``pipeline_history.png``: each stage's best so far against its trials
  (:mod:`~qframe.tuning.pipeline_outputs`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qframe.core.atomic import atomic_path
from qframe.core.errors import ConfigError, QFrameError
from qframe.tuning.pipeline import BEST, Pipeline, Stage, carried, merge_fixed, override_key, parse_pipeline
from qframe.tuning.pipeline_outputs import PIPELINE_PNG, PIPELINE_RESULTS, StageBest, report, write_results
from qframe.tuning.settings import SweepSettings
from qframe.tuning.space import Space
from qframe.tuning.state import STATE_FILE, SweepLock, SweepState, is_running, running_elsewhere

PIPELINE_STATE = "pipeline_state.json"
STAGE_TAG = "qframe.stage"


@dataclass
class PipelineState:
    """What a resumed pipeline needs besides its stages' own states: the command, each stage's definition and
    status (``pending``, ``running``, ``finished``, ``failed``), its MLflow run."""

    fixed: list[str]
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_id: str | None = None
    format: int = 1

    def save(self, path: Path) -> None:
        with atomic_path(path, durable=True) as tmp:
            tmp.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> PipelineState:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot resume from {path}: the pipeline state is unreadable ({exc})") from None


@dataclass
class _Running:
    """A started stage: its single sweep's parts."""

    stage: Stage
    settings: SweepSettings
    space: Space
    state: SweepState
    path: Path
    loop: Any
    tracking: Any
    objective: str | None
    own_fixed: list[str]
    adopted: list[str]


class PipelineSweep:
    """The pipeline of ``sweep``'s settings (a :class:`qframe.tuning.sweep.HyperoptSweep` with ``stages``)."""

    def __init__(self, sweep: Any) -> None:
        self.sweep = sweep
        self.settings: SweepSettings = sweep.settings
        self.config = sweep.config
        self.bests: dict[str, StageBest] = {}
        self.pipeline: Pipeline | None = None
        self.arguments: list[str] = []
        self.console: Any = None
        self._active: dict[str, _Running] = {}  # the stages running now

    # ------------------------------------------------------------------------------------------------ set-up
    def run(self, arguments: list[str]) -> None:
        from omegaconf import OmegaConf
        from rich.console import Console

        from qframe.tuning.sweep_config import sweep_objective, use_sweep_config

        self.console = Console(highlight=False)
        self.settings.check()
        use_sweep_config(self.config)
        self.config_objective = config_objective = OmegaConf.select(self.config, "objective", default=None)
        objective, _ = sweep_objective(self.config, self.settings)
        self.arguments = [a for a in arguments if not override_key(a).startswith("hydra.")]
        self.pipeline = pipeline = parse_pipeline(self.settings, self.arguments, config_objective)
        self.objective = objective
        for stage in pipeline.stages.values():
            self._space(stage)  # each stage's space parses and its objective is a metric, before any trial
        if any(s.reevaluates for s in pipeline.stages.values()):
            from qframe.tuning.mlflow_parent import tracking_target

            if tracking_target(self.config, self.settings) is None:
                name = next(n for n, s in pipeline.stages.items() if s.reevaluates)
                raise ConfigError(
                    f"stage {name} re-evaluates recorded predictions (from_run), which needs the trials' MLflow runs: "
                    "drop hydra.sweeper.mlflow=false"
                )
        sweep_dir = self._choose_dir(Path(str(self.config.hydra.sweep.dir)))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        lock = SweepLock(sweep_dir)
        try:
            state_path = sweep_dir / PIPELINE_STATE
            state = PipelineState.load(state_path) if state_path.is_file() else PipelineState(list(self.arguments))
            self._check_resumable(state, sweep_dir)
            if self._nothing_to_do(state, sweep_dir):
                return
            if sweep_dir != Path(str(self.config.hydra.sweep.dir)):
                from qframe.tuning.sweep_config import move_sweep_dir

                move_sweep_dir(self.config, sweep_dir)
            self.sweep.running_in = sweep_dir
            self._run(state, state_path, sweep_dir)
        finally:
            lock.release()

    def _space(self, stage: Stage, fixed: list[str] | None = None) -> Space:
        """The stage's search space; its fixed overrides ``fixed`` (the command line's, its ``from``'s, its own)."""
        from qframe.tuning.space import combine
        from qframe.tuning.sweep_config import named_spaces, sweep_objective

        settings = stage.settings(self.settings)
        sweep_objective(self.config, settings)  # a metric a run records
        # the stage's own objective reaches its trials (the config's is theirs already)
        objective_override = [f"objective={stage.objective}"] if stage.objective != self.config_objective else []
        try:
            space = combine(named_spaces(list(stage.spaces)), stage.params, [])
        except ConfigError as exc:
            raise ConfigError(f"hydra.sweeper.stages.{stage.name}: {exc}") from None
        searched = {p.key.lstrip("+~") for p in space.params}
        base = fixed if fixed is not None else [*self.arguments, *stage.overrides]
        space.fixed = merge_fixed(base, objective_override, searched=searched)
        return space

    def _choose_dir(self, sweep_dir: Path) -> Path:
        """This sweep dir, or with ``resume=true`` the newest unfinished pipeline of this command (its command-line
        overrides) under the sweeps root."""
        if (sweep_dir / PIPELINE_STATE).is_file() or not self.settings.resume:
            if is_running(sweep_dir):
                raise ConfigError(running_elsewhere(sweep_dir))
            return sweep_dir
        from qframe.tuning.resume import sweeps_root

        root, pattern = sweeps_root(self.config, sweep_dir)
        found = []
        for path in root.glob(pattern.replace(STATE_FILE, PIPELINE_STATE)):
            try:
                state = PipelineState.load(path)
            except ConfigError:
                continue
            if sorted(state.fixed) == sorted(self.arguments) and not is_running(path.parent):
                finished = (path.parent / PIPELINE_RESULTS).is_file() and all(
                    s.get("status") == "finished" for s in state.stages.values()
                )
                found.append((finished, -path.stat().st_mtime, path.parent))
        if not found:
            raise ConfigError(
                f"hydra.sweeper.resume=true but no pipeline of this command to continue under {root}; run it "
                "without hydra.sweeper.resume=true to start a new one, or give its directory with hydra.sweep.dir=<dir>"
            )
        return sorted(found)[0][2]

    def _check_resumable(self, state: PipelineState, sweep_dir: Path) -> None:
        """Refuse to resume a pipeline of another command, or whose finished stage's definition changed."""
        where = f"cannot resume the pipeline in {sweep_dir}"
        if sorted(state.fixed) != sorted(self.arguments):
            raise ConfigError(
                f"{where}: it was made with the overrides {' '.join(state.fixed) or '(none)'}, this command has "
                f"{' '.join(self.arguments) or '(none)'}; use a new hydra.sweep.dir or the same command"
            )
        for name, record in state.stages.items():
            # a failed stage may change (more trials, to continue it); a change of its space is refused as a
            # single sweep's is, when it resumes
            if record.get("status") != "finished":
                continue
            stage = self.pipeline.stages.get(name)
            if stage is None:
                raise ConfigError(
                    f"{where}: its stage {name} is {record['status']} and this command has no stage {name}; use a "
                    "new hydra.sweep.dir or the same stages"
                )
            old, new = record.get("definition") or {}, stage.definition()
            changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in new if old.get(k) != new.get(k)]
            if not changed:
                continue
            what = f"{where}: stage {name} is {record['status']} and its definition changed ({'; '.join(changed)})"
            after = [n for n in self._downstream(name) if state.stages.get(n, {}).get("status") == "finished"]
            if [k for k in new if old.get(k) != new.get(k)] == ["n_trials"] and int(new["n_trials"]) > int(
                old.get("n_trials") or 0
            ):
                if not after:  # more trials for a finished stage nothing finished started from: it continues
                    record["status"] = "pending"
                    continue
                raise ConfigError(
                    f"{what}; stage {', '.join(after)} started from it and finished, so more trials of {name} could "
                    f"change what that started from: use a new hydra.sweep.dir (or raise the n_trials of a last stage)"
                )
            raise ConfigError(f"{what}; use a new hydra.sweep.dir, or the stage's definition as it was")

    def _downstream(self, name: str) -> list[str]:
        """The stages that start, directly or not, from stage ``name``'s results, in pipeline order."""
        found: set[str] = set()
        grew = True
        while grew:
            grew = False
            for other, stage in self.pipeline.stages.items():
                if other not in found and (name in stage.depends or found & set(stage.depends)):
                    found.add(other)
                    grew = True
        return [n for n in self.pipeline.order() if n in found]

    def _nothing_to_do(self, state: PipelineState, sweep_dir: Path) -> bool:
        stages = self.pipeline.stages
        if not (sweep_dir / PIPELINE_RESULTS).is_file():
            return False
        if not all(state.stages.get(n, {}).get("status") == "finished" for n in stages):
            return False
        doc = yaml.safe_load((sweep_dir / PIPELINE_RESULTS).read_text()) or {}
        best = doc.get("global_best") or {}
        value = f"{best['value']:.6g}" if isinstance(best.get("value"), float) else "-"
        self.console.print(
            f"pipeline {sweep_dir} is already finished: {len(stages)} stages; global best {value} (stage "
            f"{best.get('stage')}, trial {best.get('trial')}); nothing to do",
            soft_wrap=True,
        )
        if best.get("command"):
            from rich.markup import escape

            self.console.print(f"re-run: {escape(best['command'])}", soft_wrap=True)
        return True

    # ------------------------------------------------------------------------------------------------ the run
    def _run(self, state: PipelineState, state_path: Path, sweep_dir: Path) -> None:
        from omegaconf import OmegaConf

        from qframe.tuning.launching import start_launcher
        from qframe.tuning.optimizer import resolve_backend

        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        pipeline = self.pipeline
        for name, stage in pipeline.stages.items():
            record = state.stages.setdefault(name, {"status": "pending"})
            if record.get("status") != "finished":
                record["definition"] = stage.definition()
        state.stages = {n: state.stages[n] for n in pipeline.stages} | {
            n: r for n, r in state.stages.items() if n not in pipeline.stages
        }
        self.algorithm = resolve_backend(self.settings.algo, self.settings.n_startup_trials)
        union = Space([p for name in pipeline.stages for p in self._space(pipeline.stages[name]).params], [])
        self.launch = start_launcher(
            self.sweep.hydra_context, self.sweep.task_function, self.config, self.settings, union
        )
        self.tracking = self._start_pipeline_run(state, sweep_dir)
        state.save(state_path)
        self.jobs = [1 + max((_max_job(sweep_dir / n) for n in pipeline.stages), default=-1)]
        total = sum(int(s.n_trials) for s in pipeline.stages.values())
        order = pipeline.order()
        self.console.print(
            f"pipeline of {len(order)} stages ({' -> '.join(order)}), {total} trials in all, "
            f"{self.launch.slots} at a time -> {sweep_dir}",
            soft_wrap=True,
        )
        for line in self.launch.start_lines():  # threads, memory and GPUs of each trial
            self.console.print(line, soft_wrap=True)
        failed: str | None = None
        status = "FINISHED"
        try:
            failed = self._schedule(state, state_path, sweep_dir, order)
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            # stages still running (interrupted, or stopped with a failed one): saved, resumable
            why = "interrupted" if status == "KILLED" else f"the pipeline stopped: {failed}"
            for running in list(self._active.values()):
                running.state.save(running.path)
                self._end_stage(running, state, state_path, "KILLED", why)
            write_results(sweep_dir, self.pipeline, state.stages, self.bests, self._global_best(), failed)
            self._finish_pipeline_run(sweep_dir, status if not failed else "FAILED")
            state.save(state_path)
        report(self.console, sweep_dir, self.pipeline, self.bests, self._global_best(), failed)
        if failed:
            raise QFrameError(f"{failed}; results so far are in {sweep_dir}")

    def _next_job(self) -> int:
        job = self.jobs[0]
        self.jobs[0] += 1
        return job

    def _schedule(self, state: PipelineState, state_path: Path, sweep_dir: Path, order: list[str]) -> str | None:
        """Start every stage whose sources are done, share the slots among the running ones, end each when its
        trials are done; the first stage that fails stops the pipeline (returned: why)."""
        from qframe.core.scratch import remove_orphans

        failed: str | None = None
        submitter = self.launch.asynchronous
        by_job: dict[int, _Running] = {}
        try:
            while True:
                if failed is None:
                    failed = self._start_ready(state, state_path, sweep_dir, order)
                if failed is None and submitter is None:  # a batch launcher: one stage at a time, in order
                    for name in list(self._active):
                        running = self._active[name]
                        stopped = running.loop.run()
                        failed = self._end_stage(
                            running, state, state_path, "FAILED" if stopped else "FINISHED", stopped
                        )
                        if failed:
                            break
                    if failed or all(state.stages[n]["status"] == "finished" for n in order):
                        return failed
                    continue
                # the free slots, in turn to each running stage that has a trial to start
                started = True
                while failed is None and started and len(by_job) < int(self.settings.n_jobs):
                    started = False
                    for running in list(self._active.values()):
                        if len(by_job) < int(self.settings.n_jobs) and running.loop.can_start():
                            trial = running.loop.start(submitter)
                            by_job[trial.job] = running
                            started = True
                for running in [r for r in self._active.values() if not r.loop.running and not r.loop.can_start()]:
                    stopped = _stop_reason(running)
                    why = self._end_stage(running, state, state_path, "FAILED" if stopped else "FINISHED", stopped)
                    failed = failed or why
                if not by_job:
                    if failed is not None or all(state.stages[n]["status"] == "finished" for n in order):
                        return failed
                    if not self._active:
                        continue  # a stage just ended: its dependents start
                for finished in submitter.wait():
                    by_job.pop(finished.idx).loop.finish(finished)
        finally:
            if submitter is not None:
                submitter.kill_all()
            remove_orphans()

    def _start_ready(self, state: PipelineState, state_path: Path, sweep_dir: Path, order: list[str]) -> str | None:
        """Start every pending stage whose sources are finished; a stage that fails at once (finished before without
        a best, or stopped) stops the pipeline (returned: why)."""
        for name in order:
            record = state.stages[name]
            stage = self.pipeline.stages[name]
            if name in self._active or name in self.bests:
                continue
            if not all(state.stages[d]["status"] == "finished" and d in self.bests for d in stage.depends):
                continue
            running = self._open_stage(stage, sweep_dir)
            from qframe.tuning.resume import StateChooser

            outcome = StateChooser(self.config, running.settings, running.space).outcome(
                running.state, running.path.parent
            )
            if outcome is not None:  # done in an earlier run of the pipeline, or stopped there for failures
                why = self._end_stage(running, state, state_path, None, _stop_reason(running), rerun=False)
                if why:
                    return why
                continue
            record["status"] = "running"
            state.save(state_path)
            self._active[name] = running
            self._start_stage(running)
        return None

    def _open_stage(self, stage: Stage, sweep_dir: Path) -> _Running:
        """The stage's space (with its ``from``'s best as fixed overrides), state and trial loop."""
        from qframe.tuning.optimizer import Optimizer
        from qframe.tuning.outputs import Progress
        from qframe.tuning.owners import stop_leftovers
        from qframe.tuning.resume import StateChooser, restore_history
        from qframe.tuning.sweep_config import sweep_objective
        from qframe.tuning.trials import TrialLoop

        settings = stage.settings(self.settings)
        objective, _ = sweep_objective(self.config, settings)
        inherited: list[str] = []
        adopted: list[str] = []
        if stage.source is not None:
            source = self._source_best(stage)
            run_id = self._trial_run(source) if stage.reevaluates else None
            inherited, adopted = carried([*source.adopted, *source.overrides], stage.reevaluates, run_id)
        own = merge_fixed(inherited, stage.overrides)
        space = self._space(stage, [*self.arguments, *own])
        searched = {p.key.lstrip("+~") for p in space.params}
        own = [line for line in own if override_key(line) not in searched]
        stage_dir = sweep_dir / stage.name
        stage_dir.mkdir(parents=True, exist_ok=True)
        path = stage_dir / STATE_FILE
        chooser = StateChooser(self.config, settings, space)
        if path.is_file():
            state = SweepState.load(path)
            why = chooser.mismatch(state)
            if why:
                raise ConfigError(
                    f"cannot resume stage {stage.name} of the pipeline in {sweep_dir}: {why}; use a new "
                    "hydra.sweep.dir or the same command"
                )
        else:
            s = settings
            recorded = {"algo": s.algo, "direction": s.direction, "seed": s.seed, "stage": stage.name}
            state = SweepState(space.signature(), space.describe(), list(space.fixed), recorded)
        optimizer = Optimizer(space, self.algorithm, settings.seed)
        stop_leftovers(state, stage_dir)
        retry = restore_history(state, optimizer, settings)
        progress = Progress(int(settings.n_trials), settings.direction, label=stage.name, extra=self._global_text)
        subdir = f"hydra.sweep.subdir={stage.name}/${{hydra.job.num}}"
        loop = TrialLoop(
            settings, state, path, space, optimizer, retry, self.launch, None, progress, self._next_job, [subdir]
        )
        return _Running(stage, settings, space, state, path, loop, None, objective, own, adopted)

    def _start_stage(self, running: _Running) -> None:
        """The stage's MLflow run (nested under the pipeline's), and its first line."""
        from qframe.tuning.mlflow_parent import start_sweep_run
        from qframe.tuning.resume import resuming_line

        stage = running.stage
        if self.tracking is not None:
            tags = {"mlflow.parentRunId": self.tracking.run_id, STAGE_TAG: stage.name}
            running.tracking = start_sweep_run(
                self.config,
                running.settings,
                running.state,
                running.space,
                running.objective,
                f"stage {stage.name}",
                tags,
            )
            running.loop.tracking = running.tracking
        running.state.save(running.path)
        if stage.reevaluates and hasattr(self.launch.launcher, "preload_again"):
            self.launch.launcher.preload_again()  # its trials read the source run's predictions, not features
        start = "the base config"
        if stage.source is not None:
            source = self._source_best(stage)
            start = f"the best of {source.stage} (trial {source.trial.number})"
            start = f"the global best so far, {start}" if stage.source == BEST else start
        what = "re-evaluates its predictions, no fit" if stage.reevaluates else "a fit in each trial"
        own = " ".join(running.own_fixed)
        self.console.print(
            f"[bold]stage {stage.name}[/]: {stage.n_trials} trials from {start} ({what})" + (f"; {own}" if own else ""),
            soft_wrap=True,
        )
        counts = running.state.counts()
        if counts["complete"] + counts["failed"] or running.loop.retry:
            self.console.print(
                resuming_line(running.state, running.path.parent, int(stage.n_trials), len(running.loop.retry)),
                soft_wrap=True,
            )

    def _end_stage(
        self,
        running: _Running,
        state: PipelineState,
        state_path: Path,
        status: str | None,
        stopped: str | None,
        rerun: bool = True,
    ) -> str | None:
        """Write the stage's outputs and end its run (``rerun``: it ran here); record its best; why it failed, or
        None."""
        from qframe.tuning.mlflow_parent import finish_sweep_run
        from qframe.tuning.outputs import best_trial, write_outputs

        stage = running.stage
        self._active.pop(stage.name, None)
        stage_dir = running.path.parent
        if rerun:
            paths = write_outputs(
                stage_dir, running.state, running.space, stage.direction, running.objective, "qframe", stopped
            )
            if running.tracking is not None:
                finish_sweep_run(running.tracking, running.state, paths, status or "FINISHED")
        if status == "KILLED":
            state.stages[stage.name]["status"] = "running"
            return None
        best = best_trial(running.state, stage.direction)
        record = state.stages[stage.name]
        if stopped or best is None:
            record["status"] = "failed"
            state.save(state_path)
            counts = running.state.counts()
            if stopped:
                from qframe.tuning.outputs import FAILURE_FIX

                why, fix = stopped, FAILURE_FIX
            else:  # within max_failure_rate, but no trial completed
                why = f"every one of its {counts['failed']} trials failed"
                fix = (
                    f"fix the setting that fails, or raise hydra.sweeper.stages.{stage.name}.n_trials and add "
                    "hydra.sweeper.resume=true to continue it"
                )
            return f"stage {stage.name} failed ({why}): the stages after it do not start; {fix}"
        record["status"] = "finished"
        record["best"] = {"value": float(best.value), "trial": best.number}
        state.save(state_path)
        run_id = running.state.parent_run_id
        self.bests[stage.name] = StageBest(stage.name, best, running.space, running.own_fixed, run_id, running.adopted)
        if rerun:
            self.console.print(
                f"[bold]stage {stage.name} done[/]: best {running.objective or 'objective'} = {best.value:.6g} "
                f"(trial {best.number}); {self._global_text()}",
                soft_wrap=True,
            )
        return None

    # ------------------------------------------------------------------------------------------------ bests
    def _source_best(self, stage: Stage) -> StageBest:
        if stage.source == BEST:
            found = self._global_best(stage.depends)
            if found is None:
                raise QFrameError(
                    f"stage {stage.name} starts from the global best, but no stage before it optimises the pipeline's "
                    f"objective ({self.pipeline.objective}, {self.pipeline.direction})"
                )
            return found
        return self.bests[stage.source]

    def _global_best(self, among: list[str] | None = None) -> StageBest | None:
        """The best of the stages' bests (``among``: only those stages), on the pipeline's objective."""
        pipeline = self.pipeline
        names = among if among is not None else list(pipeline.stages)
        candidates = [self.bests[n] for n in names if n in self.bests and pipeline.compared(pipeline.stages[n])]
        if not candidates:
            return None
        pick = max if pipeline.direction == "maximize" else min
        return pick(candidates, key=lambda b: b.trial.value)

    def _global_text(self) -> str:
        best = self._global_best()
        return f"global best {best.trial.value:.4g} ({best.stage})" if best is not None else "global best -"

    def _trial_run(self, best: StageBest) -> str | None:
        from qframe.tuning.mlflow_parent import trial_run_id

        if self.tracking is None or best.run_id is None:
            return None
        return trial_run_id(self.tracking.uri, best.run_id, best.trial.number)

    # ------------------------------------------------------------------------------------------------ tracking
    def _start_pipeline_run(self, state: PipelineState, sweep_dir: Path) -> Any:
        from qframe.tuning.mlflow_parent import ParentRun, start_pipeline_run, tracking_target

        target = tracking_target(self.config, self.settings)
        if target is None:
            return None
        uri, experiment, artifact_root = target
        params = {
            "stages": " -> ".join(self.pipeline.order()),
            "objective": self.objective,
            "direction": self.settings.direction,
            "n_jobs": self.settings.n_jobs,
            "fixed": " ".join(self.arguments),
            "sweep_dir": str(sweep_dir),
        }
        params |= {f"stage.{n}": json.dumps(s.definition()) for n, s in self.pipeline.stages.items()}
        state.run_id = start_pipeline_run(
            uri, experiment, artifact_root, state.run_id, f"pipeline {sweep_dir.name}", params
        )
        return ParentRun(uri, state.run_id)

    def _finish_pipeline_run(self, sweep_dir: Path, status: str) -> None:
        from qframe.tuning.mlflow_parent import finish_pipeline_run

        if self.tracking is None:
            return
        best = self._global_best()
        metrics = {"best objective": float(best.trial.value)} if best is not None else {}
        files = [str(sweep_dir / PIPELINE_RESULTS), str(sweep_dir / PIPELINE_PNG)]
        try:
            finish_pipeline_run(self.tracking.uri, self.tracking.run_id, files, metrics, status)
        except QFrameError as exc:
            import sys

            print(f"qframe: warning: {exc}", file=sys.stderr)


def _stop_reason(running: _Running) -> str | None:
    from qframe.tuning.outputs import stop_report

    return stop_report(running.state, running.settings)


def _max_job(stage_dir: Path) -> int:
    path = stage_dir / STATE_FILE
    if not path.is_file():
        return -1
    return max((t.job for t in SweepState.load(path).trials), default=-1)
