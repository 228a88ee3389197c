"""``hydra/launcher=qframe``: each job in a forked child of a parent that preloaded the stack.

Thin on purpose: Hydra imports every module under ``hydra_plugins`` in every process, so the implementation
(:mod:`qframe.launch.launcher`) is imported only when the launcher is set up.
"""

# no `from __future__ import annotations`: Hydra execs this module outside sys.modules, where dataclasses
# cannot resolve string annotations
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher

from qframe.launch.delegate import DelegatingLauncher


@dataclass
class QFrameLauncherConf:
    _target_: str = "hydra_plugins.qframe_launcher.qframe_launcher.QFrameLauncher"
    # jobs run at the same time when Hydra hands over a batch (qframe's sweeper uses its own n_jobs instead)
    n_jobs: int = 1
    # seconds before a job is killed and recorded as failed (null: no limit)
    timeout: float | None = None
    # import pandas/LightGBM/MLflow/qframe and load the inputs the jobs share (market, features) in the parent
    # once, so every forked job starts with them loaded
    preload: bool = True
    # compose and run each job through qframe's copies of Hydra internals (~0.1 s less a job) on the Hydra version
    # they were verified on; false (or another Hydra): through Hydra's public API, as its basic launcher does
    fast_path: bool = True


ConfigStore.instance().store(group="hydra/launcher", name="qframe", node=QFrameLauncherConf, provider="qframe")


class QFrameLauncher(DelegatingLauncher, Launcher):
    """Hydra launcher running every job in its own forked process (see :mod:`qframe.launch.forking`)."""

    def __init__(
        self, n_jobs: int = 1, timeout: float | None = None, preload: bool = True, fast_path: bool = True
    ) -> None:
        from qframe.launch.launcher import ForkLauncher

        self.impl = ForkLauncher(n_jobs=n_jobs, timeout=timeout, preload=preload, fast_path=fast_path)

    def set_limits(self, limits: Any) -> None:
        """Each job's memory limit from now on (:class:`qframe.launch.limits.TrialLimits`: qframe's sweeper)."""
        self.impl.set_limits(limits)
