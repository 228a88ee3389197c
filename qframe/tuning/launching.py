"""The launcher that runs a sweep's trials: Hydra's configured one, what it can do, and the threads of each trial.

qframe's fork launcher is asynchronous (it implements :class:`qframe.launch.protocols.JobSubmitter`: ``submit`` a
trial whenever a slot is free, ``wait`` for any to end); any other launcher runs batches of ``n_jobs`` through
Hydra's ``launch``, and cannot kill a job, so ``trial_timeout`` makes the job interrupt itself
(:mod:`qframe.tuning.timeout`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qframe.launch.protocols import JobSubmitter
from qframe.tuning.settings import SweepSettings
from qframe.tuning.space import Space


@dataclass
class TrialLauncher:
    """A sweep's launcher, set up."""

    launcher: Any  # the Hydra launcher
    asynchronous: JobSubmitter | None  # the launcher itself when it takes one trial at a time, else None: batches
    slots: int  # trials running at once
    threads: int | None  # each trial's model threads (QFRAME_THREADS), None: not set
    limits: Any = None  # a qframe.launch.limits.TrialLimits (enforced by the fork launcher), None: none
    devices: Any = None  # a qframe.launch.devices.DeviceSlots: each slot's GPUs, None: no trial_gpus
    limits_line: str | None = None  # what the sweep says at its start about each trial's memory

    def start_lines(self) -> list[str]:
        """The lines a sweep prints at its start about its trials' resources (threads, memory, GPUs)."""
        from qframe.launch.threads import describe

        lines = [describe(self.slots, self.threads)] if self.threads is not None else []
        if self.limits_line:
            lines.append(self.limits_line)
        if self.devices is not None:
            lines.append(f"GPUs per trial: {self.devices.describe()}")
        return lines


def start_launcher(
    hydra_context: Any, task_function: Any, config: Any, settings: SweepSettings, space: Space
) -> TrialLauncher:
    """Instantiate and set up the configured launcher for the trials of ``space``."""
    from hydra.core.plugins import Plugins

    launcher = Plugins.instance().instantiate_launcher(
        hydra_context=hydra_context, task_function=task_function, config=config
    )
    asynchronous = isinstance(launcher, JobSubmitter)
    if settings.trial_timeout and not asynchronous:
        from qframe.tuning.timeout import TimedTask

        # a launcher that cannot kill a job: the job interrupts itself
        task = TimedTask(task_function, float(settings.trial_timeout))
        launcher.setup(hydra_context=hydra_context, task_function=task, config=config)
    slots = _slots(config, asynchronous, settings)
    launch = TrialLauncher(launcher, launcher if asynchronous else None, slots, _threads(config, space, slots))
    _set_resources(launch, config, settings)
    return launch


def _set_resources(launch: TrialLauncher, config: Any, settings: SweepSettings) -> None:
    """Each slot's GPUs (refused when there are too few) and each trial's memory limit (on the fork launcher)."""
    from omegaconf import OmegaConf

    from qframe.launch.devices import DeviceSlots, visible_devices
    from qframe.launch.limits import TrialLimits

    devices = DeviceSlots(int(settings.trial_gpus), launch.slots)
    launch.devices = devices if devices.enabled else None
    if hasattr(launch.launcher, "set_limits"):
        # where a trial may use CUDA (GPUs here), an address-space limit would break it: only a cgroup limits memory
        cuda = devices.enabled or bool(visible_devices())
        launch.limits = TrialLimits.create(settings.trial_memory, launch.slots, gpus=cuda)
        launch.launcher.set_limits(launch.limits)
        launch.limits_line = launch.limits.describe(launch.slots)
    elif settings.trial_memory is not None:
        target = str(OmegaConf.select(config, "hydra.launcher._target_", default="") or "").rsplit(".", 1)[-1]
        launch.limits_line = (
            f"no memory limit per trial: {target or 'this launcher'} cannot enforce hydra.sweeper.trial_memory "
            "(hydra/launcher=qframe does)"
        )


def _slots(config: Any, asynchronous: bool, settings: SweepSettings) -> int:
    from omegaconf import OmegaConf

    # the basic launcher runs a batch's trials one after another, in this process; told by its config's target (a
    # public string) rather than by importing its class from hydra._internal
    target = str(OmegaConf.select(config, "hydra.launcher._target_", default="") or "")
    return 1 if not asynchronous and target.endswith(".BasicLauncher") else int(settings.n_jobs)


def _threads(config: Any, space: Space, slots: int) -> int | None:
    """Threads for each trial's model (``QFRAME_THREADS``), or None: one trial at a time, or an explicit
    ``model.num_threads`` (in the config, a fixed override or the search space)."""
    from qframe.launch.threads import job_threads, sets_threads

    if sets_threads([*space.describe(), *space.fixed]):
        return None
    return job_threads(config, slots)
