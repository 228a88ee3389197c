"""Ridge regression in closed form on standardised features."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from qframe.core.errors import ConfigError


class LinearModel:
    """Ridge: features z-scored with train statistics, NaN set to the mean (0), then ``(X'X/n + a I) b = X'y/n``."""

    def __init__(self, alpha: float = 0.1, fit_intercept: bool = True) -> None:
        if alpha < 0:
            raise ConfigError(f"model.alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.fit_intercept = bool(fit_intercept)

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.mean_) / self.scale_
        return np.nan_to_num(Z, nan=0.0, posinf=0.0, neginf=0.0)

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray) -> None:
        keep = np.isfinite(y)
        X, y = X[keep].astype(np.float64), y[keep].astype(np.float64)
        self.mean_ = np.nanmean(X, axis=0)
        std = np.nanstd(X, axis=0)
        self.scale_ = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        self.mean_ = np.nan_to_num(self.mean_)
        Z = self._standardise(X)
        self.intercept_ = float(y.mean()) if self.fit_intercept else 0.0
        # per-sample scaling keeps alpha's meaning independent of the sample size
        n = max(len(y), 1)
        gram = Z.T @ Z / n + self.alpha * np.eye(Z.shape[1])
        self.coef_ = np.linalg.solve(gram, Z.T @ (y - self.intercept_) / n)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._standardise(X.astype(np.float64)) @ self.coef_ + self.intercept_

    def save(self, directory: Path) -> list[Path]:
        path = Path(directory) / "model.linear.json"
        state = {k: np.asarray(getattr(self, k)).tolist() for k in ("mean_", "scale_", "coef_", "intercept_")}
        path.write_text(json.dumps({"alpha": self.alpha, **state}))
        return [path]

    def info(self) -> dict[str, Any]:
        return {"n_coef": len(self.coef_)}
