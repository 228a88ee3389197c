"""GPUs per trial: each slot of a sweep gets devices of its own (``CUDA_VISIBLE_DEVICES``), never shared.

The devices are found without initialising CUDA (which is not fork-safe, and the sweep process forks its trials):
the ``CUDA_VISIBLE_DEVICES`` the sweep was started with, else the GPUs the NVIDIA driver lists under
``/proc/driver/nvidia/gpus``. A slot's devices reach its trial as ``hydra.job.env_set.CUDA_VISIBLE_DEVICES``, so on
every launcher; a trial started in a freed slot gets that slot's devices.
"""

from __future__ import annotations

import os
from pathlib import Path

from qframe.core.errors import ConfigError

VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"
_DRIVER_GPUS = Path("/proc/driver/nvidia/gpus")


def visible_devices(environ: dict[str, str] | None = None, driver: Path = _DRIVER_GPUS) -> list[str]:
    """The GPU ids trials may be given: ``CUDA_VISIBLE_DEVICES`` when set, else one per GPU the driver lists."""
    environ = os.environ if environ is None else environ
    listed = environ.get(VISIBLE_ENV)
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    try:
        return [str(i) for i in range(len(list(driver.iterdir())))]
    except OSError:
        return []


class DeviceSlots:
    """``per_trial`` devices for each of ``slots`` trials at a time, handed out by job number."""

    def __init__(self, per_trial: int, slots: int, devices: list[str] | None = None) -> None:
        per_trial = int(per_trial)
        if per_trial < 0:
            raise ConfigError(f"hydra.sweeper.trial_gpus must be >= 0, got {per_trial}")
        devices = visible_devices() if devices is None else devices
        self.per_trial = per_trial
        self.groups: list[str] = []
        if per_trial == 0:
            return
        if not devices:
            raise ConfigError(
                f"hydra.sweeper.trial_gpus={per_trial} but this machine has no GPU (none under {_DRIVER_GPUS}, "
                f"{VISIBLE_ENV} unset or empty); drop trial_gpus or run the sweep where GPUs are"
            )
        if per_trial * int(slots) > len(devices):
            raise ConfigError(
                f"hydra.sweeper.trial_gpus={per_trial} with {slots} trials at a time needs {per_trial * int(slots)} "
                f"GPUs, this machine has {len(devices)} ({','.join(devices)}); lower hydra.sweeper.n_jobs to "
                f"{len(devices) // per_trial} or trial_gpus"
            )
        self.groups = [",".join(devices[i * per_trial : (i + 1) * per_trial]) for i in range(int(slots))]
        self.held: dict[int, int] = {}  # job -> slot

    @property
    def enabled(self) -> bool:
        return bool(self.groups)

    def acquire(self, job: int) -> str | None:
        """The devices of a free slot for ``job`` (``CUDA_VISIBLE_DEVICES``), None without ``trial_gpus``."""
        if not self.groups:
            return None
        free = sorted(set(range(len(self.groups))) - set(self.held.values()))
        if not free:  # more trials than slots: a caller's bug, never two trials on one device
            raise RuntimeError("no free GPU slot")
        self.held[job] = free[0]
        return self.groups[free[0]]

    def release(self, job: int) -> None:
        if self.groups:
            self.held.pop(job, None)

    def describe(self) -> str:
        return "; ".join(f"slot {i}: GPU {group}" for i, group in enumerate(self.groups))
