"""Ridge regression in closed form on standardised features."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from qframe.core.errors import ConfigError

_BLOCK = 1 << 15  # rows per block: 32k x 158 float64 is ~40 MB


class LinearModel:
    """Ridge: features z-scored with train statistics, NaN set to the mean (0), then ``(X'X/n + a I) b = X'y/n``."""

    def __init__(self, alpha: float = 0.1, fit_intercept: bool = True) -> None:
        if alpha < 0:
            raise ConfigError(f"model.alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.fit_intercept = bool(fit_intercept)

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        Z = (X.astype(np.float64) - self.mean_) / self.scale_
        return np.nan_to_num(Z, nan=0.0, posinf=0.0, neginf=0.0)

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_valid: np.ndarray,
        y_valid: np.ndarray,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        """Fit on the rows with a finite label; ``sample_weight`` (one per row) makes it weighted least squares:
        ``min sum_i w_i (y_i - c - z_i b)^2 / sum_i w_i + alpha |b|^2`` (the features standardised as without
        weights, so a weight changes what is fitted, not the features' scale)."""
        # Two passes over row blocks (moments, then the normal equations), so memory stays at one float64 block
        # rather than several float64 copies of the whole train matrix.
        keep = np.flatnonzero(np.isfinite(y))
        blocks = [keep[i : i + _BLOCK] for i in range(0, len(keep), _BLOCK)]
        F = X.shape[1]
        count, total, squares = np.zeros(F), np.zeros(F), np.zeros(F)
        for rows in blocks:
            block = X[rows].astype(np.float64)
            finite = np.isfinite(block)
            block[~finite] = 0.0
            count += finite.sum(axis=0)
            total += block.sum(axis=0)
            squares += (block * block).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / count
            std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
        self.mean_ = np.nan_to_num(mean)
        self.scale_ = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        y_fit = y[keep].astype(np.float64)
        if sample_weight is not None:
            self._fit_weighted(X, blocks, y_fit, np.asarray(sample_weight, dtype=np.float64)[keep])
            return
        self.intercept_ = float(y_fit.mean()) if self.fit_intercept and len(y_fit) else 0.0
        gram, xty = np.zeros((F, F)), np.zeros(F)
        offset = 0
        for rows in blocks:
            Z = self._standardise(X[rows])
            gram += Z.T @ Z
            xty += Z.T @ (y_fit[offset : offset + len(rows)] - self.intercept_)
            offset += len(rows)
        # per-sample scaling keeps alpha's meaning independent of the sample size
        n = max(len(keep), 1)
        self.coef_ = np.linalg.solve(gram / n + self.alpha * np.eye(F), xty / n)

    def _fit_weighted(self, X: np.ndarray, blocks: list[np.ndarray], y: np.ndarray, w: np.ndarray) -> None:
        """The weighted normal equations in one pass: the weighted moments of Z and y, then centred on their
        weighted means, so the intercept (the weighted mean of the residual) is fitted jointly with ``coef_``."""
        F = X.shape[1]
        gram, zy, zsum = np.zeros((F, F)), np.zeros(F), np.zeros(F)
        offset = 0
        for rows in blocks:
            Z = self._standardise(X[rows])
            wb, yb = w[offset : offset + len(rows)], y[offset : offset + len(rows)]
            gram += Z.T @ (Z * wb[:, None])
            zy += Z.T @ (wb * yb)
            zsum += Z.T @ wb
            offset += len(rows)
        total = float(w.sum()) or 1.0
        z_mean, y_mean = zsum / total, float(w @ y) / total if len(y) else 0.0
        if self.fit_intercept:
            gram = gram - total * np.outer(z_mean, z_mean)
            zy = zy - total * z_mean * y_mean
        # dividing by the total weight keeps alpha's meaning independent of the sample size, as without weights
        self.coef_ = np.linalg.solve(gram / total + self.alpha * np.eye(F), zy / total)
        self.intercept_ = float(y_mean - z_mean @ self.coef_) if self.fit_intercept else 0.0

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (
            np.concatenate(
                [self._standardise(X[i : i + _BLOCK]) @ self.coef_ for i in range(0, len(X), _BLOCK)] or [np.empty(0)]
            )
            + self.intercept_
        )

    def save(self, directory: Path) -> list[Path]:
        path = Path(directory) / "model.linear.json"
        state = {k: np.asarray(getattr(self, k)).tolist() for k in ("mean_", "scale_", "coef_", "intercept_")}
        path.write_text(json.dumps({"alpha": self.alpha, **state}))
        return [path]

    def info(self) -> dict[str, Any]:
        return {"n_coef": len(self.coef_)}
