"""``hydra/sweeper=hyperopt``: qframe's hyperopt sweeper (TPE, random, anneal; asynchronous slots; resumable).

Thin on purpose: Hydra imports every module under ``hydra_plugins`` in every process, so hyperopt and the sweep
logic (:mod:`qframe.tuning.sweep`) are imported only when a sweep starts. The settings and their documentation are
:class:`qframe.tuning.settings.SweepSettings` (a light module), which this node extends with Hydra's target.
"""

# no `from __future__ import annotations`: Hydra execs this module outside sys.modules, where dataclasses
# cannot resolve string annotations
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper

from qframe.tuning.settings import SweepSettings


@dataclass
class HyperoptSweeperConf(SweepSettings):
    """The ``hydra/sweeper=hyperopt`` node: the sweep's settings and the class Hydra instantiates with them."""

    _target_: str = "hydra_plugins.qframe_sweeper.qframe_sweeper.QFrameHyperoptSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="hyperopt", node=HyperoptSweeperConf, provider="qframe")


class QFrameHyperoptSweeper(Sweeper):
    """Hydra sweeper driving hyperopt; the logic lives in :class:`qframe.tuning.sweep.HyperoptSweep`."""

    def __init__(self, **settings: Any) -> None:
        from qframe.tuning.sweep import HyperoptSweep

        self.impl = HyperoptSweep(SweepSettings(**settings))

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.impl.sweep(arguments)
