"""``preset=qlib`` against Qlib 0.9.7's own answers on the qlib_small market (tests/fixtures/qlib_ts, made by its
make_reference.py with the Qlib peer): the GRU/ALSTM Alpha158 benchmark handler with suspended rows kept (rows,
processed features, CSRankNorm labels of train/valid, inference rows of test), and the ffill+bfill windows of
TSDatasetH inside train and at the start of the test segment."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from qframe.app import conf_dir
from qframe.core.handler import prepare
from qframe.core.registry import get_registry
from qframe.plugins.datasets.qlib_bin import QlibBinDataset

FIXTURES = Path(__file__).parent / "fixtures"
REF = FIXTURES / "qlib_ts"
SETUP = json.loads((REF / "segments.json").read_text())
ATOL = 2e-5  # float32 processors on both sides (the issue measured 5e-7 on shared rows)


def _composed(*overrides: str) -> dict:
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return OmegaConf.to_container(compose("config", list(overrides)), resolve=False)


@pytest.fixture(scope="module")
def cfg() -> dict:
    return _composed("preset=qlib", "model=gru", "handler=alpha158")


@pytest.fixture(scope="module")
def prepared(cfg):
    market = QlibBinDataset(provider_uri=str(FIXTURES / "qlib_small" / "qlib_bin"), market="csi300").load()
    handler = {**cfg["handler"], "cache": False}
    return prepare(market, get_registry(), handler, SETUP["segments"], None)


def _frame(panel) -> pd.DataFrame:
    keys = [panel.calendar[panel.day], panel.instruments[panel.inst]]
    index = pd.MultiIndex.from_arrays(keys, names=["date", "inst"])
    return pd.DataFrame(np.c_[panel.X, panel.y], index=index, columns=[*panel.names, "LABEL0"])


def _reference(name: str, lo: str, hi: str) -> pd.DataFrame:
    ref = pd.read_parquet(REF / f"{name}.parquet").rename(columns={"instrument": "inst"}).set_index(["date", "inst"])
    dates = ref.index.get_level_values("date")
    return ref[(dates >= lo) & (dates <= hi)]


def test_the_preset_selects_qlibs_benchmark_settings(cfg):
    model, handler = cfg["model"], cfg["handler"]
    assert handler["suspended"] == "keep" and cfg["evaluation"]["annualization"] == 238
    assert [p["name"] for p in handler["processors"]] == ["filter_col", "robust_zscore_norm", "fillna"]
    assert handler["processors"][0]["col_list"] == SETUP["columns"]
    assert [p["name"] for p in handler["learn_processors"]] == ["dropna_label", "cs_rank_norm"]
    assert (model["window"], model["window_fill"], model["input_norm"], model["lr_patience"]) == (
        20, "ffill_bfill", "none", 0,
    )  # fmt: skip
    assert (model["lr"], model["early_stop"]) == (2e-4, 10)
    alstm = _composed("preset=qlib", "model=alstm", "handler=alpha158")["model"]
    assert (alstm["lr"], alstm["early_stop"], alstm["rnn_type"], alstm["window"]) == (1e-3, 10, "gru", 20)
    # on Alpha360 (the sequence models' own handler): Qlib's Alpha360 benchmarks, no window
    gru360 = _composed("preset=qlib", "model=gru")
    assert gru360["handler"]["features"]["name"] == "alpha360" and gru360["model"]["window"] is None
    assert (gru360["model"]["lr"], gru360["model"]["early_stop"]) == (1e-3, 20)
    # without the preset, qframe's own defaults
    plain = _composed("model=gru", "handler=alpha158")
    assert plain["handler"]["suspended"] == "drop" and plain["model"]["window_fill"] == "zero"
    assert plain["model"]["input_norm"] == "robust" and plain["evaluation"]["annualization"] == "market"


@pytest.mark.parametrize("segment", ["train", "valid"])
def test_learn_rows_features_and_ranked_labels_match_qlib(prepared, segment):
    mine = _frame(prepared.segments[segment])
    ref = _reference("learn", *SETUP["segments"][segment])
    assert list(mine.columns) == list(ref.columns)  # FilterCol keeps Alpha158's column order, as Qlib's
    # the same rows: suspended days of members kept, label-NaN rows dropped
    assert mine.index.sort_values().equals(ref.index.sort_values())
    ref = ref.loc[mine.index]
    np.testing.assert_allclose(mine.to_numpy(), ref.to_numpy(np.float64), atol=ATOL, rtol=0)


def test_suspended_rows_take_part(prepared):
    bars = pd.read_parquet(FIXTURES / "qlib_small" / "ohlcv.parquet", columns=["instrument", "date", "close"])
    suspended = bars[bars["close"].isna()].rename(columns={"instrument": "inst"}).set_index(["date", "inst"]).index
    train = _frame(prepared.segments["train"])
    held = train.index.intersection(suspended)
    assert len(held) > 0
    # a feature of today's bar is NaN that day -> 0 after RobustZScoreNorm + Fillna; a rolling one over the days
    # before keeps a value (as in Qlib, where they shift its RobustZScoreNorm fit); the label is finite and ranked
    rows = train.loc[held]
    assert (rows[["KLEN", "KLOW"]] == 0).all().all()
    assert (rows[["WVMA60", "CORR60"]] != 0).any().all()
    assert np.isfinite(rows["LABEL0"]).all()


def test_test_rows_are_qlibs_inference_data(prepared):
    mine = _frame(prepared.segments["test"]).drop(columns="LABEL0")
    ref = _reference("infer", *SETUP["segments"]["test"]).drop(columns="LABEL0")
    assert mine.index.sort_values().equals(ref.index.sort_values())
    np.testing.assert_allclose(mine.to_numpy(), ref.loc[mine.index].to_numpy(np.float64), atol=ATOL, rtol=0)


@pytest.mark.parametrize("segment", ["test", "train"])
def test_windows_match_tsdataseth_with_ffill_bfill(prepared, cfg, segment):
    pytest.importorskip("torch")
    from qframe.plugins.models.torch_models import GRUModel

    params = {k: cfg["model"][k] for k in ("window", "window_fill", "input_norm")}
    model = GRUModel(**params, progress=False)
    part = prepared.segments[segment]
    history = [prepared.lookback(model.window - 1)] if segment == "test" else []
    source = model._source(part, history)
    ref = pd.read_parquet(REF / "windows.parquet")
    ref = ref[ref["segment"] == segment].sort_values(["date", "instrument", "step"])
    keys = ref[ref["step"] == 0][["date", "instrument"]]
    index = pd.MultiIndex.from_arrays([part.calendar[part.day], part.instruments[part.inst]])
    rows = index.get_indexer(pd.MultiIndex.from_frame(keys))
    assert (rows >= 0).all()
    mine = source.batch(rows)  # (samples, 20 days, 20 features), oldest first
    theirs = ref[part.names].to_numpy(np.float64).reshape(len(rows), model.window, len(part.names))
    np.testing.assert_allclose(mine, theirs, atol=ATOL, rtol=0)
