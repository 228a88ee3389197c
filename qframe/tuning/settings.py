"""``hydra.sweeper.*`` of ``hydra/sweeper=hyperopt``: the fields of its config node and the sweep's settings, once.

:mod:`hydra_plugins.qframe_sweeper.qframe_sweeper` registers its config node from :class:`SweepSettings`, and the
sweeper hands the values Hydra composed to the sweep as a :class:`SweepSettings`. Light on purpose: Hydra imports the
plugin module, and so this one, in every process.
"""

# no `from __future__ import annotations`: OmegaConf reads these annotations as the config node's types (``Any``
# where a value may be null or of several types, as Hydra hands it over)
from dataclasses import dataclass, field
from typing import Any

DIRECTIONS = ("minimize", "maximize")

#: the fields of one stage of ``hydra.sweeper.stages`` (a pipeline), with their documentation
STAGE_FIELDS = {
    "overrides": "fixed overrides every trial of the stage gets, e.g. [model=mlp] (default [])",
    "spaces": "named search spaces, as hydra.sweeper.spaces (default [])",
    "params": "{key: grammar}, as hydra.sweeper.params (default null)",
    "n_trials": "trials of the stage in total (default 20)",
    "objective": "the stage's metric (default: the pipeline's hydra.sweeper.objective)",
    "direction": "minimize or maximize (default: the pipeline's hydra.sweeper.direction)",
    "from": "where the stage starts: null (the base config), an earlier stage's name (its best trial's settings are "
    "fixed overrides of every trial), or best (the global best of the stages declared before it)",
}


@dataclass
class SweepSettings:
    """The hyperopt sweep's settings (``hydra.sweeper.*``); the comments are the node's documentation."""

    # the search algorithm, by name (built in: tpe, rand, anneal; plugins add more through register_tuner_backends)
    algo: str = "tpe"
    # the recorded metric to optimise (null: the config's `objective`)
    objective: Any = None
    # minimize or maximize
    direction: str = "maximize"
    # trials in total, counting those of earlier runs of a resumed sweep
    n_trials: int = 20
    # trials running at the same time (asynchronous slots with hydra/launcher=qframe)
    n_jobs: int = 1
    # once more than max_failure_rate * n_trials trials failed, no trial starts; the running ones end, then it stops
    max_failure_rate: float = 0.5
    seed: int = 0
    # random trials before TPE starts modelling (null: hyperopt's default, 20)
    n_startup_trials: Any = 10
    # seconds before a trial is stopped and recorded as failed (null: no limit): killed by hydra/launcher=qframe,
    # interrupted by an alarm in the job with other launchers
    trial_timeout: Any = None
    # memory per trial, enforced by the operating system (cgroup v2 where this process has a delegated one, else an
    # address-space limit) with hydra/launcher=qframe: a size (4GB, 512MB), auto (75% of this machine's memory
    # divided by n_jobs) or null (no limit); a trial above it fails as "memory limit exceeded (4 GB)"
    trial_memory: Any = "auto"
    # GPUs per trial: each slot gets its own (CUDA_VISIBLE_DEVICES), never shared; n_jobs * trial_gpus GPUs needed
    trial_gpus: int = 0
    # times a trial that failed for a transient reason is run again (same number and params, a new attempt): its
    # process killed by a signal from outside (not its own segfault or abort), a lost worker; never an exception of
    # the trial's code or a NaN objective. Attempts do not count as trials
    max_retries: int = 0
    # a trial killed for trial_timeout counts as transient too (retried)
    retry_timeouts: bool = False
    # key: grammar, e.g. model.learning_rate: tag(log, interval(0.005, 0.3))
    params: Any = None
    # named search spaces registered by plugins (`qframe plugins`), merged before params
    spaces: list = field(default_factory=list)
    # continue the newest unfinished sweep of the same command (space, fixed overrides, direction) under the sweeps
    # root when this sweep dir holds none; a sweep with nothing left to do is reported and left as it is
    resume: bool = False
    # one MLflow parent run per sweep, trial runs nested under it
    mlflow: bool = True
    # a multi-stage pipeline (docs/sweeps.md, Pipelines): {name: stage}, each stage a search of its own with the
    # fields of STAGE_FIELDS; null: one search. With stages, n_trials, spaces and params are the stages' own, and
    # objective and direction are the defaults of the stages and the measure of the global best
    stages: Any = None

    def check(self) -> None:
        """Refuse values no sweep can run with (a ConfigError naming the key)."""
        from qframe.core.errors import ConfigError

        if self.direction not in DIRECTIONS:
            raise ConfigError(f"hydra.sweeper.direction={self.direction!r}; valid options: {', '.join(DIRECTIONS)}")
        if int(self.n_jobs) < 1:
            raise ConfigError(f"hydra.sweeper.n_jobs must be >= 1, got {self.n_jobs}")
        if int(self.n_trials) < 1:
            raise ConfigError(f"hydra.sweeper.n_trials must be >= 1, got {self.n_trials}")
        if not 0.0 <= float(self.max_failure_rate) <= 1.0:
            raise ConfigError(f"hydra.sweeper.max_failure_rate must be in [0, 1], got {self.max_failure_rate}")
        if self.n_startup_trials is not None and int(self.n_startup_trials) < 1:
            raise ConfigError(f"hydra.sweeper.n_startup_trials must be >= 1 or null, got {self.n_startup_trials}")
        if self.trial_timeout is not None and float(self.trial_timeout) <= 0:
            raise ConfigError(f"hydra.sweeper.trial_timeout must be > 0 seconds or null, got {self.trial_timeout}")
        if int(self.max_retries) < 0:
            raise ConfigError(f"hydra.sweeper.max_retries must be >= 0, got {self.max_retries}")
        if int(self.trial_gpus) != 0:
            from qframe.launch.devices import DeviceSlots

            DeviceSlots(int(self.trial_gpus), int(self.n_jobs))  # too few GPUs (or none): one line, before any work
        if self.trial_memory is not None and str(self.trial_memory).strip().lower() != "auto":
            from qframe.launch.limits import resolve_memory

            resolve_memory(self.trial_memory, int(self.n_jobs))  # a size that does not parse: one line

    def loss(self, value: float) -> float:
        """The objective as the loss the search algorithm minimises."""
        return -value if self.direction == "maximize" else value

    def too_many_failures(self, failed: int) -> bool:
        """Whether ``failed`` failed trials stop the sweep: more than ``max_failure_rate * n_trials`` (the words are
        :func:`qframe.tuning.outputs.stop_report`'s)."""
        return failed > float(self.max_failure_rate) * int(self.n_trials)
