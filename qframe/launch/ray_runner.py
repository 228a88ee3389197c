"""Run Hydra jobs on Ray: long-lived worker actors, one per slot, and the jobs' shared inputs in the object store.

The counterpart of :mod:`qframe.launch.forking` for a Ray instance or cluster, with the same interface
(:class:`RayRunner` is driven by :class:`qframe.launch.launcher.ForkLauncher`'s code): ``submit`` a job the moment
a slot is free, ``wait`` for any job to end, the same :class:`~qframe.launch.forking.Finished` records.

* **Workers.** A :class:`TrialWorker` actor per slot (``num_cpus`` each, spread over the nodes) imports the task's
  modules once when it starts and then runs job after job: no cold import per trial. A worker that died (its process
  killed, its node lost) or was killed for a timeout is replaced by a fresh one at the next submit.
* **Inputs.** Before the first job, the task's :meth:`~qframe.launch.protocols.ForkAwareTask.prefork` runs here, in
  the driver, as the fork launcher runs it in its parent; the prepared task object (qframe's: with the market,
  features and processed segments) goes into Ray's object store once (``ray.put``). Each worker fetches it once
  (numpy arrays zero-copy and read-only on the same node) and keeps it for its later jobs.
* **Job configs** are composed here (:mod:`qframe.launch.compose`) with the sweep's directory resolved (absolute,
  this process's); each worker runs its job as a forked child does (:func:`qframe.launch.forking.run_reported_job`).
* **Failures.** A job's exception is ``kind="exception"``; one that outlives its timeout is killed with its worker
  (``ray.kill``: the process ends) and is ``kind="timeout"``; a worker or node that dies under a job costs that job
  only: ``kind="lost"``, an error starting ``RayActorError``, which the sweeper's retries count as transient
  (``hydra.sweeper.max_retries``).
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qframe.launch.compose import JobComposer
from qframe.launch.forking import Finished, prefork_task, run_reported_job
from qframe.launch.protocols import ForkAwareTask

log = logging.getLogger("qframe.launch")

#: environment variables of the driver a worker takes over (workers on a cluster do not inherit its environment;
#: a forked child does): qframe's and MLflow's configuration
FORWARDED_ENV = ("QFRAME_", "MLFLOW_")
#: how long a job waits for its worker to start (Ray placing it, its imports) before it fails instead of waiting
#: for ever on a cluster with no free CPU; its own timeout, when longer, counts instead
WORKER_START_LIMIT_S = 600.0


@dataclass(frozen=True)
class RaySettings:
    """Where and how the workers run (``hydra.launcher.*`` of ``hydra/launcher=qframe_ray``)."""

    address: str | None = None  # a cluster (``HOST:PORT``, ``ray://HOST:PORT``); None: RAY_ADDRESS, else local
    temp_dir: str | None = None  # a new local instance's session directory (None: Ray's default)
    num_cpus: float = 1.0  # CPUs each worker (slot) reserves
    workers: int = 1  # workers started with the launcher (more start as slots need them)


class TrialWorker:
    """A Ray actor that runs jobs one after another in one process, keeping the imported stack and the shared
    inputs between them (made a Ray actor class by :class:`RayRunner`)."""

    def __init__(
        self, hydra_context: Any, singleton_state: Any, modules: Sequence[str], env: Mapping[str, str], fast_path: bool
    ) -> None:
        from hydra.core.singleton import Singleton
        from hydra.core.utils import setup_globals

        from qframe.launch.forking import preload

        os.environ.update(env)
        preload(modules)
        setup_globals()
        Singleton.set_state(singleton_state)  # the driver's ConfigStore, plugins and JobRuntime
        self.hydra_context = hydra_context
        self.fast_path = fast_path
        self.task: Any = None
        self.task_key: str | None = None

    def run(self, task_box: list, config: Any, idx: int) -> tuple[str, Any, Any]:
        """Run job ``idx`` of ``config`` with the task object in ``task_box`` (its object ref, in a list so that Ray
        hands the ref over, not the value: fetched only when it is not the one this worker holds)."""
        import ray

        ref = task_box[0]
        if ref.hex() != self.task_key:
            self.task, self.task_key = ray.get(ref), ref.hex()
        cwd = os.getcwd()
        launch_dir = str(config.hydra.runtime.cwd)
        if os.path.isdir(launch_dir):  # relative paths of the job mean what they mean in the sweep's directory
            os.chdir(launch_dir)
        try:
            status, payload, working_dir = run_reported_job(self.hydra_context, self.task, config, self.fast_path)
        finally:
            os.chdir(cwd)
        try:
            pickle.dumps(payload)
        except Exception:  # noqa: BLE001 - an unpicklable return value is reported by its repr
            payload = repr(payload)
        return status, payload, working_dir

    def where(self) -> dict[str, str]:
        """Where this worker runs (:func:`qframe.core.tracking.location_tags`)."""
        from qframe.core.tracking import location_tags

        return location_tags()


@dataclass
class _RayRunning:
    idx: int
    overrides: list[str]
    worker: Any
    ref: Any
    started: float
    timeout: float | None
    clock: float | None = None  # when its timeout started counting: once its worker had started (None: not yet)


class RayRunner:
    """Runs jobs on Ray workers; at most as many at a time as the caller submits (one worker per running job)."""

    def __init__(
        self,
        hydra_context: Any,
        task_function: Any,
        config: Any,
        settings: RaySettings,
        prefork: bool = True,
        fast_path: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        import ray
        from hydra.core.singleton import Singleton
        from omegaconf import OmegaConf

        self.hydra_context = hydra_context
        self.task_function = task_function
        self.config = config
        self.settings = settings
        self.fast_path = fast_path
        self.composer = JobComposer(hydra_context.config_loader, config, fast_path=fast_path)
        self.sweep_dir = os.path.abspath(str(OmegaConf.select(config, "hydra.sweep.dir")))
        self.running: dict[int, _RayRunning] = {}
        self.idle: list[Any] = []  # workers that finished their job, alive as far as this process knows
        self.node_of: dict[Any, Any] = {}  # worker -> the ref of its location (TrialWorker.where)
        self.lost_nodes: set[str] = set()  # nodes a worker died on: replacements go elsewhere while others are up
        self.limits: Any = None  # not enforced on Ray (the fork launcher's memory limit needs its own processes)
        self.prefork_pending = prefork and isinstance(task_function, ForkAwareTask)
        environ = os.environ if environ is None else environ
        self.address = connect(settings, environ, max(1, settings.workers))
        self.task_ref = ray.put(task_function)
        self.worker_class = ray.remote(TrialWorker)
        modules = tuple(task_function.preload_modules) if isinstance(task_function, ForkAwareTask) else ()
        self.worker_args = (
            hydra_context,
            Singleton.get_state(),
            modules,
            {k: v for k, v in environ.items() if k.startswith(FORWARDED_ENV)},
            fast_path,
        )
        # the slots' workers start importing now, while this process composes and loads the shared inputs
        self.idle = [self._new_worker() for _ in range(max(1, settings.workers))]

    def _new_worker(self) -> Any:
        """A new worker, spread over the nodes; after a worker was lost, on a node other than the lost one's (the
        cluster may not know yet that the node is gone, and would place the replacement there)."""
        strategy: Any = "SPREAD"
        target = self._node_other_than(self.lost_nodes) if self.lost_nodes else None
        if target is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            strategy = NodeAffinitySchedulingStrategy(target, soft=True)  # soft: elsewhere if it has no room
        worker = self.worker_class.options(
            num_cpus=self.settings.num_cpus, scheduling_strategy=strategy, max_restarts=0, max_task_retries=0
        ).remote(*self.worker_args)
        self.node_of[worker] = worker.where.remote()  # where it runs, known once it has started
        return worker

    @staticmethod
    def _node_other_than(avoid: set[str]) -> str | None:
        import ray

        alive = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n["NodeID"] not in avoid]
        return alive[0] if alive else None

    def _lost(self, worker: Any) -> None:
        """``worker`` died under a job: its node is avoided for the workers that replace it."""
        import ray

        where = self.node_of.pop(worker, None)
        if where is not None:
            ready, _ = ray.wait([where], timeout=0)
            if ready:
                try:
                    self.lost_nodes.add(ray.get(where)["qframe.node"])
                except Exception:  # noqa: BLE001 - it died before saying where it ran
                    pass
        self._discard(worker)

    def submit(self, overrides: Sequence[str], idx: int, timeout: float | None = None) -> float:
        """Start job ``idx`` on an idle worker (a new one if none is); return its start time (``time.time()``)."""
        import ray
        from omegaconf import open_dict, read_write

        if self.prefork_pending:
            self.prefork_pending = False
            if prefork_task(self.task_function, self.composer.plan(list(overrides)), idx):
                t0 = time.perf_counter()
                self.task_ref = ray.put(self.task_function)  # once per sweep: every worker gets this ref
                log.info(f"put the jobs' shared inputs into Ray's object store in {time.perf_counter() - t0:.1f} s")
        started = time.time()
        config = self.composer.plan(list(overrides)).config(idx, in_place=False)
        with read_write(config.hydra), open_dict(config.hydra):
            # resolved here: ${qframe.pid:} and ${now:} would be the worker's own there
            config.hydra.sweep.dir = self.sweep_dir
        worker = self.idle.pop() if self.idle else self._new_worker()
        ref = worker.run.remote([self.task_ref], config, idx)
        clock = started if self._ready(worker) else None
        self.running[idx] = _RayRunning(idx, list(overrides), worker, ref, started, timeout, clock)
        return started

    def _ready(self, worker: Any) -> bool:
        """Whether ``worker`` has started (its imports done), as far as this process knows."""
        import ray

        where = self.node_of.get(worker)
        return where is None or bool(ray.wait([where], timeout=0)[0])

    def wait(self, poll: float = 0.5) -> list[Finished]:
        """Block until at least one running job finishes (or times out); return the finished ones."""
        import ray

        while self.running:
            refs = [job.ref for job in self.running.values()]
            ready, _ = ray.wait(refs, num_returns=1, timeout=self._next_deadline(poll))
            if ready:  # every other one that is done too
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            done_refs = set(ready)
            done = [self._finish(job) for job in list(self.running.values()) if job.ref in done_refs]
            done += self._kill_overdue()
            if done:
                return done
        return []

    def _next_deadline(self, poll: float) -> float:
        now = time.time()
        wait = poll
        for job in self.running.values():
            if job.timeout and job.clock is not None:
                wait = min(wait, max(0.0, job.clock + job.timeout - now))
        return max(wait, 0.01)

    def _finish(self, job: _RayRunning) -> Finished:
        import ray
        from ray.exceptions import RayActorError

        del self.running[job.idx]
        ended = time.time()
        try:
            status, payload, working_dir = ray.get(job.ref)
        except RayActorError as exc:  # the worker process or its node died: this job is lost, nothing else
            self._lost(job.worker)
            error = f"RayActorError: the Ray worker running job {job.idx} died ({_first_line(exc)})"
            return Finished(job.idx, job.overrides, False, error=error, started=job.started, ended=ended, kind="lost")
        except Exception as exc:  # noqa: BLE001 - any other failure of Ray's (an object lost...) is this job's
            self._discard(job.worker)
            error = f"{type(exc).__name__}: {_first_line(exc)}"
            return Finished(job.idx, job.overrides, False, error=error, started=job.started, ended=ended, kind="lost")
        self.idle.append(job.worker)
        ok = status == "ok"
        return Finished(
            job.idx,
            job.overrides,
            ok,
            value=payload if ok else None,
            error=None if ok else str(payload),
            started=job.started,
            ended=ended,
            working_dir=working_dir,
            kind="ok" if ok else "exception",
        )

    def _kill_overdue(self) -> list[Finished]:
        """Kill the jobs past their timeout, counted from when their worker was up (a new worker's start, its
        imports, is not the job's: with it a slow machine would time out every job of a fresh worker)."""
        now = time.time()
        done = []
        for job in list(self.running.values()):
            if job.timeout and job.clock is None and self._ready(job.worker):
                job.clock = now
            # a worker Ray cannot place (no free CPU on any node) would keep its job waiting for ever
            unplaced = job.clock is None and now - job.started > max(WORKER_START_LIMIT_S, job.timeout or 0)
            if unplaced or (job.timeout and job.clock is not None and now - job.clock > job.timeout):
                del self.running[job.idx]
                self._discard(job.worker)  # the worker's process ends: the job is stopped, not abandoned
                error = f"timed out after {job.timeout:g} s (killed)"
                if unplaced:
                    error = (
                        f"its Ray worker did not start within {now - job.started:.0f} s: the cluster has no free "
                        "CPU for it (fewer CPUs than hydra.launcher.n_jobs?)"
                    )
                done.append(
                    Finished(job.idx, job.overrides, False, error=error, started=job.started, ended=now, kind="timeout")
                )
        return done

    @staticmethod
    def _discard(worker: Any) -> None:
        import ray

        try:
            ray.kill(worker, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def pid(self, idx: int) -> int | None:
        """None: a job's process may be on another machine (a resumed sweep goes by the trial's lease)."""
        return None

    def kill_all(self, grace: float = 0.0) -> None:
        """Stop every running job (the sweep is stopping). With ``grace``, each first gets a KeyboardInterrupt
        (``ray.cancel``) and up to ``grace`` seconds to end as an interrupted job does; then its worker is killed.
        Idle workers stay for the next jobs; they end with this process."""
        import ray

        if grace > 0 and self.running:
            for job in self.running.values():
                try:
                    ray.cancel(job.ref, force=False)
                except Exception:  # noqa: BLE001 - done already
                    pass
            ray.wait([j.ref for j in self.running.values()], num_returns=len(self.running), timeout=grace)
        for job in self.running.values():
            self._discard(job.worker)
        self.running.clear()


def connect(settings: RaySettings, environ: Mapping[str, str], workers: int) -> str:
    """Connect this process to Ray: the cluster at ``settings.address`` (else ``RAY_ADDRESS``), or a new local
    instance with at least ``workers × num_cpus`` CPUs; what it connected to, in words."""
    import ray

    address = settings.address or environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        return "the Ray instance this process is connected to"
    if address and address != "local":
        key = "hydra.launcher.address" if settings.address else "RAY_ADDRESS"
        # ray.init retries an address nobody listens on for minutes, logging as it goes: ask once first
        why = _unreachable(address)
        try:
            if why is None:
                ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            why = _first_line(exc)
        if why is not None:
            from qframe.core.errors import ConfigError

            raise ConfigError(
                f"{key}={address}: no Ray cluster could be joined there ({why}); start one (`ray start --head`) or "
                "give no address for a local Ray instance"
            )
        return address
    cpus = max(os.cpu_count() or 1, int(workers * settings.num_cpus + 0.999))
    kwargs: dict[str, Any] = {"num_cpus": cpus, "include_dashboard": False}
    if settings.temp_dir:
        kwargs["_temp_dir"] = os.path.abspath(settings.temp_dir)
    ray.init(address="local", logging_level=logging.WARNING, **kwargs)
    return "a new local Ray instance"


def _unreachable(address: str, timeout: float = 10.0) -> str | None:
    """Why nothing answers at Ray ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``), None when a TCP connection
    opens (or the address is not of that form: Ray's to judge)."""
    import socket

    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        return f"nothing answers at {host}:{port}: {exc.strerror or exc}"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
