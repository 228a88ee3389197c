"""LightGBM with Qlib's benchmark defaults, early-stopped on the valid segment."""

from __future__ import annotations

import functools
import numbers
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from qframe.core.context import FitCache
from qframe.core.errors import ConfigError, reject_unknown_params
from qframe.plugins.models.lightgbm_import import import_lightgbm

lgb = import_lightgbm()  # without its scikit-learn estimators: ~0.7 s less a process (see lightgbm_import)

#: this class's own parameters (the rest go to LightGBM)
OWN_PARAMS = ("loss", "num_boost_round", "early_stopping_rounds", "num_threads", "seed", "verbose_eval", "reuse_bins")
#: LightGBM parameters qframe sets itself
FIXED_PARAMS = ("objective", "verbosity")


@functools.cache
def lightgbm_parameter_names() -> frozenset[str] | None:
    """Every parameter name and alias LightGBM knows, from its C API (``LGBM_DumpParamAliases``); None if unknown.

    lightgbm 4.x reaches it through the private ``lightgbm.basic._ConfigAliases``: a LightGBM without it means
    parameter names go unchecked (LightGBM itself ignores an unknown one with a warning).
    """
    aliases = getattr(getattr(lgb.basic, "_ConfigAliases", None), "_get_all_param_aliases", None)
    if aliases is None or not lgb.__version__.startswith("4."):
        return None
    try:
        table = aliases()
    except Exception:  # noqa: BLE001 - a check that cannot run is skipped, never the fit
        return None
    return frozenset(table) | frozenset(a for names in table.values() for a in names)


def _check_range(params: dict[str, Any], key: str, ok: Any, what: str, integer: bool = False) -> None:
    if key not in params or params[key] is None:
        return
    value = params[key]
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not ok(value):
        raise ConfigError(f"model.{key} must be {what}, got {value!r}")


