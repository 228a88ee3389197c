import numpy as np
import pytest

from qframe.core import handler
from qframe.core.errors import ConfigError
from qframe.core.registry import get_registry
from qframe.plugins.features.alpha158 import Alpha158
from qframe.plugins.features.alpha360 import Alpha360


def test_instrument_blocks_equal_whole_panel(small_market, monkeypatch):
    whole, dropped = handler._compute_panel(small_market, Alpha158(), horizon=1)
    monkeypatch.setattr(handler, "BLOCK_CELLS", small_market.shape[0] * 5)  # blocks of 5 instruments
    blocks, dropped_b = handler._compute_panel(small_market, Alpha158(), horizon=1)
    assert blocks.names == whole.names and dropped_b == dropped
    np.testing.assert_array_equal(blocks.X, whole.X)
    np.testing.assert_array_equal(blocks.y, whole.y)
    np.testing.assert_array_equal(blocks.day, whole.day)
    np.testing.assert_array_equal(blocks.inst, whole.inst)


def test_a_block_of_one_instrument_equals_the_whole_panel(small_market, monkeypatch):
    """A last block one instrument wide (300 instruments in blocks of 13 on the default market): its rolling
    moments come back from pandas as a contiguous read-only array, which the features still write into."""
    whole, _ = handler._compute_panel(small_market, Alpha158(), horizon=1)
    n_instruments = small_market.shape[1]
    monkeypatch.setattr(handler, "BLOCK_CELLS", small_market.shape[0] * (n_instruments - 1))  # N - 1, then 1
    blocks, _ = handler._compute_panel(small_market, Alpha158(), horizon=1)
    np.testing.assert_array_equal(blocks.X, whole.X)


@pytest.mark.parametrize(("threads", "features"), [(2, Alpha158()), (3, Alpha158()), (2, Alpha360(window=10))])
def test_instrument_blocks_in_threads_equal_whole_panel(small_market, monkeypatch, threads, features):
    """Blocks computed side by side (5 instruments each, the last one shorter) give the one-block numbers."""
    whole, dropped = handler._compute_panel(small_market, features, horizon=1)
    monkeypatch.setattr(handler, "BLOCK_CELLS", small_market.shape[0] * 5 * threads)  # split among the threads
    blocks, dropped_b = handler._compute_panel(small_market, features, horizon=1, threads=threads)
    assert small_market.shape[1] > 5 * 2 and small_market.shape[1] % 5  # three blocks, a short last one
    assert blocks.names == whole.names and dropped_b == dropped
    np.testing.assert_array_equal(blocks.X, whole.X)
    np.testing.assert_array_equal(blocks.y, whole.y)


def test_an_error_in_a_feature_thread_reaches_the_caller(small_market, monkeypatch):
    class Failing(Alpha158):
        def compute(self, market):
            if market.instruments[0] != small_market.instruments[0]:
                raise ValueError(f"no features for {market.instruments[0]}")
            return super().compute(market)

    monkeypatch.setattr(handler, "BLOCK_CELLS", small_market.shape[0] * 4 * 2)  # 3 blocks of 4, 2 threads
    with pytest.raises(ValueError, match="no features for"):
        handler._compute_panel(small_market, Failing(), horizon=1, threads=2)


def test_before_compute_runs_before_computed_features_only(small_market, tmp_path):
    """The workflow settles its tracking set-up there: before features are computed, never on a cache hit."""
    calls = []

    def settle() -> None:
        calls.append(1)

    cfg = {"features": {"name": "alpha158", "windows": [5, 10]}, "label": {"horizon": 1}, "num_threads": 2}
    segments = {"fractions": [0.6, 0.2, 0.2]}
    computed = handler.prepare(small_market, get_registry(), cfg, segments, tmp_path, None, None, settle)
    cached = handler.prepare(small_market, get_registry(), cfg, segments, tmp_path, None, None, settle)
    assert (computed.from_cache, cached.from_cache) == (False, True)
    assert len(calls) == 1
    uncached = {**cfg, "cache": False}
    handler.prepare(small_market, get_registry(), uncached, segments, tmp_path, None, None, settle)
    assert len(calls) == 2


def test_feature_threads_setting():
    assert handler.feature_threads({"num_threads": 3}) == 3
    assert handler.feature_threads({}) >= 1  # null: the cores this process may use
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ConfigError, match="handler.num_threads"):
            handler.feature_threads({"num_threads": bad})


def test_feature_cache_hit_identical_and_invalidated_by_config_or_data(small_market, tmp_path):
    reg = get_registry()
    first, _, hit1 = handler.build_panel(small_market, reg, {"name": "alpha158"}, {"horizon": 1}, tmp_path)
    again, _, hit2 = handler.build_panel(small_market, reg, {"name": "alpha158"}, {"horizon": 1}, tmp_path)
    assert (hit1, hit2) == (False, True)
    np.testing.assert_array_equal(first.X, again.X)
    assert not again.X.flags.writeable  # a read-only view of the cache file, not a copy
    _, _, hit3 = handler.build_panel(
        small_market, reg, {"name": "alpha158", "windows": [5, 10]}, {"horizon": 1}, tmp_path
    )
    _, _, hit4 = handler.build_panel(small_market, reg, {"name": "alpha158"}, {"horizon": 2}, tmp_path)
    changed = type(small_market)(
        small_market.calendar,
        small_market.instruments,
        {**small_market.fields, "close": small_market.fields["close"] * 1.01},
        benchmark=small_market.benchmark,
    )
    _, _, hit5 = handler.build_panel(changed, reg, {"name": "alpha158"}, {"horizon": 1}, tmp_path)
    assert (hit3, hit4, hit5) == (False, False, False)


def test_universe_applies_per_date(small_market):
    universe = small_market.universe.copy()
    universe[:50, :6] = False  # the first six names join the universe on day 50
    market = type(small_market)(
        small_market.calendar,
        small_market.instruments,
        small_market.fields,
        universe=universe,
        benchmark=small_market.benchmark,
    )
    panel, _ = handler._compute_panel(market, Alpha158(), horizon=1)
    early = panel.day < 50
    assert not np.isin(panel.inst[early], np.arange(6)).any()
    assert np.isin(panel.inst[~early], np.arange(6)).any()


def test_segment_errors():
    cal = __import__("pandas").bdate_range("2020-01-01", periods=100)
    with pytest.raises(ConfigError, match="segments.valid"):
        handler.resolve_segments(
            cal,
            {
                "train": ["2020-01-01", "2020-02-01"],
                "valid": ["2019-01-01", "2019-02-01"],
                "test": ["2020-03-01", None],
            },
        )
    with pytest.raises(ConfigError, match="after end"):
        handler.resolve_segments(
            cal, {"train": ["2020-03-01", "2020-02-01"], "valid": [None, None], "test": [None, None]}
        )
    with pytest.raises(ConfigError, match="fractions"):
        handler.resolve_segments(cal, {"fractions": [0.5, 0.5]})
