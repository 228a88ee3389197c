"""The Hydra application behind the ``qframe`` command: compose the config, run the workflow, print the result."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from qframe.core.errors import ConfigError, QFrameError


def conf_dir() -> Path:
    """qframe's config directory: inside the installed package, or ``conf/`` of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise RuntimeError(f"qframe's configs are missing (looked in {here / 'conf'} and {here.parent / 'conf'})")


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


def _task(cfg: DictConfig) -> float:
    from qframe.core.workflow import run_workflow

    try:
        result = run_workflow(_resolve(cfg))
    except QFrameError as exc:
        if _is_multirun():
            raise  # the sweeper records the trial as failed; the sweep goes on
        if debug_enabled(cfg):
            traceback.print_exc()
        fail(str(exc))
    # inside a qframe hyperopt sweep the sweeper prints one line per trial; the full report is in the trial's run
    from qframe.core.tracking import is_sweep_trial

    if not is_sweep_trial():
        from qframe.report import print_result

        print_result(result)
    return result.objective


def _prefork(cfg: DictConfig) -> None:
    """qframe's fork launcher calls this in a sweep's parent, once, before forking trials: load what they share."""
    from qframe.core.workflow import preload_inputs

    preload_inputs(_resolve(cfg))


_task.qframe_prefork = _prefork  # see qframe.launch.forking.PREFORK_ATTR
hydra_main = hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")(_task)
