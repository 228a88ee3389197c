"""The hyperopt sweep behind ``hydra/sweeper=hyperopt``: asynchronous slots, failure semantics, durable resume.

* Slots: with qframe's fork launcher the moment any trial ends a new one is suggested (the running ones are known
  to the algorithm as pending) and started. Other launchers (basic, joblib, ray) get batches of ``n_jobs``.
* Failures: a trial that raises, returns NaN/inf or a non-number, dies by a signal or outlives ``trial_timeout`` is
  recorded as failed with its reason and is never told to the algorithm. More than ``max_failure_rate * n_trials``
  failures stop the sweep (with every output written).
* Resume: the state is saved after every trial; a sweep started on a directory holding a state continues it:
  completed trials are kept, job numbers continue, ``n_trials`` is the total, and a trial that was running when the
  sweep died is retried once. ``resume=true`` finds the newest unfinished sweep of the same command (search space,
  fixed overrides, direction) under the sweeps root. A sweep with nothing left to do under the current settings
  (finished, or stopped by ``max_failure_rate``) is reported and left exactly as it is.
* Threads: with ``k`` trials at a time on ``c`` cores, each trial's model gets ``max(1, c // k)`` threads unless
  ``model.num_threads`` is set (:mod:`qframe.launch.threads`).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qframe.core.errors import ConfigError, QFrameError
from qframe.tuning.space import Space, combine, format_value
from qframe.tuning.state import STATE_FILE, SweepLock, SweepState, Trial, is_running

DIRECTIONS = ("minimize", "maximize")


@dataclass
class SweepSettings:
    """``hydra.sweeper.*`` (see hydra_plugins/qframe_sweeper)."""

    algo: str = "tpe"
    objective: str | None = None
    direction: str = "maximize"
    n_trials: int = 20
    n_jobs: int = 1
    max_failure_rate: float = 0.5
    seed: int = 0
    n_startup_trials: int | None = 10
    trial_timeout: float | None = None
    params: dict[str, Any] | None = None
    spaces: list[str] = field(default_factory=list)
    resume: bool = False
    mlflow: bool = True

    def check(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"hydra.sweeper.direction={self.direction!r}; valid options: {', '.join(DIRECTIONS)}")
        if int(self.n_jobs) < 1:
            raise ConfigError(f"hydra.sweeper.n_jobs must be >= 1, got {self.n_jobs}")
        if int(self.n_trials) < 1:
            raise ConfigError(f"hydra.sweeper.n_trials must be >= 1, got {self.n_trials}")
        if not 0.0 <= float(self.max_failure_rate) <= 1.0:
            raise ConfigError(f"hydra.sweeper.max_failure_rate must be in [0, 1], got {self.max_failure_rate}")
        if self.n_startup_trials is not None and int(self.n_startup_trials) < 1:
            raise ConfigError(f"hydra.sweeper.n_startup_trials must be >= 1 or null, got {self.n_startup_trials}")
        if self.trial_timeout is not None and float(self.trial_timeout) <= 0:
            raise ConfigError(f"hydra.sweeper.trial_timeout must be > 0 seconds or null, got {self.trial_timeout}")


def _named_spaces(names: list[str]) -> list[dict]:
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


def _number(value: Any) -> tuple[float | None, str | None]:
    """(objective, None) for a finite number, else (None, why it is not usable)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"the job returned a non-number: {value!r}"[:300]
    if not math.isfinite(value):
        return None, f"the job returned {value}"
    return float(value), None


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else "unknown error"


