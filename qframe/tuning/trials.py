"""The trial loop: ask the search algorithm, launch, record each outcome, until ``n_trials`` are done or too many
failed (then no trial starts and the running ones end, each counted as what it is).

With an asynchronous launcher a new trial starts the moment any trial ends (the running ones are known to the
algorithm as pending); other launchers get batches of ``n_jobs``. A failed trial is recorded with its reason and never
told to the algorithm. The state is saved after every change, so that a sweep killed at any moment can resume.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from qframe.launch.forking import Finished
from qframe.launch.protocols import JobSubmitter
from qframe.tuning.launching import TrialLauncher
from qframe.tuning.mlflow_parent import ParentRun
from qframe.tuning.outputs import stop_report
from qframe.tuning.owners import trial_owner
from qframe.tuning.settings import SweepSettings
from qframe.tuning.space import Space, format_value
from qframe.tuning.state import SweepState, Trial


class TrialLoop:
    """Runs the trials of ``state`` (whose file is ``state_path``) on ``launch`` until the sweep is done or stopped."""

    def __init__(
        self,
        settings: SweepSettings,
        state: SweepState,
        state_path: Path,
        space: Space,
        optimizer: Any,
        retry: list[Trial],
        launch: TrialLauncher,
        tracking: ParentRun | None,
        progress: Any,
        next_job: Any = None,
        extra_overrides: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.state_path = state_path
        self.space = space
        self.optimizer = optimizer
        self.retry = retry  # trials interrupted by the sweep's death or failed transiently, run again first
        self.launch = launch
        self.tracking = tracking
        self.threads = launch.threads
        self.progress = progress
        self._announced = False  # the line saying the sweep waits for its running trials was printed
        # job numbers: the state's next one, or a pipeline's (its stages share one launcher: numbers never repeat)
        self.next_job = next_job or state.next_job
        # hydra overrides of every job that are not the trial's settings (a pipeline stage's job directories)
        self.extra_overrides = list(extra_overrides or [])
        self.running: dict[int, Trial] = {}  # by job number, with an asynchronous launcher

    def run(self) -> str | None:
        """Run trials until ``n_trials`` are done (None) or too many failed (why the sweep stopped).

        Once too many failed, no trial starts; the running ones end and count as what they really are (complete or
        failed), so that the stop's counts are the sweep's final ones.
        """
        from qframe.core.scratch import remove_orphans

        submitter = self.launch.asynchronous
        try:
            if submitter is None:
                self._run_batches()
            else:
                try:
                    self._run_async(submitter)
                finally:
                    submitter.kill_all()  # what still runs (interrupted) or exits (reported) is gone before we report
        finally:
            remove_orphans()  # the scratch directories of trials killed before they could remove their own
        return stop_report(self.state, self.settings)

    def _run_async(self, submitter: JobSubmitter) -> None:
        while True:
            while len(self.running) < int(self.settings.n_jobs) and self.can_start():
                self.start(submitter)
            if not self.running:
                return
            for finished in submitter.wait():
                self.finish(finished)

    # one trial at a time, for a driver that shares one asynchronous launcher between sweeps (a pipeline's stages)
    def can_start(self) -> bool:
        """Whether another trial may start now (not stopping, trials left beyond the running ones)."""
        return not self._stopping() and self._remaining(len(self.running)) > 0

    def start(self, submitter: JobSubmitter) -> Trial:
        """Start the next trial on ``submitter``."""
        timeout = float(self.settings.trial_timeout) if self.settings.trial_timeout else None
        trial = self._new_trial()
        trial.status = "running"
        gpus = self.launch.devices.acquire(trial.job) if self.launch.devices is not None else None
        overrides = self._overrides(self.space, trial, gpus) + self.extra_overrides
        trial.started = submitter.submit(overrides, trial.job, timeout)
        trial.owner = trial_owner(submitter, trial.job)  # a resumed sweep checks this process is gone
        self.running[trial.job] = trial
        self.state.save(self.state_path)
        return trial

    def finish(self, finished: Any) -> Trial:
        """Record a finished job (a ``Finished`` of this loop's trial)."""
        trial = self.running.pop(finished.idx)
        if self.launch.devices is not None:
            self.launch.devices.release(finished.idx)
        trial.started = finished.started
        if self._retried(trial, finished):
            return trial
        self._record(trial, finished.ok, finished.value, finished.error, finished.ended, finished.working_dir)
        if self.running and self._stopping() and not self._announced:
            self._announced = True
            self.progress.console.print(
                f"too many trials failed: no new trial starts; waiting for the {len(self.running)} running",
                soft_wrap=True,
            )
        return trial

    def _retried(self, trial: Trial, finished: Any) -> bool:
        """Whether ``trial``'s attempt that ended as ``finished`` failed transiently and is run again (it waits,
        pending for the algorithm, at the front of :attr:`retry`); its attempt is recorded in its history."""
        from qframe.tuning.retries import attempt_record, may_retry

        if not may_retry(trial, finished, self.settings):
            return False
        reason = _first_line(finished.error)
        trial.history.append(attempt_record(trial, reason, finished.ended, finished.working_dir))
        trial.owner = None
        self.retry.insert(0, trial)
        self.state.save(self.state_path)
        self.progress.console.print(
            f"trial {trial.number} attempt {trial.attempts} (job {trial.job}) failed transiently ({reason}): "
            f"retried ({len([a for a in trial.history if a['status'] == 'retried'])} of "
            f"max_retries={int(self.settings.max_retries)})",
            soft_wrap=True,
            markup=False,
        )
        return True

    def _run_batches(self) -> None:
        from qframe.launch.hydra_compat import choose_path, job_outcome

        fast = choose_path().fast  # how a JobReturn's failure is read: Hydra's version decides
        while not self._stopping() and self._remaining(0) > 0:
            batch = [self._new_trial() for _ in range(min(int(self.settings.n_jobs), self._remaining(0)))]
            started = time.time()
            for trial in batch:
                trial.status, trial.started = "running", started
            self.state.save(self.state_path)
            devices = self.launch.devices
            gpus = [devices.acquire(t.job) if devices is not None else None for t in batch]
            pairs = zip(batch, gpus, strict=True)
            overrides = [self._overrides(self.space, t, g) + self.extra_overrides for t, g in pairs]
            returns = self.launch.launcher.launch(overrides, initial_job_idx=batch[0].job)
            ended = time.time()
            for trial, ret in zip(batch, returns, strict=True):
                if devices is not None:
                    devices.release(trial.job)
                ok, result = job_outcome(ret, fast)
                error = None if ok else f"{type(result).__name__}: {result}"
                finished = Finished(trial.job, [], ok, error=error, started=started, ended=ended, kind="exception")
                if not ok and self._retried(trial, finished):
                    continue
                self._record(trial, ok, result if ok else None, error, ended, _job_dir(ret))

    def _remaining(self, running: int) -> int:
        counts = self.state.counts()
        return int(self.settings.n_trials) - counts["complete"] - counts["failed"] - running

    def _stopping(self) -> bool:
        """Whether more trials failed than ``max_failure_rate`` allows: no new trial may start."""
        return self.settings.too_many_failures(self.state.counts()["failed"])

    def _new_trial(self) -> Trial:
        """The next trial: an interrupted one again (with a new job number), else the search algorithm's next point."""
        state = self.state
        if self.retry:
            trial = self.retry.pop(0)
            trial.attempts += 1
            trial.job = self.next_job()
            trial.started = None
            return trial
        number = len(state.trials)
        params, hyperopt_vals = self.optimizer.ask(number)
        trial = Trial(number=number, job=self.next_job(), status="running", params=params, vals=hyperopt_vals)
        state.trials.append(trial)
        return trial

    def _record(
        self, trial: Trial, ok: bool, value: Any, error: str | None, ended: float, working_dir: str | None
    ) -> None:
        """Record a trial's outcome: tell the algorithm (never a failure), save the state, update the parent run,
        show the progress line."""
        objective, why = _objective_value(value) if ok else (None, _first_line(error))
        trial.ended = ended
        trial.working_dir = working_dir
        trial.owner = None  # its process is done
        if objective is None:
            trial.status, trial.error, trial.value = "failed", why, None
            self.optimizer.tell(trial.number, None)
        else:
            trial.status, trial.error, trial.value = "complete", None, objective
            self.optimizer.tell(trial.number, self.settings.loss(objective))
        self.state.save(self.state_path)
        if self.tracking is not None and trial.status == "complete":
            from qframe.tuning.mlflow_parent import log_best_so_far
            from qframe.tuning.outputs import best_trial

            best = float(best_trial(self.state, self.settings.direction).value)
            log_best_so_far(self.tracking, trial.number, best, ended)
        self.progress.trial(self.state, trial)

    def _overrides(self, space: Space, trial: Trial, gpus: str | None = None) -> list[str]:
        """The trial's overrides, and its identity as environment variables of the job.

        ``hydra.job.env_set`` reaches the job on every launcher (forked, in-process, joblib, Ray, Slurm), unlike
        this process's own environment; as a ``hydra.*`` override it stays out of the trial's task overrides.
        """
        from qframe.core.context import trial_environment
        from qframe.launch.devices import VISIBLE_ENV
        from qframe.launch.threads import THREADS_ENV

        env = trial_environment(
            trial.number, self.tracking.run_id if self.tracking is not None else None, trial.attempts
        )
        if self.threads is not None:
            env[THREADS_ENV] = str(self.threads)
        if gpus is not None:
            env[VISIBLE_ENV] = gpus
        identity = [f"++hydra.job.env_set.{k}={format_value(v)}" for k, v in env.items()]
        return space.overrides(trial.params) + identity


def _objective_value(value: Any) -> tuple[float | None, str | None]:
    """(objective, None) for a job that returned a finite number, else (None, why it is not usable)."""
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


def _job_dir(ret: Any) -> str | None:
    try:
        return str(ret.hydra_cfg.hydra.runtime.output_dir)
    except Exception:  # noqa: BLE001 - a launcher that returns no hydra config: the job dir is unknown
        return None
