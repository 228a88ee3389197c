"""Threads per job when several jobs share this machine's cores.

With ``k`` jobs at a time on ``c`` cores, each job's model gets ``max(1, c // k)`` threads unless the config sets
``model.num_threads``: a model that starts one thread per core in each of ``k`` jobs oversubscribes the machine
(LightGBM with ``n_jobs=2`` on 2 cores runs slower than with ``n_jobs=1``). The sweeper and the fork launcher pass
the count to each job as the environment variable :data:`THREADS_ENV` through ``hydra.job.env_set`` (so it reaches
the job on every launcher); qframe's app sets ``model.num_threads`` from it when the trial's model has that key and
it is null.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

#: the environment variable carrying a job's thread count (set in ``hydra.job.env_set`` by the sweeper/launcher)
THREADS_ENV = "QFRAME_THREADS"
#: the config key an explicit thread count lives in (it wins over :data:`THREADS_ENV`)
THREADS_KEY = "model.num_threads"


def cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or ``taskset`` narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def threads_per_job(slots: int) -> int:
    """Threads for each of ``slots`` jobs running at once: ``max(1, cores // slots)``."""
    return max(1, cores() // max(1, int(slots)))


def sets_threads(overrides: Iterable[str]) -> bool:
    """Whether one of ``overrides`` (override lines, a search space's keys) sets ``model.num_threads``."""
    for line in overrides:
        key = str(line).split("=", 1)[0].lstrip("+~").strip()
        if key == THREADS_KEY:
            return True
    return False


def job_threads(config: Any, slots: int) -> int | None:
    """The thread count to pass to each job, or None: with one slot, without a ``model`` node, or when the sweep's
    config sets ``model.num_threads`` (an explicit count wins)."""
    from omegaconf import DictConfig, OmegaConf

    if int(slots) <= 1:
        return None
    model = OmegaConf.select(config, "model", default=None)
    if not isinstance(model, DictConfig):
        return None
    try:
        explicit = "num_threads" in model and OmegaConf.select(config, THREADS_KEY, default=None) is not None
    except Exception:  # noqa: BLE001 - an interpolation that does not resolve here: the job's own value decides
        explicit = True
    if explicit:
        return None
    return threads_per_job(slots)


def env_override(threads: int) -> str:
    """The job override that passes ``threads`` to the job."""
    return f"++hydra.job.env_set.{THREADS_ENV}={int(threads)}"


def describe(slots: int, threads: int, what: str = "trial") -> str:
    """The one line a sweep prints at its start about the threads of each job."""
    n = cores()
    thread_word = "thread" if threads == 1 else "threads"
    core_word = "core" if n == 1 else "cores"
    return (
        f"{slots} {what}s at a time on {n} {core_word}: each {what}'s model uses {threads} {thread_word} "
        f"(set {THREADS_KEY} to change)"
    )
