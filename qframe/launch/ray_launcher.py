"""The Hydra launcher behind ``hydra/launcher=qframe_ray``: jobs on Ray workers, asynchronous slots.

The fork launcher's code (:class:`qframe.launch.launcher.ForkLauncher`: Hydra's batch ``launch``, the
one-job-at-a-time :class:`qframe.launch.protocols.JobSubmitter` qframe's sweeper uses, threads per job, stopping a
grid) over a :class:`qframe.launch.ray_runner.RayRunner` instead of a fork runner.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import OmegaConf

from qframe.launch.hydra_compat import launcher_path
from qframe.launch.launcher import ForkLauncher
from qframe.launch.ray_runner import RayRunner, RaySettings

log = logging.getLogger("qframe.launch")


class RayLauncher(ForkLauncher):
    """Implementation of :class:`hydra_plugins.qframe_ray_launcher.qframe_ray_launcher.QFrameRayLauncher`."""

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
        super().__init__(n_jobs=n_jobs, timeout=timeout, preload=preload, fast_path=fast_path)
        if float(num_cpus) <= 0:
            from qframe.core.errors import ConfigError

            raise ConfigError(f"hydra.launcher.num_cpus must be > 0 (CPUs each Ray worker reserves), got {num_cpus}")
        self.address = str(address) if address else None
        self.temp_dir = str(temp_dir) if temp_dir else None
        self.num_cpus = float(num_cpus)

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.config = config
        fast = launcher_path(self.fast_path).fast
        # a worker per slot, started now: qframe's sweeper runs hydra.sweeper.n_jobs trials at a time
        workers = max(self.n_jobs, int(OmegaConf.select(config, "hydra.sweeper.n_jobs", default=1) or 1))
        settings = RaySettings(self.address, self.temp_dir, self.num_cpus, workers)
        self.runner = RayRunner(hydra_context, task_function, config, settings, prefork=self.preload, fast_path=fast)
        log.info(f"Ray workers on {self.runner.address}: {workers} started, {self.num_cpus:g} CPU each")
