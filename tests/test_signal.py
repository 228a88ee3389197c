"""The planted signal is real: LightGBM finds it on a small synthetic market, and a shuffled-label control does not."""

import numpy as np
import pytest

from qframe.core.evaluation import signal_analysis
from qframe.core.handler import prepare
from qframe.core.registry import get_registry
from qframe.plugins.datasets.synthetic import SyntheticDataset
from qframe.plugins.models.lightgbm import LightGBMModel

HANDLER = {
    "features": {"name": "alpha158"},
    "label": {"horizon": 1},
    "processors": [],
    "learn_processors": [{"name": "dropna_label"}, {"name": "cs_zscore_norm", "fields": "label"}],
    "cache": False,
}


@pytest.fixture(scope="module")
def prepared():
    market = SyntheticDataset(n_instruments=200, n_days=1000, seed=1).load()
    return prepare(market, get_registry(), HANDLER, {"fractions": [0.6, 0.15, 0.25]}, cache_dir=None)


def fit_and_rank_ic(prepared, shuffle: bool) -> float:
    train, valid, test = (prepared.segments[s] for s in ("train", "valid", "test"))
    y_train, y_valid = train.y.copy(), valid.y.copy()
    if shuffle:  # permute labels within each date: the cross-section no longer carries information
        rng = np.random.default_rng(0)
        for y, part in ((y_train, train), (y_valid, valid)):
            bounds = part.date_bounds()
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
                y[lo:hi] = rng.permutation(y[lo:hi])
    # Qlib's defaults except the L1/L2 penalties, which are sized for ~1M training rows (here ~30k)
    model = LightGBMModel(lambda_l1=1.0, lambda_l2=10.0, num_leaves=31, learning_rate=0.05, num_threads=2)
    model.fit(train.X, y_train, valid.X, y_valid)
    _, summary = signal_analysis(test.series(model.predict(test.X), "score"), prepared.raw_test_label)
    return summary["Rank IC"]


def test_lightgbm_finds_the_planted_signal(prepared):
    # The latent state has Rank IC ~0.10 with the label, but features see it only through noisy volume/range
    # leaks: seeds 1-4 give 0.021-0.031 here, while the standard error of a mean daily Rank IC over ~250 test
    # days of ~100 names is ~0.008. Band: > 0.015.
    assert fit_and_rank_ic(prepared, shuffle=False) > 0.015


def test_shuffled_labels_control_finds_nothing(prepared):
    # seeds 1-4 give |Rank IC| <= 0.007. Band: < 0.012.
    assert abs(fit_and_rank_ic(prepared, shuffle=True)) < 0.012
