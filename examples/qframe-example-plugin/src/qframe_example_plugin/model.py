"""A rank-averaging ensemble of ridge regressions, each fitted on a random subset of the features."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from qframe.core.errors import ConfigError


class RankEnsembleModel:
    """``n_members`` ridge models on random feature subsets; the score is the mean of their prediction ranks.

    Ranks (not raw predictions) are averaged so no member dominates by the scale of its outputs.
    """

    def __init__(self, n_members: int = 5, feature_fraction: float = 0.5, alpha: float = 1.0, seed: int = 0) -> None:
        if not isinstance(n_members, int) or n_members < 1:
            raise ConfigError(f"model.n_members must be a positive integer, got {n_members!r}")
        if not 0 < float(feature_fraction) <= 1:
            raise ConfigError(f"model.feature_fraction must be in (0, 1], got {feature_fraction!r}")
        if float(alpha) < 0:
            raise ConfigError(f"model.alpha must be >= 0, got {alpha!r}")
        self.n_members, self.feature_fraction, self.alpha, self.seed = n_members, float(feature_fraction), alpha, seed
        self.members: list[dict[str, np.ndarray]] = []

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray) -> None:
        ok = np.isfinite(y)
        X, y = X[ok], y[ok].astype(np.float64)
        n_features = X.shape[1]
        size = max(1, int(round(self.feature_fraction * n_features)))
        rng = np.random.default_rng(self.seed)
        mean = np.nanmean(X, axis=0, dtype=np.float64)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        scale = np.nanstd(X, axis=0, dtype=np.float64)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        Z = self._standardise(X, mean, scale)
        y_centred = y - y.mean()
        self.members = []
        for _ in range(self.n_members):
            cols = np.sort(rng.choice(n_features, size=size, replace=False))
            Zc = Z[:, cols]
            gram = Zc.T @ Zc + self.alpha * len(Zc) * np.eye(size)
            coef = np.linalg.solve(gram, Zc.T @ y_centred)
            self.members.append({"cols": cols, "coef": coef})
        self.mean_, self.scale_ = mean, scale

    @staticmethod
    def _standardise(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
        Z = (X - mean) / scale
        return np.where(np.isfinite(Z), Z, 0.0)  # a missing feature counts as its train mean

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not self.members:
            raise RuntimeError("rank_ensemble: predict() before fit()")
        Z = self._standardise(X, self.mean_, self.scale_)
        ranks = np.zeros(len(X))
        for m in self.members:
            pred = Z[:, m["cols"]] @ m["coef"]
            ranks += np.argsort(np.argsort(pred, kind="stable"), kind="stable") / max(len(X) - 1, 1)
        return ranks / len(self.members)

    def save(self, directory: Path) -> list[Path]:
        path = Path(directory) / "model.rank_ensemble.json"
        state = {
            "alpha": self.alpha,
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "members": [{"cols": m["cols"].tolist(), "coef": m["coef"].tolist()} for m in self.members],
        }
        path.write_text(json.dumps(state))
        return [path]

    def info(self) -> dict[str, Any]:
        return {"n_members": len(self.members), "features_per_member": len(self.members[0]["cols"])}
