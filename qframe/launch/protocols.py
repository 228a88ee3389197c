"""The interfaces between qframe's launcher, its sweeper and the task they run: declared, not guessed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ForkAwareTask(Protocol):
    """A task function that prepares, in the launcher's parent process, what its forked jobs share.

    The launcher imports :attr:`preload_modules` when it is set up, and calls :meth:`prefork` once, before it forks
    the first job. Whatever :meth:`prefork` keeps on the task object, every job inherits (copy-on-write). Neither may
    start threads or thread pools (OpenMP, a database pool): they would not survive the fork. A plain function is a
    task too; it just gets no preparation.
    """

    preload_modules: Sequence[str]

    def __call__(self, config: Any) -> Any:
        """Run one job."""

    def prefork(self, config: Any) -> None:
        """Load what the jobs share, given the first job's config (no ``hydra`` node; ``HydraConfig`` is set).

        An exception costs a warning: each job then loads its own inputs.
        """


@runtime_checkable
class JobSubmitter(Protocol):
    """A launcher that takes jobs one at a time, whenever a slot is free (qframe's fork launcher).

    qframe's sweeper then asks for a new trial as soon as one ends, instead of handing over batches through Hydra's
    ``launch``; with any other launcher it runs batches of ``n_jobs``.
    """

    def submit(self, overrides: Sequence[str], idx: int, timeout: float | None = None) -> float:
        """Start job ``idx`` now (killed after ``timeout`` seconds); return its start time."""

    def wait(self) -> list[Any]:
        """Block until at least one submitted job has finished; return those that have (``Finished`` records)."""

    def running(self) -> int:
        """How many submitted jobs have not finished."""

    def pid(self, idx: int) -> int | None:
        """The process id of running job ``idx`` on this host (the leader of its process group), None: unknown."""

    def kill_all(self) -> None:
        """Kill every running job and wait for those still exiting."""
