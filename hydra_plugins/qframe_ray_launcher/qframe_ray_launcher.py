"""``hydra/launcher=qframe_ray``: jobs on long-lived Ray workers (a local instance or a cluster), asynchronous slots.

Thin on purpose: Hydra imports every module under ``hydra_plugins`` in every process, so Ray and the implementation
(:mod:`qframe.launch.ray_launcher`) are imported only when the launcher is set up.
"""

# no `from __future__ import annotations`: Hydra execs this module outside sys.modules, where dataclasses
# cannot resolve string annotations
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher

from qframe.launch.delegate import DelegatingLauncher


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


class QFrameRayLauncher(DelegatingLauncher, Launcher):
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
