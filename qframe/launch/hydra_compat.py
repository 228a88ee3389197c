"""Whether the fork launcher may take its fast path through Hydra's internals: decided once, when it is set up.

The fast path copies what hydra-core 1.3.8 does, with less work per job, through private parts of Hydra:

* a job's config is a composed template plus the job's value overrides, applied by
  ``ConfigLoaderImpl._apply_overrides_to_config`` (:mod:`qframe.launch.compose`);
* a forked child runs its job without ``run_job``'s defensive copies, writing the ``.hydra/`` files with
  ``_save_config`` and flushing with ``_flush_loggers`` (:mod:`qframe.launch.job`);
* a failed job's exception is read from ``JobReturn._return_value`` (the public ``return_value`` raises it, after
  writing a line to stderr).

Tests check each against Hydra's own result, on that version only. On any other Hydra, or with
``hydra.launcher.fast_path=false``, each job is composed by ``load_sweep_config`` and run by ``run_job``, as Hydra's
basic launcher does, and the launcher says why in one log line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("qframe.launch")

#: the hydra-core version the fast path's copies of Hydra internals were verified against
VERIFIED_HYDRA = "1.3.8"


@dataclass(frozen=True)
class HydraPath:
    """How the launcher composes and runs jobs: the fast path, or Hydra's public API (``why``: the reason)."""

    fast: bool
    why: str | None = None


def installed_hydra() -> str:
    """The installed hydra-core version."""
    import hydra

    return str(hydra.__version__)


def choose_path(fast_path: bool = True, installed: str | None = None) -> HydraPath:
    """The fast path when ``fast_path`` asks for it and the installed Hydra is :data:`VERIFIED_HYDRA`."""
    installed = installed_hydra() if installed is None else installed
    if not fast_path:
        return HydraPath(False, "hydra.launcher.fast_path=false")
    if installed != VERIFIED_HYDRA:
        return HydraPath(False, f"hydra-core {installed} is installed, the fast path was verified on {VERIFIED_HYDRA}")
    return HydraPath(True)


def launcher_path(fast_path: bool) -> HydraPath:
    """:func:`choose_path` for a launcher being set up; a fallback says why in one log line."""
    path = choose_path(fast_path)
    if not path.fast:
        log.info(f"composing and running each job with Hydra's public API ({path.why})")
    return path


def job_outcome(ret: Any, fast: bool) -> tuple[bool, Any]:
    """(True, the task's return value) or (False, the exception it raised) of a Hydra ``JobReturn``."""
    from hydra.core.utils import JobStatus

    if ret.status == JobStatus.COMPLETED:
        return True, ret.return_value
    if fast:
        return False, ret._return_value  # what return_value would raise, without its stderr line
    try:
        ret.return_value  # noqa: B018 - Hydra's public accessor raises the job's exception
    except Exception as exc:  # noqa: BLE001 - the job's failure, whatever it is
        return False, exc
    return False, None
