"""What a run is, told to it explicitly: where it records, whether it is a sweep's trial, what it may reuse.

The app builds a :class:`RunContext` at its boundary (from the Hydra job and the process environment) and passes it
to :func:`qframe.core.workflow.run_workflow`; nothing in the core reads the environment to learn it. Across process
boundaries (forked children, joblib, Ray and Slurm workers) a trial's identity travels as environment variables set
through ``hydra.job.env_set``: :func:`trial_environment` writes them (the sweeper) and :func:`trial_identity` reads
them back (the app), so both sides live here, together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: a trial's identity in its job's environment (set by qframe's sweeper, read by the app)
SWEEP_ENV = "QFRAME_SWEEP"
PARENT_RUN_ENV = "QFRAME_PARENT_RUN_ID"
TRIAL_ENV = "QFRAME_TRIAL_NUMBER"
#: a trial's attempt (1, then 2, ... when it is retried: qframe.tuning.retries)
ATTEMPT_ENV = "QFRAME_TRIAL_ATTEMPT"
#: MLflow's own variable for the tracking server, honoured when the config names none
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
#: the work directory when none is given (the config's ``workdir`` default reads it too: conf/config.yaml)
HOME_ENV = "QFRAME_HOME"

DEFAULT_EXPERIMENT = "qframe"


@dataclass(frozen=True)
class RunLocation:
    """Where a run keeps its files (caches, artifacts, checkpoints) and which MLflow store and experiment it uses."""

    workdir: Path
    tracking_uri: str
    experiment: str
    #: the config's ``artifact_root``; None: the work directory's ``artifacts/``
    artifacts: Path | None = None

    @property
    def artifact_root(self) -> Path:
        """Where new experiments keep their artifacts (``<artifact_root>/<experiment>``), unless a tracking server
        serves them (:func:`qframe.core.stores.artifact_location`)."""
        return self.artifacts or self.workdir / "artifacts"

    @property
    def cache_dir(self) -> Path:
        return self.workdir / "cache"


def default_workdir(environ: Mapping[str, str] | None = None) -> Path:
    """The work directory of a run started here without ``workdir``: ``$QFRAME_HOME`` of ``environ`` (the
    caller's environment, given explicitly), else ``./.qframe``."""
    return Path((environ or {}).get(HOME_ENV) or ".qframe").expanduser().resolve()


def locate(cfg: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> RunLocation:
    """The one derivation of a config's work directory, tracking URI and experiment (app, sweeper, core and the
    ``qframe runs`` / ``qframe cache`` commands).

    ``workdir`` defaults to :func:`default_workdir`; the tracking URI is the config's ``tracking_uri``, else
    ``MLFLOW_TRACKING_URI`` from ``environ`` (the caller's environment, given explicitly), else a sqlite store in
    the work directory with an absolute path (a Hydra job may change directory). ``artifact_root`` (a directory,
    made absolute) overrides where new experiments keep their artifacts.
    """
    workdir = Path(str(cfg["workdir"])).expanduser().resolve() if cfg.get("workdir") else default_workdir(environ)
    uri = cfg.get("tracking_uri") or (environ or {}).get(TRACKING_URI_ENV)
    if not uri:
        uri = f"sqlite:///{workdir / 'mlflow.db'}"
    artifacts = cfg.get("artifact_root")
    return RunLocation(
        workdir,
        str(uri),
        str(cfg.get("experiment_name") or DEFAULT_EXPERIMENT),
        Path(str(artifacts)).expanduser().resolve() if artifacts else None,
    )


@dataclass(frozen=True)
class TrialIdentity:
    """Which trial of which sweep a job is: ``number`` None for a job that is not a qframe sweep's trial."""

    number: int | None = None
    parent_run_id: str | None = None
    attempt: int | None = None  # 1 for a trial's first attempt, more once it is retried

    @property
    def in_sweep(self) -> bool:
        return self.number is not None


def trial_environment(number: int, parent_run_id: str | None, attempt: int = 1) -> dict[str, str]:
    """The environment variables that carry a trial's identity to its job, wherever the job runs."""
    env = {SWEEP_ENV: "1", TRIAL_ENV: str(number), ATTEMPT_ENV: str(int(attempt))}
    if parent_run_id:
        env[PARENT_RUN_ENV] = parent_run_id
    return env


def trial_identity(environ: Mapping[str, str]) -> TrialIdentity:
    """The identity :func:`trial_environment` gave a job, read back from its environment."""
    if environ.get(SWEEP_ENV) != "1":
        return TrialIdentity()
    number, attempt = environ.get(TRIAL_ENV, ""), environ.get(ATTEMPT_ENV, "")
    return TrialIdentity(
        int(number) if number.isdigit() else -1,
        environ.get(PARENT_RUN_ENV) or None,
        int(attempt) if attempt.isdigit() else None,
    )


@dataclass
class SharedInputs:
    """What a sweep's parent process loaded once for the runs it forks (they inherit it copy-on-write).

    ``key`` says which configs may use ``market`` and ``prepared`` (same dataset, handler, segments and workdir);
    ``source_tags`` (git state, version, host) and the ``experiment_id`` of ``location`` spare each run looking
    them up again.
    """

    key: str
    market: Any
    prepared: Any
    location: RunLocation
    source_tags: dict[str, str] = field(default_factory=dict)
    experiment_id: str | None = None

    def experiment_of(self, location: RunLocation) -> str | None:
        """The experiment id resolved for ``location``, if it is the one preloaded."""
        return self.experiment_id if location == self.location else None


@dataclass(frozen=True)
class FitCache:
    """Where a model may keep what its fit derives from the data alone (LightGBM's binned Datasets), for the runs
    that fit on the same data: ``identity`` names the inputs (config and data sources) the fit's arrays come from.

    Given by the workflow to a model whose ``fit`` takes ``fit_cache``, in the runs of a multirun (a sweep's trials,
    a grid's jobs) and in a single run with the cache on (``handler.cache``, the default): a warm run loads what
    the cold one stored.
    """

    directory: Path
    identity: str


@dataclass
class RunContext:
    """Everything a run is told about itself besides its config.

    ``trial``: its identity in a sweep (a trial's run nests under the sweep's parent run, leaves plots out by
    default, and is reported by the sweeper). ``shared``: inputs preloaded by the sweep's parent, if any.
    """

    location: RunLocation
    trial: TrialIdentity = field(default_factory=TrialIdentity)
    shared: SharedInputs | None = None
    #: extra tags for the run's MLflow run (the app's: the command-line overrides, a sweep job's directory)
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_config(cls, cfg: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> RunContext:
        """A single run of ``cfg`` (the context a library caller gets by default)."""
        return cls(locate(cfg, environ))

    @property
    def default_plots(self) -> bool:
        """What ``recording.plots: auto`` means: plots for a single run; a sweep's best trial re-runs with them."""
        return not self.trial.in_sweep
