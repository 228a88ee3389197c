"""The calls a qframe Hydra launcher plugin forwards to its implementation.

Hydra imports every plugin module in every process, so the plugin classes stay thin: they build their
implementation (:class:`qframe.launch.launcher.ForkLauncher` or a subclass) lazily as ``self.impl`` and forward
Hydra's :class:`~hydra.plugins.launcher.Launcher` calls and qframe's
:class:`~qframe.launch.protocols.JobSubmitter` calls to it. Light on purpose: no imports beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class DelegatingLauncher:
    """Forwards the launcher and job-submitter calls to ``self.impl``."""

    impl: Any

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
