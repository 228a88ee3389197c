"""Run Hydra jobs in forked child processes: isolation at ~10 ms per job, with timeout and crash detection.

The parent (the sweep process) imports the heavy stack once (pandas, LightGBM, MLflow, qframe) and never runs a
model itself, so it never starts an OpenMP thread pool and holds no MLflow database connection: forking it is safe
(GNU libgomp is not fork-safe; a parent that had trained LightGBM would hang its children). Every job gets a fresh
copy-on-write child; a crash, a leak or a hang stays in that child.

What every job would otherwise redo is done once in the parent: Hydra's composition of the job config (a template
per set of structural overrides, :mod:`qframe.launch.compose`) and, for a task function that implements
:class:`ForkAwareTask`, importing its modules and loading the inputs the jobs share.

A child sends one message back over a pipe: ``("ok", value)`` or ``("error", "Type: message")``. A child that dies
without a message died by a signal (segfault, OOM kill, ``kill -9``) or exited hard; one that outlives its timeout is
killed. Either way the job is reported FAILED with the reason.

Each child leads its own process group and dies with the parent (:mod:`qframe.launch.lifecycle`): a kill (timeout,
the sweep stopping) kills the job's whole group, what the job started included, and a parent killed by any means
takes its children with it.
"""

from __future__ import annotations

import copy
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qframe.launch.compose import JobComposer, PlannedJob
from qframe.launch.lifecycle import bind_to_parent, kill_group, lead_group, signals_held, stop_gently
from qframe.launch.protocols import ForkAwareTask

log = logging.getLogger("qframe.launch")


#: seconds a child that has reported its result may take to exit before it is killed
EXIT_GRACE = 30.0


class TrialFailed(Exception):
    """The reason a job failed, as recorded in a :class:`hydra.core.utils.JobReturn`."""


@dataclass
class Finished:
    """A finished job: its index, overrides, status and either the value or the failure reason."""

    idx: int
    overrides: list[str]
    ok: bool
    value: Any = None
    error: str | None = None
    started: float = 0.0
    ended: float = 0.0
    working_dir: str | None = None
    # what ended it: "ok", "exception" (a message from the job), "signal" (``signum``), "exit", "timeout", "memory"
    kind: str = "ok"
    signum: int | None = None


@dataclass
class _Running:
    idx: int
    overrides: list[str]
    process: Any
    conn: Any
    started: float
    timeout: float | None
    message: tuple | None = None
    killed_for_timeout: bool = False


def preload(modules: Sequence[str]) -> None:
    """Import ``modules`` now (in the parent) so forked children find them loaded; missing ones are skipped."""
    import importlib

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def run_reported_job(hydra_context: Any, task_function: Any, config: Any, fast_path: bool) -> tuple[str, Any, Any]:
    """Run one job whose ``config`` this process owns, as Hydra's ``run_job`` would: ``(status, payload,
    working_dir)``, the message a job sends back (``"ok"`` and the value, or ``"error"`` and ``"Type: message"``).

    Everything the job does wrong is its failure, reported, never raised: used by a forked child and by a Ray worker
    (:mod:`qframe.launch.ray_runner`)."""
    status, payload, working_dir = "error", "no result", None
    try:
        from hydra.core.utils import setup_globals

        from qframe.launch.hydra_compat import job_outcome
        from qframe.launch.job import run_child_job

        setup_globals()
        ret = run_child_job(hydra_context, task_function, config, fast_path)
        # hydra.runtime.output_dir is the job's directory (ret.working_dir is the cwd, unchanged with chdir=False)
        try:
            working_dir = str(ret.hydra_cfg.hydra.runtime.output_dir)
        except Exception:  # noqa: BLE001 - the job dir is informative only
            working_dir = None
        ok, result = job_outcome(ret, fast_path)
        status, payload = ("ok", result) if ok else ("error", f"{type(result).__name__}: {result}")
    except BaseException as exc:  # noqa: BLE001 - everything a job does wrong is the job's failure
        status, payload = "error", f"{type(exc).__name__}: {exc}"
    return status, payload, working_dir


def _child_main(
    conn: Any,
    hydra_context: Any,
    task_function: Any,
    job: PlannedJob,
    idx: int,
    fast_path: bool,
    parent_pid: int,
    limits: Any = None,
) -> None:
    """Body of a job's child process: finish the job's config, run it as Hydra's ``run_job`` would, report."""
    bind_to_parent(parent_pid)
    if limits is not None:
        limits.enter(idx)  # qframe.launch.limits: this process's memory limit
    # this child's own copy of the config (on the fast path the template, edited in place)
    try:
        status, payload, working_dir = run_reported_job(hydra_context, task_function, job.config(idx), fast_path)
    except BaseException as exc:  # noqa: BLE001 - a config that cannot be built is the job's failure too
        status, payload, working_dir = "error", f"{type(exc).__name__}: {exc}", None
    try:
        conn.send((status, payload, working_dir))
    except Exception:  # noqa: BLE001 - an unpicklable return value is reported by its repr
        conn.send(("ok", repr(payload), working_dir))
    conn.close()
    # the job is done; what is left is tearing this process down (freeing its memory): let running jobs go first
    try:
        os.nice(19)
    except OSError:
        pass


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the job process died by {name}"
    return f"the job process exited with status {code} without a result"


