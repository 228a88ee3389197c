import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

FIXTURE = Path(__file__).parent / "fixtures" / "qlib_small"


def random_market(n_days: int = 200, n_inst: int = 12, seed: int = 0):
    """A small random-walk OHLCV market (no planted signal), for plumbing tests."""
    from qframe.core.data import MarketData

    rng = np.random.default_rng(seed)
    ret = rng.normal(0, 0.02, (n_days, n_inst))
    close = 20 * np.exp(np.cumsum(ret, axis=0))
    open_ = close * np.exp(rng.normal(0, 0.005, close.shape))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.01, close.shape)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.01, close.shape)))
    volume = rng.lognormal(13, 0.5, close.shape)
    fields = {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "vwap": (high + low + close) / 3,
        "factor": np.ones_like(close),
    }
    calendar = pd.bdate_range("2020-01-01", periods=n_days)
    bench = pd.Series(100 * np.exp(np.cumsum(ret.mean(axis=1))), index=calendar)
    return MarketData(calendar, pd.Index([f"S{i:03d}" for i in range(n_inst)]), fields, benchmark=bench)


@pytest.fixture
def small_market():
    return random_market()


@pytest.fixture(autouse=True)
def _no_tracking_uri_from_earlier_tests(monkeypatch):
    """``mlflow.set_tracking_uri`` (called by every in-process run) also sets ``MLFLOW_TRACKING_URI`` in this
    process's environment: without this, a test would find the store of whichever in-process run came before it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