class HyperoptSweep:
    """The sweep logic; :class:`hydra_plugins.qframe_sweeper.qframe_sweeper.QFrameHyperoptSweeper` delegates here."""

    def __init__(self, settings: SweepSettings) -> None:
        self.s = settings
        self.config: Any = None
        self.hydra_context: Any = None
        self.task_function: Any = None
        self.launcher: Any = None
        self.tracking: tuple[str, str] | None = None  # (tracking uri, parent run id) of a tracked sweep
        self.slots = 1  # trials running at once
        self.threads: int | None = None  # each trial's model threads (QFRAME_THREADS), None: not set
        self.lock: SweepLock | None = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    # -----------------------------------------------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> Any:
        try:
            return self._sweep(list(arguments))
        except QFrameError as exc:
            if os.environ.get("QFRAME_DEBUG", "").lower() in ("1", "true", "yes"):
                raise
            print(f"qframe: error: {exc}", file=sys.stderr)
            sys.exit(2)

    def _objective(self) -> tuple[str | None, list[str]]:
        """The objective's name and the override that selects it in every trial."""
        from omegaconf import OmegaConf

        has_key = OmegaConf.select(self.config, "objective", default=None) is not None
        name = self.s.objective or (OmegaConf.select(self.config, "objective") if has_key else None)
        if has_key and name is not None:
            from qframe.core.workflow import metric_names

            if name not in metric_names():
                raise ConfigError(
                    f"hydra.sweeper.objective={name!r} is not a metric a run records; "
                    f"valid options: {', '.join(metric_names())}"
                )
        return name, ([f"objective={name}"] if self.s.objective and has_key else [])

    def _space(self, arguments: list[str], extra_fixed: list[str]) -> Space:
        from omegaconf import OmegaConf

        params = self.s.params
        if params is not None and not isinstance(params, dict):
            params = OmegaConf.to_container(params, resolve=False)
        space = combine(_named_spaces(list(self.s.spaces or [])), params, arguments)
        if extra_fixed:  # hydra.sweeper.objective replaces an `objective=` argument (else that one reaches trials)
            space.fixed = [f for f in space.fixed if not f.startswith("objective=")] + extra_fixed
        return space

    def _mismatch(self, state: SweepState, space: Space) -> str | None:
        """Why ``state`` is not a sweep of this command (search space, fixed overrides, direction), or None."""
        if state.signature != space.signature():
            return (
                f"it was made with a different search space ({state.space} fixed {state.fixed}) than this one "
                f"({space.describe()} fixed {space.fixed})"
            )
        direction = state.settings.get("direction", self.s.direction)
        if direction != self.s.direction:
            return f"it was made with direction={direction}, this command has direction={self.s.direction}"
        return None

    def _outcome(self, state: SweepState, sweep_dir: Path) -> str | None:
        """``"stopped"`` or ``"finished"`` when the sweep has nothing left to do under the current settings, else None.

        Stopped: more trials failed than ``max_failure_rate * n_trials`` allows (resuming would stop again at once).
        Finished: its complete and failed trials reach ``n_trials`` and it wrote its results (a sweep killed before
        writing them is resumed, which writes them).
        """
        from qframe.tuning.outputs import RESULTS_FILE

        if self._too_many_failures(state):
            return "stopped"
        c = state.counts()
        if c["complete"] + c["failed"] >= int(self.s.n_trials) and (sweep_dir / RESULTS_FILE).is_file():
            return "finished"
        return None

    def _state(self, sweep_dir: Path, space: Space) -> tuple[SweepState, Path, bool]:
        """The state this command runs: the one in ``sweep_dir``, the one ``resume=true`` found, or a new one."""
        path = sweep_dir / STATE_FILE
        if path.is_file():
            state = SweepState.load(path)
            why = self._mismatch(state, space)
            if why:
                raise ConfigError(
                    f"cannot resume the sweep in {path.parent}: {why}; use a new hydra.sweep.dir or the same command"
                )
            if is_running(sweep_dir):
                raise ConfigError(f"the sweep in {sweep_dir} is running in another process; wait for it to end")
            return state, path, True
        if self.s.resume:
            found = self._find_resumable(sweep_dir, space)
            return found[0], found[1], True
        self._hint_resumable(sweep_dir, space)
        settings = {"algo": self.s.algo, "direction": self.s.direction, "seed": self.s.seed}
        return SweepState(space.signature(), space.describe(), list(space.fixed), settings), path, False

    def _candidates(self, sweep_dir: Path, space: Space) -> tuple[Path, list, int, int]:
        """(sweeps root, [(mtime, path, state, outcome)] of this command's idle sweeps there, newest first,
        how many sweeps of other commands, how many of this command running now)."""
        root, pattern = _sweeps_root(self.config, sweep_dir)
        mine, others, running = [], 0, 0
        for path in root.glob(pattern):
            try:
                state = SweepState.load(path)
                mtime = path.stat().st_mtime
            except (ConfigError, OSError):
                others += 1
                continue
            if self._mismatch(state, space):
                others += 1
            elif is_running(path.parent):
                running += 1
            else:
                mine.append((mtime, path, state, self._outcome(state, path.parent)))
        mine.sort(key=lambda item: item[0], reverse=True)
        return root, mine, others, running

    def _find_resumable(self, sweep_dir: Path, space: Space) -> tuple[SweepState, Path]:
        """``resume=true``: the newest unfinished sweep of this command under the sweeps root; when every one of them
        is finished, the newest finished one (reported as such); none: a ConfigError naming where it looked."""
        root, mine, others, running = self._candidates(sweep_dir, space)
        unfinished = [item for item in mine if item[3] is None]
        pick = unfinished[0] if unfinished else (mine[0] if mine else None)
        if pick is None:
            seen = []
            if others:
                seen.append(f"{others} sweep(s) of other commands (search space, fixed overrides or direction)")
            if running:
                seen.append(f"{running} of this command running in another process")
            found = f"found {' and '.join(seen)}" if seen else "no sweep there at all"
            raise ConfigError(
                f"hydra.sweeper.resume=true but no sweep of this command to continue under {root} ({found}); "
                "run it without hydra.sweeper.resume=true to start a new sweep, or give a sweep's directory with "
                "hydra.sweep.dir=<dir>"
            )
        return pick[2], pick[1]

    def _hint_resumable(self, sweep_dir: Path, space: Space) -> None:
        """A new sweep of a command that has an unfinished one: say how to continue that one instead."""
        try:
            _, mine, _, _ = self._candidates(sweep_dir, space)
        except OSError:
            return
        for _, path, state, outcome in mine:
            if outcome is None:
                c = state.counts()
                print(
                    f"note: starting a new sweep in {sweep_dir}; an unfinished sweep of this command is in "
                    f"{path.parent} ({c['complete'] + c['failed']} of {int(self.s.n_trials)} trials done): add "
                    "hydra.sweeper.resume=true to continue it instead",
                    flush=True,
                )
                return

    def _nothing_to_do(
        self, state: SweepState, sweep_dir: Path, space: Space, objective: str | None, outcome: str
    ) -> None:
        """Report a finished (or stopped) sweep, changing nothing: no trial, no file, no MLflow write."""
        from rich.console import Console
        from rich.markup import escape

        from qframe.tuning.outputs import best_command, best_trial

        c = state.counts()
        done, n = c["complete"] + c["failed"], int(self.s.n_trials)
        best = best_trial(state, self.s.direction)
        best_txt = (
            f"best {objective or 'objective'} = {best.value:.6g} (trial {best.number})"
            if best is not None
            else "no trial completed"
        )
        if outcome == "stopped":
            raise QFrameError(
                f"sweep {sweep_dir} stopped: {c['failed']} of {n} trials failed, more than "
                f"max_failure_rate={self.s.max_failure_rate} allows; {best_txt}; nothing to do "
                "(raise hydra.sweeper.max_failure_rate to continue it)"
            )
        trials = f"{done} of {n} trials" if done == n else f"{done} trials, n_trials={n}"
        console = Console(highlight=False)
        console.print(
            f"sweep {sweep_dir} is already finished: {trials} ({c['complete']} complete, {c['failed']} failed); "
            f"{best_txt}; nothing to do (raise hydra.sweeper.n_trials to continue it)",
            soft_wrap=True,
        )
        if best is not None:
            console.print(f"re-run: {escape(best_command(space, best))}", soft_wrap=True)

    def _sweep(self, arguments: list[str]) -> Any:
        from hydra.core.hydra_config import HydraConfig

        from qframe.tuning.optimizer import resolve_backend

        s = self.s
        s.check()
        # ${hydra:...} interpolations (sweep dir, workdir) resolve against the sweep's own config
        HydraConfig.instance().set_config(self.config)
        objective, objective_override = self._objective()
        space = self._space(arguments, objective_override)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        state, state_path, resumed = self._state(sweep_dir, space)
        if resumed:
            outcome = self._outcome(state, state_path.parent)
            if outcome is not None:
                self._nothing_to_do(state, state_path.parent, space, objective, outcome)
                return None
        suggest = resolve_backend(s.algo, s.n_startup_trials)  # imports hyperopt (~2 s): not for nothing to do
        if state_path.parent != sweep_dir:
            # resume=true found the sweep elsewhere: every job is composed into that directory
            sweep_dir = state_path.parent
            _set_sweep_dir(self.config, sweep_dir)
            HydraConfig.instance().set_config(self.config)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self.lock = SweepLock(sweep_dir)
        try:
            return self._run(state, state_path, resumed, space, objective, suggest)
        finally:
            self.lock.release()

    def _run(
        self, state: SweepState, state_path: Path, resumed: bool, space: Space, objective: str | None, suggest: Any
    ) -> Any:
        from hydra.core.plugins import Plugins
        from omegaconf import OmegaConf

        from qframe.tuning.optimizer import Optimizer

        s = self.s
        sweep_dir = state_path.parent
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        optimizer = Optimizer(space, suggest, s.seed)
        retry: list[Trial] = []
        for trial in state.trials:
            if trial.status == "running":
                if trial.attempts < 2:
                    retry.append(trial)
                    optimizer.restore(trial.number, trial.vals, None, running=True)
                    continue
                trial.status, trial.error = "failed", "interrupted twice (the sweep died while it ran)"
            done = trial.status == "complete" and trial.value is not None
            optimizer.restore(trial.number, trial.vals, self._loss(trial.value) if done else None)

        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=self.hydra_context, task_function=self.task_function, config=self.config
        )
        from qframe.launch.protocols import JobSubmitter

        asynchronous = isinstance(self.launcher, JobSubmitter)
        if s.trial_timeout and not asynchronous:
            from qframe.tuning.timeout import TimedTask

            # a launcher that cannot kill a job: the job interrupts itself
            task = TimedTask(self.task_function, float(s.trial_timeout))
            self.launcher.setup(hydra_context=self.hydra_context, task_function=task, config=self.config)

        self.threads = self._threads(space, asynchronous)
        tracking = self.tracking = self._start_tracking(state, space, objective)
        state.save(state_path)
        from qframe.tuning.outputs import Progress

        progress = Progress(int(s.n_trials), s.direction)
        if resumed:
            c = state.counts()
            done = c["complete"] + c["failed"]
            progress.console.print(
                f"resuming the sweep in {sweep_dir}: {done} of {int(s.n_trials)} trials done ({c['complete']} "
                f"complete, {c['failed']} failed), {len(retry)} interrupted (retried); "
                f"{max(int(s.n_trials) - done, 0)} to go",
                soft_wrap=True,
            )
        if self.threads is not None:
            from qframe.launch.threads import describe

            progress.console.print(describe(self.slots, self.threads), soft_wrap=True)
        stopped: str | None = None
        try:
            if asynchronous:
                try:
                    stopped = self._run_async(self.launcher, optimizer, state, state_path, space, retry, progress)
                finally:
                    # what still runs (interrupted) or exits (reported) is gone before we report
                    self.launcher.kill_all()
            else:
                stopped = self._run_batches(optimizer, state, state_path, space, retry, progress)
        except KeyboardInterrupt:
            state.save(state_path)
            self._finish(state, space, objective, tracking, "KILLED", "interrupted")
            raise
        paths = self._finish(state, space, objective, tracking, "FAILED" if stopped else "FINISHED", stopped)
        self._report(state, space, objective, paths)
        if stopped:
            raise QFrameError(f"{stopped}; results so far are in {sweep_dir}")
        return None

    # -----------------------------------------------------------------------------------------------------------
    def _loss(self, value: float) -> float:
        return -value if self.s.direction == "maximize" else value

    def _too_many_failures(self, state: SweepState) -> str | None:
        failed = state.counts()["failed"]
        allowed = float(self.s.max_failure_rate) * int(self.s.n_trials)
        if failed > allowed:
            return (
                f"sweep stopped: {failed} of {int(self.s.n_trials)} trials failed, more than "
                f"max_failure_rate={self.s.max_failure_rate} allows"
            )
        return None

    def _new_trial(self, optimizer: Any, state: SweepState, retry: list[Trial]) -> Trial:
        if retry:
            trial = retry.pop(0)
            trial.attempts += 1
            trial.job = state.next_job()
            trial.started = None
            return trial
        number = len(state.trials)
        values, vals = optimizer.ask(number)
        trial = Trial(number=number, job=state.next_job(), status="running", params=values, vals=vals)
        state.trials.append(trial)
        return trial

    def _finish_trial(
        self,
        optimizer: Any,
        state: SweepState,
        state_path: Path,
        trial: Trial,
        ok: bool,
        value: Any,
        error: str | None,
        started: float | None,
        ended: float,
        working_dir: str | None = None,
    ) -> None:
        """Record a trial's outcome: tell the algorithm (never a failure), save the state, update the parent run."""
        if ok:
            number, why = _number(value)
        else:
            number, why = None, _first_line(error)
        trial.started = started if started is not None else trial.started
        trial.ended = ended
        trial.working_dir = working_dir
        if number is None:
            trial.status, trial.error, trial.value = "failed", why, None
            optimizer.tell(trial.number, None)
        else:
            trial.status, trial.error, trial.value = "complete", None, number
            optimizer.tell(trial.number, self._loss(number))
        state.save(state_path)
        if self.tracking is not None and trial.status == "complete":
            from qframe.tuning.mlflow_parent import log_best
            from qframe.tuning.outputs import best_trial

            try:
                log_best(*self.tracking, trial.number, float(best_trial(state, self.s.direction).value), ended)
            except QFrameError as exc:  # a progress metric is not worth the sweep: the state is saved already
                print(f"qframe: warning: {exc}", file=sys.stderr)

    def _threads(self, space: Space, asynchronous: bool) -> int | None:
        """Threads for each trial's model (``QFRAME_THREADS``), or None: one trial at a time, or an explicit
        ``model.num_threads`` (in the config, a fixed override or the search space)."""
        from hydra._internal.core_plugins.basic_launcher import BasicLauncher

        from qframe.launch.threads import job_threads, sets_threads

        # the basic launcher runs a batch's trials one after another, in this process
        self.slots = 1 if not asynchronous and isinstance(self.launcher, BasicLauncher) else int(self.s.n_jobs)
        if sets_threads([*space.describe(), *space.fixed]):
            return None
        return job_threads(self.config, self.slots)

    def _overrides(self, space: Space, trial: Trial) -> list[str]:
        """The trial's overrides, and its identity as environment variables of the job.

        ``hydra.job.env_set`` reaches the job on every launcher (forked, in-process, joblib, Ray, Slurm), unlike
        this process's own environment; as a ``hydra.*`` override it stays out of the trial's task overrides.
        """
        from qframe.core.context import trial_environment
        from qframe.launch.threads import THREADS_ENV

        env = trial_environment(trial.number, self.tracking[1] if self.tracking is not None else None)
        if self.threads is not None:
            env[THREADS_ENV] = str(self.threads)
        identity = [f"++hydra.job.env_set.{k}={format_value(v)}" for k, v in env.items()]
        return space.overrides(trial.params) + identity

    def _remaining(self, state: SweepState, running: int) -> int:
        c = state.counts()
        return int(self.s.n_trials) - c["complete"] - c["failed"] - running

    def _run_async(
        self,
        impl: Any,
        optimizer: Any,
        state: SweepState,
        state_path: Path,
        space: Space,
        retry: list[Trial],
        progress: Any,
    ) -> str | None:
        by_job: dict[int, Trial] = {}
        timeout = float(self.s.trial_timeout) if self.s.trial_timeout else None
        while True:
            while len(by_job) < int(self.s.n_jobs) and self._remaining(state, len(by_job)) > 0:
                trial = self._new_trial(optimizer, state, retry)
                trial.status = "running"
                trial.started = impl.submit(self._overrides(space, trial), trial.job, timeout)
                by_job[trial.job] = trial
                state.save(state_path)
            if not by_job:
                return None
            for finished in impl.wait():
                trial = by_job.pop(finished.idx)
                outcome = (finished.ok, finished.value, finished.error, finished.started, finished.ended)
                self._finish_trial(optimizer, state, state_path, trial, *outcome, finished.working_dir)
                progress.trial(state, trial)
                stop = self._too_many_failures(state)
                if stop:
                    impl.kill_all()
                    for other in by_job.values():
                        other.status, other.error, other.ended = "failed", "killed: the sweep stopped", time.time()
                    state.save(state_path)
                    return stop

    def _run_batches(
        self, optimizer: Any, state: SweepState, state_path: Path, space: Space, retry: list[Trial], progress: Any
    ) -> str | None:
        while self._remaining(state, 0) > 0:
            batch = [
                self._new_trial(optimizer, state, retry)
                for _ in range(min(int(self.s.n_jobs), self._remaining(state, 0)))
            ]
            started = time.time()
            for trial in batch:
                trial.status, trial.started = "running", started
            state.save(state_path)
            returns = self.launcher.launch([self._overrides(space, t) for t in batch], initial_job_idx=batch[0].job)
            ended = time.time()
            for trial, ret in zip(batch, returns, strict=True):
                from hydra.core.utils import JobStatus

                ok = ret.status == JobStatus.COMPLETED
                value = ret._return_value if ok else None
                error = None if ok else f"{type(ret._return_value).__name__}: {ret._return_value}"
                self._finish_trial(optimizer, state, state_path, trial, ok, value, error, started, ended, _job_dir(ret))
                progress.trial(state, trial)
            stop = self._too_many_failures(state)
            if stop:
                return stop
        return None

    # -----------------------------------------------------------------------------------------------------------
    def _tracking_target(self) -> tuple[str, str, str] | None:
        """(tracking uri, experiment, artifact root) when the task is a qframe run with tracking, else None."""
        from omegaconf import OmegaConf

        if not self.s.mlflow or OmegaConf.select(self.config, "workdir", default=None) is None:
            return None
        from qframe.core.context import locate

        keys = ("workdir", "tracking_uri", "experiment_name")
        # the trials' own derivation, from the same config and environment (the sweeper runs at the boundary)
        location = locate({k: OmegaConf.select(self.config, k, default=None) for k in keys}, os.environ)
        return location.tracking_uri, location.experiment, str(location.artifact_root)

    def _start_tracking(self, state: SweepState, space: Space, objective: str | None) -> tuple[str, str] | None:
        from qframe.tuning.mlflow_parent import start_parent

        target = self._tracking_target()
        if target is None:
            return None
        uri, experiment, artifact_root = target
        params = {f"space.{k.lstrip('+~')}": v for k, v in space.describe().items()}
        params.update(
            algo=self.s.algo,
            n_trials=self.s.n_trials,
            n_jobs=self.s.n_jobs,
            direction=self.s.direction,
            objective=objective,
            seed=self.s.seed,
            fixed=" ".join(space.fixed),
            sweep_dir=str(self.config.hydra.sweep.dir),
        )
        name = f"sweep {Path(str(self.config.hydra.sweep.dir)).name}"
        run_id = start_parent(uri, experiment, artifact_root, state.parent_run_id, name, params)
        state.parent_run_id = run_id
        return uri, run_id

    def _finish(
        self,
        state: SweepState,
        space: Space,
        objective: str | None,
        tracking: tuple[str, str] | None,
        status: str,
        stopped: str | None,
    ) -> dict[str, Path]:
        from qframe.tuning.mlflow_parent import finish_parent
        from qframe.tuning.outputs import write_outputs

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        paths = write_outputs(sweep_dir, state, space, self.s.direction, objective, "qframe", stopped)
        if tracking is not None:
            uri, run_id = tracking
            failures = {t.number: t.error or "failed" for t in state.trials if t.status == "failed"}
            files = [str(paths[k]) for k in ("results", "parquet", "csv", "history")]
            finish_parent(uri, run_id, files, failures, status)
        return paths

    def _report(self, state: SweepState, space: Space, objective: str | None, paths: dict[str, Path]) -> None:
        from rich.console import Console
        from rich.markup import escape

        from qframe.tuning.outputs import best_command, best_trial

        console = Console(highlight=False)
        c = state.counts()
        best = best_trial(state, self.s.direction)
        console.print(
            f"[bold]sweep done[/]: {c['complete']} complete, {c['failed']} failed -> {paths['results']}", soft_wrap=True
        )
        if best is not None:
            console.print(f"best {objective or 'objective'} = {best.value:.6g} (trial {best.number}, job {best.job})")
            console.print(f"re-run: {escape(best_command(space, best))}", soft_wrap=True)