def prefork_task(task_function: Any, job: PlannedJob, idx: int) -> bool:
    """Call ``task_function``'s :meth:`ForkAwareTask.prefork` with job ``idx``'s config, in this process: it loads
    what every job shares (qframe: the market, features and processed segments), once, the sweep's set-up rather
    than the job's. A prefork that fails costs a warning (each job then loads its own inputs) and returns False."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict, read_write

    instance = HydraConfig.instance()
    previous = instance.cfg
    t0 = time.perf_counter()
    try:
        config = job.config(idx, in_place=False)
        instance.set_config(config)  # ${hydra:...} interpolations resolve against the job's config
        task_config = copy.deepcopy(config)
        with read_write(task_config), open_dict(task_config):
            del task_config["hydra"]
        task_function.prefork(task_config)
    except Exception as exc:  # noqa: BLE001 - the jobs themselves report what is wrong
        why = f"{type(exc).__name__}: {exc}"
        log.warning(f"preloading the jobs' shared inputs failed, each job loads its own: {why}")
        log.debug("the preload's traceback", exc_info=True)
        return False
    finally:
        instance.cfg = previous
    log.info(f"loaded the inputs the jobs share in {time.perf_counter() - t0:.1f} s")
    return True


class ForkRunner:
    """Forks one child per job; at most ``slots`` at a time are meant to run (the caller decides when to submit)."""

    def __init__(
        self, hydra_context: Any, task_function: Any, config: Any, prefork: bool = True, fast_path: bool = True
    ) -> None:
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.config = config
        self.ctx = multiprocessing.get_context("fork")
        self.running: dict[int, _Running] = {}
        self.exiting: list[tuple[Any, float]] = []  # (process, kill after): reported, not yet exited
        self.fast_path = fast_path  # through Hydra internals (qframe.launch.hydra_compat decided)
        self.composer = JobComposer(hydra_context.config_loader, config, fast_path=fast_path)
        # a task that prepares its jobs does so once, before the first fork
        self.prefork_pending = prefork and isinstance(task_function, ForkAwareTask)
        self.limits: Any = None  # a qframe.launch.limits.TrialLimits: each job's memory limit (None: none)

    def submit(self, overrides: Sequence[str], idx: int, timeout: float | None = None) -> float:
        """Start job ``idx`` in a fresh child; return its start time (``time.time()``)."""
        if self.prefork_pending:
            self.prefork_pending = False
            self._prefork(self.composer.plan(list(overrides)), idx)  # one-off: the sweep's set-up, not the job's
        started = time.time()
        job = self.composer.plan(list(overrides))
        parent_conn, child_conn = self.ctx.Pipe(duplex=False)
        if self.limits is not None:
            self.limits.before_fork(idx)
        process = self.ctx.Process(
            target=_child_main,
            args=(
                child_conn,
                self.hydra_context,
                self.task_function,
                job,
                idx,
                self.fast_path,
                os.getpid(),
                self.limits,
            ),
            name=f"qframe-job-{idx}",
            daemon=False,
        )
        # the child's garbage collector would otherwise walk (and so copy, page by page) every object of this
        # process: the whole imported stack and the preloaded inputs
        gc.freeze()
        with signals_held():
            process.start()
            lead_group(process.pid)
        child_conn.close()
        self.running[idx] = _Running(idx, list(overrides), process, parent_conn, started, timeout)
        return started

    def _prefork(self, job: PlannedJob, idx: int) -> None:
        """Call the task's :meth:`ForkAwareTask.prefork` with the first job's config, in this process
        (:func:`prefork_task`); the children inherit what it loads copy-on-write."""
        prefork_task(self.task_function, job, idx)
        gc.collect()  # what the preload left for collection, before gc.freeze() makes everything permanent
        extra = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        if extra:  # a thread (or a pool it belongs to) would not survive the fork: children could hang
            log.warning(f"threads still running in the launcher's parent before forking jobs: {', '.join(extra)}")

    def wait(self, poll: float = 0.5) -> list[Finished]:
        """Block until at least one running job finishes (or times out); return the finished ones."""
        while self.running:
            self._kill_overdue()
            waitables = []
            for job in self.running.values():
                waitables.append(job.process.sentinel)
                if job.message is None and not job.conn.closed:
                    waitables.append(job.conn)
            multiprocessing.connection.wait(waitables, timeout=self._next_deadline(poll))
            done = self._collect()
            if done:
                return done
        return []

    def _next_deadline(self, poll: float) -> float:
        now = time.time()
        wait = poll
        for job in self.running.values():
            if job.timeout:
                wait = min(wait, max(0.0, job.started + job.timeout - now))
        return max(wait, 0.01)

    def pid(self, idx: int) -> int | None:
        """The process id of running job ``idx`` (the leader of its process group)."""
        job = self.running.get(idx)
        return job.process.pid if job is not None else None

    def _kill_overdue(self) -> None:
        now = time.time()
        for job in self.running.values():
            if job.timeout and not job.killed_for_timeout and now - job.started > job.timeout:
                job.killed_for_timeout = True
                kill_group(job.process.pid)

    def _collect(self) -> list[Finished]:
        """Jobs that reported (their process may still be exiting: it is reaped later) or died without a report."""
        self._reap()
        done = []
        for idx, job in list(self.running.items()):
            if job.message is None and not job.conn.closed and job.conn.poll():
                try:
                    job.message = job.conn.recv()
                except (EOFError, OSError):
                    job.conn.close()
            if job.message is None and job.process.is_alive():
                continue
            ended = time.time()
            job.conn.close()
            del self.running[idx]
            if job.message is not None and not job.killed_for_timeout:
                # the result is in: a child's exit (unmapping its memory) overlaps the next job
                self.exiting.append((job.process, ended + EXIT_GRACE))
                status, payload, working_dir = job.message
                ok = status == "ok"
                error = self._explain(idx, None if ok else str(payload))  # (a job's cgroup is released)
                done.append(
                    Finished(
                        idx,
                        job.overrides,
                        ok,
                        value=payload if ok else None,
                        error=error,
                        started=job.started,
                        ended=ended,
                        working_dir=working_dir,
                        kind=_kind("ok" if ok else "exception", error),
                    )
                )
                continue
            job.process.join()
            code = job.process.exitcode
            if job.killed_for_timeout:
                kind, error = "timeout", f"timed out after {job.timeout:g} s (killed)"
            else:
                kind, error = ("signal" if code is not None and code < 0 else "exit"), _describe_exit(code)
            error = self._explain(idx, error)
            signum = -code if code is not None and code < 0 else None
            finished = Finished(idx, job.overrides, False, error=error, started=job.started, ended=ended)
            finished.kind, finished.signum = _kind(kind, error), signum
            done.append(finished)
        return done

    def _explain(self, idx: int, error: str | None) -> str | None:
        """``error``, or why the memory limit ended the job (:meth:`qframe.launch.limits.TrialLimits.explain`)."""
        return self.limits.explain(idx, error) if self.limits is not None else error

    def _reap(self) -> None:
        """Join children that reported and have exited since; kill those that outlive the grace period."""
        now = time.time()
        still = []
        for process, deadline in self.exiting:
            if process.is_alive() and now > deadline:
                kill_group(process.pid)
            if process.is_alive():
                still.append((process, deadline))
            else:
                process.join()
        self.exiting = still

    def kill_all(self, grace: float = 0.0) -> None:
        """Kill every running child (the sweep is stopping) and wait for those still exiting.

        With ``grace``, each running job first gets SIGTERM and up to ``grace`` seconds to end as an interrupted job
        does (its MLflow run KILLED, with its params): what a plain grid, with no parent run to settle them, needs.
        """
        if grace > 0 and self.running:
            stop_gently([job.process.pid for job in self.running.values()], grace)
        for job in self.running.values():
            kill_group(job.process.pid)  # the group outlives a job's exit while what it started still runs
        for job in self.running.values():
            job.process.join(5)
        self.running.clear()
        for process, _ in self.exiting:
            process.join(EXIT_GRACE)
            if process.is_alive():
                kill_group(process.pid)
                process.join(5)
        self.exiting = []
        if self.limits is not None:
            self.limits.close()


def _kind(kind: str, error: str | None) -> str:
    return "memory" if error is not None and error.startswith("memory limit exceeded") else kind


def job_return(finished: Finished, config: Any) -> Any:
    """A Hydra ``JobReturn`` for a finished child (FAILED ones carry a :class:`TrialFailed`)."""
    from hydra.core.utils import JobReturn, JobStatus

    ret = JobReturn()
    ret.overrides = finished.overrides
    ret.working_dir = finished.working_dir or str(Path(str(config.hydra.sweep.dir)) / str(finished.idx))
    ret.task_name = config.hydra.job.name
    if finished.ok:
        ret.status = JobStatus.COMPLETED
        ret.return_value = finished.value
    else:
        ret.status = JobStatus.FAILED
        ret.return_value = TrialFailed(finished.error)
    return ret
