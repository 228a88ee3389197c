"""The hyperopt sweep behind ``hydra/sweeper=hyperopt``: asynchronous slots, failure semantics, durable resume.

* Slots: with qframe's fork launcher the moment any trial ends the search algorithm picks a new one (the running
  ones are known to it as pending), which starts at once. Other launchers (basic, joblib, ray) get batches of
  ``n_jobs``.
* Failures: a trial that raises, returns NaN/inf or a non-number, dies by a signal or outlives ``trial_timeout`` is
  recorded as failed with its reason and is never told to the search algorithm. More than
  ``max_failure_rate * n_trials`` failures stop the sweep: no new trial starts, the running ones end and count as
  what they are, and every output is written; the failed trials' MLflow runs are made to agree with the sweep's record.
* Resume: the state is saved after every trial; a sweep started on a directory holding a state continues it:
  completed trials are kept, job numbers continue, ``n_trials`` is the total, and a trial that was running when the
  sweep died is retried once, once its earlier process is gone (:mod:`~qframe.tuning.owners`). ``resume=true``
  finds the newest unfinished sweep of the same command (search space, fixed overrides, direction) under the sweeps
  root. A sweep with nothing left to do under the current settings (finished, or stopped by ``max_failure_rate``) is
  reported and left exactly as it is.
* Lifecycle: a sweep dir is locked while a sweep runs in it; trials die with the sweep (process groups, the
  parent-death signal: :mod:`qframe.launch.lifecycle`); SIGTERM stops a sweep as Ctrl-C does
  (:mod:`qframe.launch.interrupts`).
* Threads: with ``k`` trials at a time on ``c`` cores, each trial's model gets ``max(1, c // k)`` threads unless
  ``model.num_threads`` is set (:mod:`qframe.launch.threads`).
* Resources: each trial's memory is limited by the operating system (``trial_memory``: :mod:`qframe.launch.limits`)
  and each slot gets GPUs of its own (``trial_gpus``: :mod:`qframe.launch.devices`).
* Retries: a trial that failed transiently (killed from outside, a lost worker) runs again, up to ``max_retries``
  times, under its number and params; every attempt is recorded (:mod:`~qframe.tuning.retries`).

This module puts the steps in order; each has its own: the settings (:mod:`~qframe.tuning.settings`), the
objective, search space and sweep dir in Hydra's config (:mod:`~qframe.tuning.sweep_config`), the state to run
(:mod:`~qframe.tuning.resume`), the launcher (:mod:`~qframe.tuning.launching`), the trial loop
(:mod:`~qframe.tuning.trials`), the MLflow parent run (:mod:`~qframe.tuning.mlflow_parent`) and the outputs
(:mod:`~qframe.tuning.outputs`).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from qframe.core.errors import QFrameError
from qframe.launch.interrupts import SweepInterrupted, signals_interrupt
from qframe.tuning.mlflow_parent import ParentRun
from qframe.tuning.resume import ChosenState, StateChooser
from qframe.tuning.settings import SweepSettings
from qframe.tuning.space import Space
from qframe.tuning.state import SweepLock, SweepState


class HyperoptSweep:
    """The sweep; :class:`hydra_plugins.qframe_sweeper.qframe_sweeper.QFrameHyperoptSweeper` delegates here."""

    def __init__(self, settings: SweepSettings) -> None:
        self.settings = settings
        self.config: Any = None
        self.hydra_context: Any = None
        self.task_function: Any = None
        self.running_in: Path | None = None  # the sweep dir, once this process holds it

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def sweep(self, arguments: list[str]) -> Any:
        """Run the sweep of ``arguments``; a user's error is one line and exit status 2 (``QFRAME_DEBUG``: raised);
        SIGINT or SIGTERM stops it with one line and the signal's exit status."""
        debug = os.environ.get("QFRAME_DEBUG", "").lower() in ("1", "true", "yes")
        try:
            with signals_interrupt():
                return self._sweep(list(arguments))
        except QFrameError as exc:
            if debug:
                raise
            print(f"qframe: error: {exc}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt as exc:
            if debug:
                raise
            interrupted = exc if isinstance(exc, SweepInterrupted) else SweepInterrupted(signal.SIGINT)
            where = (
                f"; its state is saved: continue it with the same command and hydra.sweep.dir={self.running_in}"
                if self.running_in is not None
                else ""
            )
            print(f"qframe: sweep stopped by {interrupted}{where}", file=sys.stderr)
            sys.exit(interrupted.exit_status)

    def _sweep(self, arguments: list[str]) -> None:
        from qframe.tuning.optimizer import resolve_backend
        from qframe.tuning.sweep_config import (
            check_space_keys,
            move_sweep_dir,
            search_space,
            sweep_objective,
            use_sweep_config,
            warn_constant_choices,
        )

        settings = self.settings
        if settings.stages is not None:
            from qframe.tuning.pipeline_run import PipelineSweep

            PipelineSweep(self).run(arguments)
            return
        settings.check()
        use_sweep_config(self.config)
        objective, objective_override = sweep_objective(self.config, settings)
        space = search_space(settings, arguments, objective_override)
        check_space_keys(self.config, space)
        warn_constant_choices(space)
        chooser = StateChooser(self.config, settings, space)
        chosen = chooser.choose(Path(str(self.config.hydra.sweep.dir)))
        if self._nothing_to_do(chooser, chosen, objective):
            return
        sweep_dir = chosen.path.parent
        sweep_dir.mkdir(parents=True, exist_ok=True)
        lock = SweepLock(sweep_dir)
        try:
            # what a process that held the lock until now wrote (the same command started twice at once)
            chosen = chooser.reread(chosen)
            if self._nothing_to_do(chooser, chosen, objective):
                return
            # imports hyperopt (~2 s): not for a sweep with nothing to do
            algorithm = resolve_backend(settings.algo, settings.n_startup_trials)
            if sweep_dir != Path(str(self.config.hydra.sweep.dir)):
                # resume=true found the sweep elsewhere: every job is composed into that directory
                move_sweep_dir(self.config, sweep_dir)
            self.running_in = sweep_dir
            self._run(chosen, space, objective, algorithm)
        finally:
            lock.release()

    @staticmethod
    def _nothing_to_do(chooser: StateChooser, chosen: ChosenState, objective: str | None) -> bool:
        """A resumed sweep that is finished or stopped: reported (nothing is written); True."""
        if not chosen.resumed:
            return False
        outcome = chooser.outcome(chosen.state, chosen.path.parent)
        if outcome is None:
            return False
        chooser.report_nothing_to_do(chosen.state, chosen.path.parent, objective, outcome)
        return True

    def _run(self, chosen: ChosenState, space: Space, objective: str | None, algorithm: Any) -> None:
        from omegaconf import OmegaConf

        from qframe.tuning.launching import start_launcher
        from qframe.tuning.mlflow_parent import start_sweep_run
        from qframe.tuning.optimizer import Optimizer
        from qframe.tuning.outputs import FAILURE_FIX, Progress, report_done
        from qframe.tuning.owners import stop_leftovers
        from qframe.tuning.resume import restore_history, resuming_line
        from qframe.tuning.trials import TrialLoop

        settings, state, state_path = self.settings, chosen.state, chosen.path
        sweep_dir = state_path.parent
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        optimizer = Optimizer(space, algorithm, settings.seed)
        stop_leftovers(state, sweep_dir)  # an interrupted trial is retried only once its earlier process is gone
        retry = restore_history(state, optimizer, settings)
        launch = start_launcher(self.hydra_context, self.task_function, self.config, settings, space)
        tracking = start_sweep_run(self.config, settings, state, space, objective)
        state.save(state_path)
        progress = Progress(int(settings.n_trials), settings.direction)
        if chosen.resumed:
            progress.console.print(resuming_line(state, sweep_dir, int(settings.n_trials), len(retry)), soft_wrap=True)
        for line in launch.start_lines():  # threads, memory and GPUs of each trial
            progress.console.print(line, soft_wrap=True)
        loop = TrialLoop(settings, state, state_path, space, optimizer, retry, launch, tracking, progress)
        try:
            stopped = loop.run()
        except KeyboardInterrupt:
            state.save(state_path)
            self._finish(state, space, objective, tracking, "KILLED", "interrupted")
            raise
        paths = self._finish(state, space, objective, tracking, "FAILED" if stopped else "FINISHED", stopped)
        report_done(state, space, settings.direction, objective, paths["results"], stopped=stopped is not None)
        if stopped:
            raise QFrameError(f"{stopped}; results so far are in {sweep_dir}; {FAILURE_FIX}")

    def _finish(
        self,
        state: SweepState,
        space: Space,
        objective: str | None,
        tracking: ParentRun | None,
        status: str,
        stopped: str | None,
    ) -> dict[str, Path]:
        """Write every output; end the parent run with them (``status``)."""
        from qframe.tuning.mlflow_parent import finish_sweep_run
        from qframe.tuning.outputs import write_outputs

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        paths = write_outputs(sweep_dir, state, space, self.settings.direction, objective, "qframe", stopped)
        if tracking is not None:
            finish_sweep_run(tracking, state, paths, status)
        return paths