class LightGBMModel:
    """Gradient-boosted trees; saved in LightGBM's native text format."""

    def __init__(
        self,
        loss: str = "mse",
        num_boost_round: int = 1000,
        early_stopping_rounds: int = 50,
        num_threads: int | None = None,
        seed: int = 0,
        verbose_eval: int = 0,
        reuse_bins: bool = True,
        **params: Any,
    ) -> None:
        if loss not in ("mse", "mae", "huber"):
            raise ConfigError(f"model.loss={loss!r}; valid options: mse, mae, huber")
        own = {"num_boost_round": num_boost_round, "early_stopping_rounds": early_stopping_rounds}
        _check_range(own, "num_boost_round", lambda v: v >= 1, "an integer >= 1", integer=True)
        _check_range(own, "early_stopping_rounds", lambda v: v >= 0, "an integer >= 0 (0: never)", integer=True)
        _check_range({"num_threads": num_threads}, "num_threads", lambda v: v >= 1, "an integer >= 1 or null", True)
        known = lightgbm_parameter_names()
        if known is not None:
            valid = [*OWN_PARAMS, *sorted(known - set(FIXED_PARAMS))]
            reject_unknown_params("model 'lightgbm'", "model", params, valid)
        for key in ("learning_rate", "eta", "shrinkage_rate"):
            _check_range(params, key, lambda v: v > 0, "a number > 0")
        for key in ("lambda_l1", "lambda_l2", "reg_alpha", "reg_lambda", "min_sum_hessian_in_leaf", "path_smooth"):
            _check_range(params, key, lambda v: v >= 0, "a number >= 0")
        for key in ("colsample_bytree", "feature_fraction", "subsample", "bagging_fraction"):
            _check_range(params, key, lambda v: 0 < v <= 1, "a number in (0, 1]")
        _check_range(params, "num_leaves", lambda v: v >= 2, "an integer >= 2", integer=True)
        _check_range(params, "max_depth", lambda v: True, "an integer (<= 0: no limit)", integer=True)
        for key in ("min_data_in_leaf", "min_child_samples", "bagging_freq"):
            _check_range(params, key, lambda v: v >= 0, "an integer >= 0", integer=True)
        _check_range(params, "bin_construct_sample_cnt", lambda v: v >= 1, "an integer >= 1", integer=True)
        self.num_boost_round = int(num_boost_round)
        self.early_stopping_rounds = int(early_stopping_rounds)
        self.verbose_eval = int(verbose_eval)
        if not isinstance(reuse_bins, bool):
            raise ConfigError(f"model.reuse_bins must be true or false, got {reuse_bins!r}")
        self.reuse_bins = reuse_bins
        objective = {"mse": "regression", "mae": "regression_l1", "huber": "huber"}[loss]
        self.params = {
            "objective": objective,
            "num_threads": num_threads or len(os.sched_getaffinity(0)),
            "seed": seed,
            "verbosity": -1,
            **params,
        }
        self.booster: lgb.Booster | None = None
        #: seconds of the last fit's parts: "binning" (or loading stored bins) and "boosting"
        self.fit_timings: dict[str, float] = {}

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_valid: np.ndarray,
        y_valid: np.ndarray,
        progress: Any = None,
        sample_weight: np.ndarray | None = None,
        fit_cache: FitCache | None = None,
    ) -> None:
        """Train; ``progress`` (a :class:`qframe.core.progress.Progress`) hears of every boosting round;
        ``sample_weight`` (one per train row) weighs each row's gradient and hessian (the valid set stays
        unweighted: it judges early stopping as the test segment is judged). With ``fit_cache`` the binned
        Datasets come from (or go to) its directory when the data and binning parameters match
        (:mod:`~qframe.plugins.models.lightgbm_bins`): the trees are the same either way.

        :attr:`fit_timings` says how long the binning (or loading the bins) and the boosting took."""
        from qframe.plugins.models import lightgbm_bins

        self.train_rows = len(y)
        args = (self.params, X, y, X_valid, y_valid, sample_weight)
        reuse = fit_cache is not None and self.reuse_bins
        binned = lightgbm_bins.cached(fit_cache, *args) if reuse else lightgbm_bins.build(*args)
        self.bins = binned.how
        train = binned.train
        callbacks = [] if progress is None else [self._progress_callback(progress)]
        valid_sets = [train]
        names = ["train"]
        if binned.valid is not None:
            valid_sets.append(binned.valid)
            names.append("valid")
            if self.early_stopping_rounds > 0:
                callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        if self.verbose_eval:
            callbacks.append(lgb.log_evaluation(self.verbose_eval))
        t0 = time.perf_counter()
        self.booster = lgb.train(
            self.params,
            train,
            num_boost_round=self.num_boost_round,
            valid_sets=valid_sets,
            valid_names=names,
            callbacks=callbacks,
        )
        self.fit_timings = {"binning": binned.seconds, "boosting": time.perf_counter() - t0}

    def _progress_callback(self, progress: Any) -> Any:
        total = self.num_boost_round

        def report(env: Any) -> None:
            done = env.iteration + 1
            metrics = "  ".join(f"{data} {name} {value:.5g}" for data, name, value, _ in env.evaluation_result_list)
            progress.update(f"round {done}/{total}  {metrics}".rstrip(), completed=done, total=total)

        return report

    def constant_hint(self) -> str:
        """What to change when the fitted model predicts one constant (its trees found no split)."""
        l1, l2 = self.params.get("lambda_l1"), self.params.get("lambda_l2")
        rows = f"{self.train_rows:,}" if getattr(self, "train_rows", None) else "these"
        return (
            f"its trees found no split in {rows} training rows: the L1/L2 penalties (model.lambda_l1={l1}, "
            f"model.lambda_l2={l2}; Qlib's benchmark values are sized for ~500k rows) outweigh any gain on this "
            "sample; use model=lightgbm_small, or lower model.lambda_l1 and model.lambda_l2"
        )

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("LightGBMModel.predict called before fit")
        return self.booster.predict(X, num_iteration=self.booster.best_iteration or None)

    def save(self, directory: Path) -> list[Path]:
        path = Path(directory) / "model.lgb.txt"
        self.booster.save_model(str(path), num_iteration=self.booster.best_iteration or None)
        return [path]

    def info(self) -> dict[str, Any]:
        return {
            "best_iteration": int(self.booster.best_iteration or self.booster.current_iteration()),
            "bins": getattr(self, "bins", "built"),
        }
