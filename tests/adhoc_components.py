"""Components used by dotted path (``_target_``) from config in tests/test_target_components.py: not a plugin.

Importable because that test puts this directory on the ``qframe`` subprocess's PYTHONPATH.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qframe.core.panel import Panel


class MeanOfFeatures:
    """Score = ``sign`` x the row's mean z-scored feature, the sign flipped when the train segment says so."""

    def __init__(self, sign: float = 1.0) -> None:
        self.sign = float(sign)

    def fit(self, X, y, X_valid, y_valid):
        mean = np.nan_to_num(np.nanmean(X, axis=1))
        self.flip_ = -1.0 if np.corrcoef(mean, np.nan_to_num(y))[0, 1] < 0 else 1.0

    def predict(self, X):
        return self.sign * self.flip_ * np.nan_to_num(np.nanmean(X, axis=1))

    def save(self, directory):
        path = Path(directory) / "mean_of_features.json"
        path.write_text(json.dumps({"sign": self.sign, "flip": self.flip_}))
        return [path]

    def info(self):
        return {"flip": self.flip_}


class NoPredict:
    """A model that forgot ``predict``."""

    def fit(self, X, y, X_valid, y_valid):
        pass

    def save(self, directory):
        return []

    def info(self):
        return {}


class Demean:
    """Subtract each feature's train-segment mean: ``fit`` and ``transform`` only (stateful by default)."""

    def fit(self, panel):
        self.mean_ = np.nanmean(panel.X, axis=0)

    def transform(self, panel):
        X = (panel.X - self.mean_).astype(np.float32)
        return Panel(X, panel.y, panel.day, panel.inst, panel.names, panel.calendar, panel.instruments)


class RunIdFile:
    """A recorder writing the finished run's id to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, result, cfg):
        Path(self.path).write_text(result.run_id)


class SlowFit(MeanOfFeatures):
    """MeanOfFeatures whose fit announces itself in ``started`` (a file: one line per fit) and then sleeps in Python
    (so a signal's handler runs): a job that is surely running when the test stops its sweep."""

    def __init__(self, started: str, seconds: float = 60.0, sign: float = 1.0) -> None:
        super().__init__(sign)
        self.started, self.seconds = started, float(seconds)

    def fit(self, X, y, X_valid, y_valid):
        with open(self.started, "a") as fh:
            fh.write("fit\n")
        import time

        time.sleep(self.seconds)
        super().fit(X, y, X_valid, y_valid)
