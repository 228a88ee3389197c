"""The Hydra application behind the ``qframe`` command: compose the config, run the workflow, print the result."""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from collections.abc import Mapping
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from qframe.core.context import RunContext, SharedInputs
from qframe.core.errors import ConfigError, QFrameError


def conf_dir() -> Path:
    """qframe's config directory: inside the installed package, or ``conf/`` of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise RuntimeError(f"qframe's configs are missing (looked in {here / 'conf'} and {here.parent / 'conf'})")


def _launch_dir() -> str:
    """The directory qframe was started in: Hydra's ``runtime.cwd`` inside a job, the process's cwd before one.

    ``${hydra:runtime.cwd}`` fails where Hydra has not set its config yet (a plain grid's sweeper reads
    ``hydra.sweep.dir``, which holds ``${workdir}``, before any job exists).
    """
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.cwd)
    return os.getcwd()


# `workdir: ${oc.env:QFRAME_HOME,${qframe.cwd:}/.qframe}` (conf/config.yaml)
if not OmegaConf.has_resolver("qframe.cwd"):
    OmegaConf.register_new_resolver("qframe.cwd", _launch_dir)

# this process's id, taken once: forked jobs inherit it, so a job resolves its sweep's directory, not one of its own
_LAUNCH_PID = str(os.getpid())

# `hydra.run.dir` / `hydra.sweep.dir` end in `${now:%H-%M-%S}-${qframe.pid:}` (conf/config.yaml): two qframe
# processes started in the same second get directories of their own; cached in the config like Hydra's `now`
if not OmegaConf.has_resolver("qframe.pid"):
    OmegaConf.register_new_resolver("qframe.pid", lambda: _LAUNCH_PID, use_cache=True)


def _seed(default: int, *, _root_: DictConfig) -> int:
    """``${qframe.seed:0}``: the config's top-level ``seed`` when it is set, else the component's own ``default``.

    The model's and the controls' ``seed`` keys (conf/model/*.yaml, conf/config.yaml) and the tuners' sampler seed
    are this interpolation: ``seed=1`` seeds them all, and a component's seed set explicitly (``model.seed=5``)
    replaces the interpolation, so it wins.
    """
    value = _root_.get("seed")
    return default if value is None else value


# `seed: ${qframe.seed:0}` in the model configs, evaluation.controls and the tuners
if not OmegaConf.has_resolver("qframe.seed"):
    OmegaConf.register_new_resolver("qframe.seed", _seed)


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def debug_enabled(cfg: DictConfig | None = None) -> bool:
    if os.environ.get("QFRAME_DEBUG", "").lower() in ("1", "true", "yes"):
        return True
    return bool(cfg is not None and cfg.get("debug", False))


def fail(message: str) -> None:
    """Print a user error on one line and exit with status 2."""
    print(f"qframe: error: {message}", file=sys.stderr)
    sys.exit(2)


def _resolve(cfg: DictConfig) -> dict:
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as exc:
        key = exc.full_key
        raise ConfigError(f"{key} is required: set it on the command line, e.g. `qframe ... {key}=<value>`") from None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"invalid config: {exc}".splitlines()[0]) from None


def _quiet_warnings() -> tuple[type[Warning], ...]:
    """Warning categories a run does not show unless debugging: numpy's floating-point RuntimeWarnings and
    pandas' Future/Performance warnings."""
    from pandas.errors import PerformanceWarning

    return RuntimeWarning, FutureWarning, DeprecationWarning, PerformanceWarning


def apply_thread_budget(cfg: dict, environ: os._Environ | dict = os.environ) -> None:
    """A model whose ``num_threads`` is null, and a handler whose ``num_threads`` (the feature threads) is null, get
    the per-job budget of a parallel sweep (an explicit value wins).

    qframe's sweeper and fork launcher set the budget in each job's environment (:mod:`qframe.launch.threads`).
    """
    from qframe.launch.threads import THREADS_ENV

    budget = environ.get(THREADS_ENV)
    if not budget:
        return
    for section in ("model", "handler"):
        node = cfg.get(section)
        if isinstance(node, dict) and "num_threads" in node and node["num_threads"] is None:
            node["num_threads"] = int(budget)


def launcher_target() -> str | None:
    """The ``_target_`` of the Hydra job's launcher (None outside a Hydra job)."""
    from hydra.core.hydra_config import HydraConfig

    return str(HydraConfig.get().launcher.get("_target_", "")) if HydraConfig.initialized() else None


def resolve_executor(cfg: dict, launcher: str | None) -> None:
    """``trainer.executor=auto`` made explicit for the core (:mod:`qframe.core.rolling`): ``ray`` when the job's
    Hydra launcher (``launcher``, its ``_target_``) is Ray's (``hydra/launcher=ray``), else ``fork``."""
    trainer = cfg.get("trainer")
    if isinstance(trainer, dict) and trainer.get("name") == "rolling" and trainer.get("executor", "auto") == "auto":
        trainer["executor"] = "ray" if "ray" in (launcher or "").lower() else "fork"


def task_overrides() -> list[str]:
    """The job's command-line overrides (none outside a Hydra job)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def job_tags() -> dict[str, str]:
    """Tags of the Hydra job: its command-line overrides (``qframe runs show`` prints the command that re-runs
    it) and, for a multirun job, its sweep directory (``qframe runs --sweep`` groups a grid's jobs by it)."""
    import json

    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    hydra_cfg = HydraConfig.get()
    tags = {"qframe.overrides": json.dumps(list(hydra_cfg.overrides.task))[:5000]}
    if _is_multirun():
        tags["qframe.sweep_dir"] = str(hydra_cfg.sweep.dir)
    return tags


class QFrameTask:
    """The task function Hydra runs for every job; it builds each run's :class:`RunContext` at this boundary.

    It also implements the fork launcher's prefork interface (:class:`qframe.launch.protocols.ForkAwareTask`): in
    a sweep's parent process, before any job is forked, :meth:`prefork` loads the inputs the jobs share and keeps
    them on this object, which every forked child inherits; each run then gets them through its context.
    """

    #: imported in the sweep's parent before the first fork, so each forked job starts with them loaded
    preload_modules = (
        "numpy",
        "pandas",
        "pyarrow",
        "pyarrow.parquet",
        "pandas.io.parquet",
        "qframe.plugins.models.lightgbm",  # lightgbm without scikit-learn (qframe.plugins.models.lightgbm_import)
        "qframe.core.tracking",  # before mlflow: MLflow without its FastAPI gateway (qframe.core.mlflow_import)
        "mlflow",
        # imported by mlflow.set_tracking_uri (tracing's no-op provider): ~0.03 s a run otherwise
        "mlflow.tracing.processor.base_mlflow",
        "matplotlib.pyplot",
        "qframe.core.workflow",
        "qframe.core.handler",
        "qframe.core.evaluation",
        "qframe.core.backtest",
        "qframe.core.plots",
        "qframe.report",
    )

    def __init__(self) -> None:
        self.shared: SharedInputs | None = None

    def context(self, resolved: dict, environ: Mapping[str, str] = os.environ) -> RunContext:
        """The run's context: its location, its identity in a sweep (from the job's environment), shared inputs."""
        from qframe.core.context import locate, trial_identity

        return RunContext(locate(resolved, environ), trial_identity(environ), self.shared, job_tags())

    def prefork(self, config: DictConfig) -> None:
        """Load what the jobs of a sweep share (market, features, segments, tracking look-ups), in its parent."""
        from qframe.core.context import locate
        from qframe.core.workflow import preload_inputs

        resolved = _resolve(config)
        self.shared = preload_inputs(resolved, locate(resolved, os.environ))

    def __call__(self, cfg: DictConfig) -> float:
        from qframe.console import progress_for_terminal
        from qframe.core.workflow import run_workflow
        from qframe.tuning.lease import job_lease

        multirun = _is_multirun()
        debug = debug_enabled(cfg)
        # a single run in a terminal shows its stages live; jobs of a sweep run side by side and stay quiet
        progress = progress_for_terminal(enabled=not multirun)
        try:
            with job_lease(os.environ, multirun) as lease, warnings.catch_warnings():
                if not debug:
                    # numpy's and pandas' warnings speak of their internals (a mean of an empty slice): the run's
                    # own checks say what is wrong in the user's terms
                    for category in _quiet_warnings():
                        warnings.simplefilter("ignore", category)
                resolved = _resolve(cfg)
                if resolved.get("from_run") is not None:
                    from qframe.core.reuse import check_overrides

                    check_overrides(task_overrides())
                apply_thread_budget(resolved)
                resolve_executor(resolved, launcher_target())
                context = self.context(resolved)
                result = run_workflow(resolved, context, progress=progress)
                if lease is not None:
                    lease.finish(result.objective)
        except QFrameError as exc:
            progress.close()
            if multirun:
                raise  # the sweeper records the trial as failed; the sweep goes on
            if debug:
                traceback.print_exc()
            fail(str(exc))
        finally:
            progress.close()
        # inside a qframe hyperopt sweep the sweeper prints one line per trial; the full report is in the trial's run
        if not context.trial.in_sweep:
            from qframe.report import print_result

            print_result(result)
        return result.objective


hydra_main = hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")(QFrameTask())