def _set_sweep_dir(config: Any, sweep_dir: Path) -> None:
    """Point the sweep (and the jobs Hydra composes from its overrides) at ``sweep_dir``."""
    from omegaconf import open_dict, read_write

    # HydraConfig marks the hydra node read-only
    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.sweep.dir = str(sweep_dir)
        with read_write(config.hydra.overrides.hydra):
            config.hydra.overrides.hydra.append(f"hydra.sweep.dir={sweep_dir}")


def _job_dir(ret: Any) -> str | None:
    try:
        return str(ret.hydra_cfg.hydra.runtime.output_dir)
    except Exception:  # noqa: BLE001 - a launcher that returns no hydra config: the job dir is unknown
        return None


def _sweeps_root(config: Any, sweep_dir: Path) -> tuple[Path, str]:
    """(the sweeps root, the glob of the sweep states under it) for ``resume=true``.

    The root is the part of the configured ``hydra.sweep.dir`` before its first ``${now:...}`` component (qframe's
    ``${workdir}/multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}`` -> ``<workdir>/multirun``, glob ``*/*/sweep_state.json``).
    A sweep dir without a time stamp is its own root: only it is looked at.
    """
    from omegaconf import OmegaConf

    raw = str(OmegaConf.to_container(config.hydra.sweep, resolve=False).get("dir", ""))
    at = raw.find("${now:")
    if at < 0:
        return sweep_dir, STATE_FILE
    rest = raw[raw.rfind("/", 0, at) + 1 :]
    levels = len([part for part in rest.split("/") if part])
    root = sweep_dir
    for _ in range(levels):
        root = root.parent
    return root, "/".join(["*"] * levels + [STATE_FILE])
