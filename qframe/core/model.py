"""The model contract every registered model follows."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Model(Protocol):
    """A model trained on float32 feature matrices (NaN allowed) and a float label."""

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray) -> None:
        """Train; ``X_valid``/``y_valid`` are for early stopping and may be empty."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        """One score per row."""

    def save(self, directory: Path) -> list[Path]:
        """Write the trained model in a portable, non-pickle format; return the files written."""

    def info(self) -> dict[str, Any]:
        """Facts about the fit worth recording (e.g. best iteration)."""
