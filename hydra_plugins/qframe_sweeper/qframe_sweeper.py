"""``hydra/sweeper=hyperopt``: qframe's hyperopt sweeper (TPE, random, anneal; asynchronous slots; resumable).

Thin on purpose: Hydra imports every module under ``hydra_plugins`` in every process, so hyperopt and the sweep
logic (:mod:`qframe.tuning.sweep`) are imported only when a sweep starts.
"""

# no `from __future__ import annotations`: Hydra execs this module outside sys.modules, where dataclasses
# cannot resolve string annotations
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper


@dataclass
class HyperoptSweeperConf:
    _target_: str = "hydra_plugins.qframe_sweeper.qframe_sweeper.QFrameHyperoptSweeper"
    # search algorithm: a registered tuner backend (built in: tpe, rand, anneal)
    algo: str = "tpe"
    # the recorded metric to optimise (null: the config's `objective`)
    objective: Any = None
    # minimize or maximize
    direction: str = "maximize"
    # trials in total, counting those of earlier runs of a resumed sweep
    n_trials: int = 20
    # trials running at the same time (asynchronous slots with hydra/launcher=qframe)
    n_jobs: int = 1
    # the sweep stops once more than max_failure_rate * n_trials trials have failed
    max_failure_rate: float = 0.5
    seed: int = 0
    # random trials before TPE starts modelling (null: hyperopt's default, 20)
    n_startup_trials: Any = 10
    # seconds before a trial is stopped and recorded as failed (null: no limit): killed by hydra/launcher=qframe,
    # interrupted by an alarm in the job with other launchers
    trial_timeout: Any = None
    # key: grammar, e.g. model.learning_rate: tag(log, interval(0.005, 0.3))
    params: Any = None
    # named search spaces registered by plugins (`qframe plugins`), merged before params
    spaces: list = field(default_factory=list)
    # continue the newest unfinished sweep of the same command (space, fixed overrides, direction) under the sweeps
    # root when this sweep dir holds none; a sweep with nothing left to do is reported and left as it is
    resume: bool = False
    # one MLflow parent run per sweep, trial runs nested under it
    mlflow: bool = True


ConfigStore.instance().store(group="hydra/sweeper", name="hyperopt", node=HyperoptSweeperConf, provider="qframe")


class QFrameHyperoptSweeper(Sweeper):
    """Hydra sweeper driving hyperopt; the logic lives in :class:`qframe.tuning.sweep.HyperoptSweep`."""

    def __init__(self, **settings: Any) -> None:
        from qframe.tuning.sweep import HyperoptSweep, SweepSettings

        self.impl = HyperoptSweep(SweepSettings(**settings))

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.impl.sweep(arguments)
