"""The Hydra launcher behind ``hydra/launcher=qframe``: every job in its own forked child, ``n_jobs`` at a time."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qframe.launch.forking import Finished, ForkRunner, job_return, preload
from qframe.launch.hydra_compat import launcher_path
from qframe.launch.interrupts import SweepInterrupted, signals_interrupt
from qframe.launch.protocols import ForkAwareTask

log = logging.getLogger("qframe.launch")

#: seconds a stopped grid's running jobs get to record their end (KILLED) before their groups are killed
STOP_GRACE = 3.0


class ForkLauncher:
    """Implementation of :class:`hydra_plugins.qframe_launcher.qframe_launcher.QFrameLauncher`: Hydra's batch
    ``launch``, and the one-job-at-a-time :class:`qframe.launch.protocols.JobSubmitter` qframe's sweeper uses."""

    def __init__(
        self, n_jobs: int = 1, timeout: float | None = None, preload: bool = True, fast_path: bool = True
    ) -> None:
        if int(n_jobs) < 1:
            from qframe.core.errors import ConfigError

            raise ConfigError(f"hydra.launcher.n_jobs must be >= 1, got {n_jobs}")
        self.n_jobs = int(n_jobs)
        self.timeout = float(timeout) if timeout else None
        self.preload = bool(preload)
        self.fast_path = bool(fast_path)  # asked for: hydra_compat decides at set-up
        self.runner: ForkRunner | None = None
        self.config: Any = None
        self.threads_logged = False  # the thread-count line is logged once, not once per batch

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.config = config
        if self.preload and isinstance(task_function, ForkAwareTask):
            preload(task_function.preload_modules)
        fast = launcher_path(self.fast_path).fast
        self.runner = ForkRunner(hydra_context, task_function, config, prefork=self.preload, fast_path=fast)

    # the asynchronous API qframe's sweeper uses: submit whenever a slot is free, wait for any job to end
    def submit(self, overrides: Sequence[str], idx: int, timeout: float | None = None) -> float:
        """Start job ``idx`` now; returns its start time."""
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        return self.runner.submit(overrides, idx, timeout if timeout is not None else self.timeout)

    def wait(self) -> list[Finished]:
        """Block until at least one submitted job has finished; return those that have."""
        return self.runner.wait()

    def running(self) -> int:
        return len(self.runner.running)

    def pid(self, idx: int) -> int | None:
        return self.runner.pid(idx)

    def kill_all(self) -> None:
        self.runner.kill_all()

    def set_limits(self, limits: Any) -> None:
        """Put every job forked from now on under ``limits`` (a :class:`qframe.launch.limits.TrialLimits`)."""
        self.runner.limits = limits

    def preload_again(self) -> None:
        """Load the jobs' shared inputs again, from the next submitted job's config: a pipeline stage whose trials
        read other inputs (a re-evaluation of recorded predictions). Jobs forked before keep what they had."""
        if self.runner is not None and self.preload:
            self.runner.prefork_pending = isinstance(self.runner.task_function, ForkAwareTask)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
        """Hydra's batch API: run every job (``n_jobs`` at a time) and return JobReturns in order."""
        from hydra.core.utils import filter_overrides

        job_overrides = self._with_threads(job_overrides)
        pending = list(enumerate(job_overrides, start=initial_job_idx))
        log.info(f"Launching {len(pending)} jobs in forked processes ({self.n_jobs} at a time)")
        results: dict[int, Finished] = {}
        try:
            with signals_interrupt():  # SIGTERM (a batch scheduler) stops the grid as Ctrl-C does
                while pending or self.running():
                    while pending and self.running() < self.n_jobs:
                        idx, overrides = pending.pop(0)
                        shown = [o for o in filter_overrides(overrides) if not o.lstrip("+~").startswith("hydra.")]
                        log.info(f"\t#{idx} : {' '.join(shown)}")
                        self.submit(overrides, idx)
                    for finished in self.wait():
                        results[finished.idx] = finished
        except SweepInterrupted as exc:
            # no parent run settles a grid's runs: each running job ends its own (KILLED) before its group dies
            self.runner.kill_all(grace=STOP_GRACE)
            total = len(job_overrides)
            print(
                f"qframe: grid stopped by {exc}: {len(results)} of {total} jobs had finished (their outputs are in "
                f"{self.config.hydra.sweep.dir}); the running ones were killed, the rest did not start",
                file=sys.stderr,
            )
            sys.exit(exc.exit_status)
        finally:
            self.kill_all()
        return [job_return(results[i], self.config) for i in sorted(results)]

    def _with_threads(self, job_overrides: Sequence[Sequence[str]]) -> list[list[str]]:
        """Each job's overrides, plus its model's thread count when ``n_jobs`` jobs share the cores.

        Only for jobs that set neither ``model.num_threads`` nor the count itself (qframe's sweeper passes its own),
        and only when the sweep's config leaves ``model.num_threads`` null; logged once per sweep.
        """
        from qframe.launch.threads import THREADS_ENV, describe, env_override, job_threads, sets_threads

        jobs = [list(o) for o in job_overrides]
        threads = job_threads(self.config, self.n_jobs)
        if threads is None:
            return jobs
        marker = f"hydra.job.env_set.{THREADS_ENV}="
        changed = False
        for overrides in jobs:
            if not sets_threads(overrides) and not any(marker in line for line in overrides):
                overrides.append(env_override(threads))
                changed = True
        if changed and not self.threads_logged:
            self.threads_logged = True
            log.info(describe(self.n_jobs, threads, "job"))
        return jobs
