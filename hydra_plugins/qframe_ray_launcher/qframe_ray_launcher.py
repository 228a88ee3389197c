"""``hydra/launcher=qframe_ray``: jobs on long-lived Ray workers (a local instance or a cluster), asynchronous slots.

Thin on purpose: Hydra imports every module under ``hydra_plugins`` in every process, so Ray and the implementation
(:mod:`qframe.launch.ray_launcher`) are imported only when the launcher is set up.
"""

# no `from __future__ import annotations`: Hydra execs this module outside sys.modules, where dataclasses
# cannot resolve string annotations
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher


@dataclass
class QFrameRayLauncherConf:
    _target_: str = "hydra_plugins.qframe_ray_launcher.qframe_ray_launcher.QFrameRayLauncher"
    # jobs run at the same time when Hydra hands over a batch (qframe's sweeper uses its own n_jobs instead)
    n_jobs: int = 1
    # seconds before a job's worker is killed and the job recorded as failed (null: no limit)
    timeout: float | None = None
    # the Ray cluster to run on: HOST:PORT or ray://HOST:PORT; null: RAY_ADDRESS if set, else a new local instance
    address: str | None = None
    # a new local instance's session directory (null: Ray's default)
    temp_dir: str | None = None
    # CPUs each worker (one per slot) reserves on its node
    num_cpus: float = 1.0
    # load the inputs the jobs share (market, features) once in this process and put them into Ray's object store
    preload: bool = True
    # compose jobs through qframe's copies of Hydra internals (see hydra/launcher=qframe)
    fast_path: bool = True


ConfigStore.instance().store(group="hydra/launcher", name="qframe_ray", node=QFrameRayLauncherConf, provider="qframe")


class QFrameRayLauncher(Launcher):
    """Hydra launcher running jobs on Ray workers (see :mod:`qframe.launch.ray_runner`)."""

    def __init__(
        self,
        n_jobs: int = 1,
        timeout: float | None = None,
        address: str | None = None,
        temp_dir: str | None = None,
        num_cpus: float = 1.0,
        preload: bool = True,
        fast_path: bool = True,
    ) -> None:
        from qframe.launch.ray_launcher import RayLauncher

        self.impl = RayLauncher(n_jobs, timeout, address, temp_dir, num_cpus, preload, fast_path)

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[Any]:
        return self.impl.launch(job_overrides, initial_job_idx)

    # qframe.launch.protocols.JobSubmitter: qframe's sweeper submits a trial whenever a slot is free
    def submit(self, overrides: Sequence[str], idx: int, timeout: float | None = None) -> float:
        return self.impl.submit(overrides, idx, timeout)

    def wait(self) -> list[Any]:
        return self.impl.wait()

    def running(self) -> int:
        return self.impl.running()

    def pid(self, idx: int) -> int | None:
        return self.impl.pid(idx)

    def kill_all(self) -> None:
        self.impl.kill_all()

    def preload_again(self) -> None:
        """The next job's config loads the shared inputs again (a pipeline's re-evaluating stage)."""
        self.impl.preload_again()
