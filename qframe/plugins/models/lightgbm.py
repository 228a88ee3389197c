"""LightGBM with Qlib's benchmark defaults, early-stopped on the valid segment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from qframe.core.errors import ConfigError


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
        **params: Any,
    ) -> None:
        if loss not in ("mse", "mae", "huber"):
            raise ConfigError(f"model.loss={loss!r}; valid options: mse, mae, huber")
        if num_boost_round < 1:
            raise ConfigError(f"model.num_boost_round must be >= 1, got {num_boost_round}")
        self.num_boost_round = int(num_boost_round)
        self.early_stopping_rounds = int(early_stopping_rounds)
        self.verbose_eval = int(verbose_eval)
        objective = {"mse": "regression", "mae": "regression_l1", "huber": "huber"}[loss]
        self.params = {
            "objective": objective,
            "num_threads": num_threads or len(os.sched_getaffinity(0)),
            "seed": seed,
            "verbosity": -1,
            **params,
        }
        self.booster: lgb.Booster | None = None

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray) -> None:
        train = lgb.Dataset(X, label=y, free_raw_data=True)
        callbacks = []
        valid_sets = [train]
        names = ["train"]
        if len(y_valid):
            valid_sets.append(lgb.Dataset(X_valid, label=y_valid, reference=train))
            names.append("valid")
            if self.early_stopping_rounds > 0:
                callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        if self.verbose_eval:
            callbacks.append(lgb.log_evaluation(self.verbose_eval))
        self.booster = lgb.train(
            self.params,
            train,
            num_boost_round=self.num_boost_round,
            valid_sets=valid_sets,
            valid_names=names,
            callbacks=callbacks,
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
        return {"best_iteration": int(self.booster.best_iteration or self.booster.current_iteration())}
