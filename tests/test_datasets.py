"""Dataset plugins: the fixture's market read three ways, the synthetic generator, and bad inputs."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pluggy
import pytest

import qframe.plugins.datasets as datasets_plugin
from qframe.core import hookspecs
from qframe.core.discovery import Plugins
from qframe.core.errors import ConfigError, DataError
from qframe.core.registry import build_registry
from qframe.plugins.datasets import QlibBinDataset, SyntheticDataset, TableDataset

FIXTURE = Path(__file__).parent / "fixtures" / "qlib_small"
BIN = FIXTURE / "qlib_bin"
OHLCV = FIXTURE / "ohlcv.parquet"
F32 = dict(rtol=2e-7, atol=0, equal_nan=True)  # float32 storage: agree to its precision
SMALL = dict(n_instruments=60, n_days=300)


@pytest.fixture(scope="module")
def bin_market():
    return QlibBinDataset(BIN).load()


@pytest.fixture(scope="module")
def long_frame():
    return pd.read_parquet(OHLCV)


def wide_csv(tmp_path: Path, long_frame: pd.DataFrame) -> Path:
    wide = long_frame.pivot(index="date", columns="instrument", values="close").reset_index()
    path = tmp_path / "closes.csv"
    wide.to_csv(path, index=False)
    return path


def spell_mask(path: Path, calendar: pd.DatetimeIndex, instruments: pd.Index) -> np.ndarray:
    """The membership the spells file states, day by day (a plain reading, independent of the loader)."""
    mask = np.zeros((len(calendar), len(instruments)), dtype=bool)
    for line in path.read_text().splitlines():
        code, start, end = line.split("\t")
        if code in instruments:
            mask[:, instruments.get_loc(code)] |= (calendar >= start) & (calendar <= end)
    return mask


def test_registered_through_the_hook():
    pm = pluggy.PluginManager("qframe")
    pm.add_hookspecs(hookspecs)
    pm.register(datasets_plugin, name="qframe.plugins.datasets")
    reg = build_registry(Plugins(pm))
    assert {"synthetic", "csv", "qlib"} <= set(reg.names("dataset"))
    # registered by import path (qframe.core.lazy): the class is imported when the dataset is made
    assert reg.get("dataset", "qlib").obj.resolve() is QlibBinDataset


# --- the fixture's market, three ways ------------------------------------------------------------


def test_bin_reader_matches_fixture_tables(bin_market, long_frame):
    md = bin_market
    cal = pd.DatetimeIndex(pd.read_csv(BIN / "calendars" / "day.txt", header=None)[0])
    assert md.calendar.equals(cal)
    assert list(md.instruments) == sorted(long_frame["instrument"].unique())  # benchmark code is not a member
    assert "SH000300" not in md.instruments
    assert set(md.fields) == {"open", "high", "low", "close", "volume", "vwap", "factor", "change"}
    bench = pd.read_parquet(FIXTURE / "benchmark.parquet").set_index("date")["close"]
    np.testing.assert_allclose(md.benchmark.to_numpy(), bench.reindex(md.calendar).to_numpy(), **F32)
    # every stored bar of the long table sits at its (date, instrument) cell
    t = md.calendar.get_indexer(long_frame["date"])
    n = md.instruments.get_indexer(long_frame["instrument"])
    for f in md.fields:
        np.testing.assert_allclose(md.fields[f][t, n], long_frame[f].to_numpy(dtype=float), **F32)
    # cells without a row in the long table are no bars
    has_row = np.zeros(md.shape, dtype=bool)
    has_row[t, n] = True
    assert np.isnan(md.fields["close"][~has_row]).all()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_long_table_equals_bin(bin_market, long_frame, tmp_path, suffix):
    path = OHLCV
    if suffix == ".csv":
        path = tmp_path / "ohlcv.csv"
        long_frame.to_csv(path, index=False)
    md = TableDataset(path, benchmark_path=FIXTURE / "benchmark.parquet").load()
    assert md.calendar.equals(bin_market.calendar)
    assert md.instruments.equals(bin_market.instruments)
    for f in bin_market.fields:
        np.testing.assert_allclose(md.fields[f], bin_market.fields[f], **F32)
    np.testing.assert_allclose(md.benchmark.to_numpy(), bin_market.benchmark.to_numpy(), **F32)
    # the only remark: the fixture's calendar skips two weekdays before October (a holiday closure), said once
    assert len(md.notes) == 1 and md.notes[0].startswith("calendar: 1 gap(s)") and "2020-09-30" in md.notes[0]


def test_wide_close_table_equals_bin(bin_market, long_frame, tmp_path):
    md = TableDataset(wide_csv(tmp_path, long_frame)).load()
    assert set(md.fields) == {"close", "change"}
    assert md.calendar.equals(bin_market.calendar)
    assert md.instruments.equals(bin_market.instruments)
    np.testing.assert_allclose(md.fields["close"], bin_market.fields["close"], **F32)
    # change derived from closes (previous available close) reproduces Qlib's stored $change
    np.testing.assert_allclose(md.fields["change"], bin_market.fields["change"], rtol=0, atol=1e-6, equal_nan=True)
    assert np.array_equal(md.universe, ~np.isnan(md.fields["close"]))


def test_csi300_universe_follows_the_spells(bin_market):
    md = QlibBinDataset(BIN, market="csi300").load()
    spells = pd.read_csv(BIN / "instruments" / "csi300.txt", sep="\t", header=None)
    assert list(md.instruments) == sorted(spells[0].unique())
    assert np.array_equal(md.universe, spell_mask(BIN / "instruments" / "csi300.txt", md.calendar, md.instruments))
    # members keep their whole history, also on days they are not members
    j = bin_market.instruments.get_indexer(md.instruments)
    np.testing.assert_array_equal(md.fields["close"], bin_market.fields["close"][:, j])
    assert (~md.universe & ~np.isnan(md.fields["close"])).any()


def test_table_universe_file_and_date_range(bin_market):
    kw = dict(universe_path=BIN / "instruments" / "csi300.txt", start="2020-03-01", end="2020-12-31")
    md = TableDataset(OHLCV, **kw).load()
    assert md.calendar[0] == pd.Timestamp("2020-03-02") and md.calendar[-1] == pd.Timestamp("2020-12-31")
    assert np.array_equal(md.universe, spell_mask(BIN / "instruments" / "csi300.txt", md.calendar, md.instruments))
    sub = QlibBinDataset(BIN, start="2020-03-01", end="2020-12-31").load()
    assert sub.calendar.equals(md.calendar)
    np.testing.assert_allclose(sub.fields["close"], md.fields["close"], **F32)
    one = QlibBinDataset(BIN, instruments=["SZ000001", "SH600000"]).load()
    assert list(one.instruments) == ["SZ000001", "SH600000"]


def test_missing_vwap_falls_back_and_says_so(long_frame, tmp_path, caplog):
    path = tmp_path / "novwap.parquet"
    long_frame.drop(columns=["vwap", "factor", "change"]).to_parquet(path)
    with caplog.at_level(logging.WARNING, logger="qframe"):
        md = TableDataset(path).load()
    f = md.fields
    np.testing.assert_allclose(f["vwap"], (f["high"] + f["low"] + f["close"]) / 3, equal_nan=True)
    assert np.all(f["factor"][~np.isnan(f["close"])] == 1.0)
    assert [n for n in md.notes if not n.startswith("calendar:")] == [md.notes[0]] and "vwap" in md.notes[0]
    # said once: in the notes, which the run's summary prints; not logged as well
    assert not any("vwap" in r.getMessage() for r in caplog.records)


def test_column_mapping(long_frame, tmp_path):
    path = tmp_path / "renamed.csv"
    long_frame.rename(columns={"date": "datetime", "instrument": "code", "close": "Close"}).to_csv(path, index=False)
    md = TableDataset(path, columns={"instrument": "code", "close": "Close"}).load()
    assert md.shape == (320, 40)


# --- synthetic ----------------------------------------------------------------------------------


def test_synthetic_is_deterministic():
    a, b = SyntheticDataset(**SMALL, seed=3).load(), SyntheticDataset(**SMALL, seed=3).load()
    c = SyntheticDataset(**SMALL, seed=4).load()
    assert a.fingerprint() == b.fingerprint()
    for f in a.fields:
        np.testing.assert_array_equal(a.fields[f], b.fields[f])
    assert a.fingerprint() != c.fingerprint()
    assert not np.allclose(a.fields["close"], c.fields["close"], equal_nan=True)


def test_synthetic_cache_round_trips(tmp_path):
    fresh_ds = SyntheticDataset(**SMALL, seed=5)
    fresh = fresh_ds.load()
    first = SyntheticDataset(**SMALL, seed=5).load(cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temp file left behind
    again_ds = SyntheticDataset(**SMALL, seed=5)
    again = again_ds.load(cache_dir=tmp_path)
    assert fresh.fingerprint() == first.fingerprint() == again.fingerprint()
    assert again.calendar.equals(fresh.calendar) and again.instruments.equals(fresh.instruments)
    np.testing.assert_array_equal(again_ds.latent, fresh_ds.latent)
    other = SyntheticDataset(**SMALL, seed=6).load(cache_dir=tmp_path)  # other parameters, other file
    assert len(list(tmp_path.iterdir())) == 2 and other.fingerprint() != fresh.fingerprint()


def daily_rank_ic(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    ok = mask & ~np.isnan(x) & ~np.isnan(y)
    rx = pd.DataFrame(np.where(ok, x, np.nan)).rank(axis=1).T
    ry = pd.DataFrame(np.where(ok, y, np.nan)).rank(axis=1).T
    return float(rx.corrwith(ry).mean())


@pytest.fixture(scope="module")
def synthetic():
    ds = SyntheticDataset(n_instruments=200, n_days=1000, seed=11)
    return ds.load(), ds.latent


def test_synthetic_planted_signal_predicts_next_day(synthetic):
    md, state = synthetic
    nxt = np.vstack([md.fields["change"][1:], np.full((1, md.shape[1]), np.nan)])
    ic = daily_rank_ic(state, nxt, md.universe)
    assert 0.06 < ic < 0.14  # signal_ic=0.1 by default
    shuffled = np.random.default_rng(0).permuted(state, axis=1)
    assert abs(daily_rank_ic(shuffled, nxt, md.universe)) < 0.02
    # not leaked contemporaneously: the state does not load on today's return beyond its persistence
    same_day = daily_rank_ic(state, md.fields["change"], md.universe)
    assert same_day < ic
    # visible to features: volume relative to its own 60-day mean carries part of it
    lv = pd.DataFrame(np.log(md.fields["volume"]))
    dev = (lv - lv.rolling(60, min_periods=20).mean()).to_numpy()
    assert 0.01 < daily_rank_ic(dev, nxt, md.universe) < ic


def test_synthetic_looks_like_a_market(synthetic):
    md, _ = synthetic
    f = md.fields
    has = ~np.isnan(f["close"])
    assert set(f) == {"open", "high", "low", "close", "volume", "vwap", "factor", "change"}
    assert 0.015 < np.nanstd(f["change"]) < 0.03
    assert np.nanmax(np.abs(f["change"])) <= 0.1 + 1e-6 and (np.abs(f["change"]) > 0.0999).sum() > 10
    assert (f["low"][has] <= np.minimum(f["open"], f["close"])[has]).all()
    assert (f["high"][has] >= np.maximum(f["vwap"], f["close"])[has]).all()
    first = f["close"][np.argmax(has, axis=0), np.arange(md.shape[1])]
    assert 5 <= first.min() and first.max() <= 100
    assert 1e4 < np.nanmedian(f["volume"]) < 1e8
    assert (~has[0]).sum() > 10 and (~has[-1]).sum() > (~has[0]).sum() // 4  # late listings, delistings
    assert (has[:-1] & ~has[1:] & has[:-1]).sum() > 50  # suspensions
    sizes = md.universe.sum(axis=1)
    assert np.median(sizes) == 100 and 0 < (md.universe[60] != md.universe[59]).sum()
    assert md.benchmark is not None and md.benchmark.index.equals(md.calendar) and md.benchmark.iloc[0] == 1000


def test_synthetic_date_and_instrument_cut():
    ds = SyntheticDataset(**SMALL, seed=1, start="2014-03-01", end="2014-06-30", instruments=["SH600000", "SZ000001"])
    md = ds.load()
    assert md.calendar[0] >= pd.Timestamp("2014-03-01") and md.calendar[-1] <= pd.Timestamp("2014-06-30")
    assert list(md.instruments) == ["SH600000", "SZ000001"] and ds.latent.shape == md.shape


# --- bad inputs ---------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"dataset\.path=.*nope\.csv.*not found"):
        TableDataset(tmp_path / "nope.csv").load()
    with pytest.raises(DataError, match=r"dataset\.provider_uri=.*nodir"):
        QlibBinDataset(tmp_path / "nodir").load()
    with pytest.raises(DataError, match=r"instruments.*csi500\.txt.*dataset\.market.*all, csi300"):
        QlibBinDataset(BIN, market="csi500").load()
    with pytest.raises(DataError, match=r"sz999999.*close\.day\.bin.*dataset\.benchmark"):
        QlibBinDataset(BIN, benchmark="SZ999999").load()


def test_unreadable_file(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match=r"broken\.parquet.*cannot read it as Parquet"):
        TableDataset(path).load()
    with pytest.raises(ConfigError, match=r"dataset\.path=.*\.xlsx.*unknown file type"):
        (tmp_path / "x.xlsx").write_bytes(b"x")
        TableDataset(tmp_path / "x.xlsx").load()


def test_missing_columns(long_frame, tmp_path):
    path = tmp_path / "bad.csv"
    long_frame.rename(columns={"close": "Price"}).drop(columns=["volume"]).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        TableDataset(path).load()
    msg = str(err.value)
    assert "bad.csv" in msg and "close" in msg and "volume" in msg and "'Price'" in msg
    assert "dataset.columns.close=" in msg and "dataset.columns.volume=" in msg
    with pytest.raises(DataError, match=r"bad\.csv.*no date column 'day'.*dataset\.columns\.date"):
        TableDataset(path, columns={"date": "day"}).load()


def test_empty_date_range():
    for ds in (
        TableDataset(OHLCV, start="2030-01-01"),
        QlibBinDataset(BIN, start="2030-01-01", end="2030-12-31"),
        SyntheticDataset(**SMALL, start="2030-01-01"),
    ):
        with pytest.raises(DataError, match=r"dataset\.start=2030-01-01.*holds no trading day"):
            ds.load()
    with pytest.raises(ConfigError, match=r"dataset\.start=.*after dataset\.end"):
        TableDataset(OHLCV, start="2021-01-01", end="2020-01-01").load()


def test_empty_universe(tmp_path):
    with pytest.raises(DataError, match=r"ohlcv\.parquet.*dataset\.instruments"):
        TableDataset(OHLCV, instruments=["XX000000"]).load()
    spells = tmp_path / "mine.txt"
    spells.write_text("XX000001\t2020-01-02\t2021-03-31\n")
    with pytest.raises(DataError, match=r"dataset\.universe_path=.*mine\.txt.*none of its codes"):
        TableDataset(OHLCV, universe_path=spells).load()
    spells.write_text("SH600000\t2020-01-02\t2020-02-28\n")
    with pytest.raises(DataError, match=r"universe has no member.*dataset\.start"):
        TableDataset(OHLCV, universe_path=spells, start="2020-06-01").load()


@pytest.mark.parametrize(
    "column, value, what",
    [("open", np.nan, "NaN"), ("close", np.inf, "infinite"), ("low", -1.0, "negative"), ("volume", -5.0, "negative")],
)
def test_bad_prices(long_frame, tmp_path, column, value, what):
    df = long_frame.copy()
    df[column] = df[column].astype("float64")
    df.loc[[7, 9], column] = value
    path = tmp_path / "prices.parquet"
    df.to_parquet(path)
    with pytest.raises(DataError) as err:
        TableDataset(path).load()
    msg = str(err.value)
    assert "prices.parquet" in msg and f"column {column!r}" in msg and what in msg
    assert "2 " in msg and "data row 8" in msg and str(df.loc[7, "date"].date()) in msg


def test_bad_wide_closes(long_frame, tmp_path):
    path = wide_csv(tmp_path, long_frame)
    df = pd.read_csv(path)
    df.loc[3, "SZ000005"] = -2.0
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"closes\.csv.*negative.*'SZ000005'.*data row 4"):
        TableDataset(path).load()


def test_duplicate_rows_and_unknown_keys(long_frame, tmp_path):
    path = tmp_path / "dup.parquet"
    pd.concat([long_frame, long_frame.iloc[[5]]]).to_parquet(path)
    with pytest.raises(DataError, match=r"dup\.parquet.*duplicate"):
        TableDataset(path).load()
    with pytest.raises(ConfigError, match=r"dataset\.colums"):
        TableDataset(OHLCV, colums={})
    with pytest.raises(ConfigError, match=r"dataset\.columns\.adj_close"):
        TableDataset(OHLCV, columns={"adj_close": "x"})
    with pytest.raises(ConfigError, match=r"dataset\.n_stocks"):
        SyntheticDataset(n_stocks=5)
    with pytest.raises(ConfigError, match=r"dataset\.signal_ic"):
        SyntheticDataset(signal_ic=1.5)


def dump_bin(md, root: Path) -> None:
    """Write a market in Qlib's bin layout (each instrument stored from its first to its last bar)."""
    (root / "calendars").mkdir(parents=True)
    (root / "instruments").mkdir()
    (root / "calendars" / "day.txt").write_text("\n".join(str(d.date()) for d in md.calendar))
    lines = []
    for j, code in enumerate(md.instruments):
        idx = np.flatnonzero(~np.isnan(md.fields["close"][:, j]))
        a, b = idx[0], idx[-1] + 1
        (root / "features" / code.lower()).mkdir(parents=True)
        for f, arr in md.fields.items():
            np.concatenate([[a], arr[a:b, j]]).astype("<f4").tofile(root / "features" / code.lower() / f"{f}.day.bin")
        lines.append(f"{code}\t{md.calendar[a].date()}\t{md.calendar[b - 1].date()}")
    (root / "instruments" / "all.txt").write_text("\n".join(lines))
    (root / "features" / "sh000300").mkdir()
    np.concatenate([[0], md.benchmark.to_numpy()]).astype("<f4").tofile(
        root / "features" / "sh000300" / "close.day.bin"
    )


def test_synthetic_through_qlib_bin_round_trips(tmp_path):
    md = SyntheticDataset(n_instruments=30, n_days=400, seed=2, ipo_share=0.5, delist_share=0.5).load()
    dump_bin(md, tmp_path / "qlib")
    back = QlibBinDataset(tmp_path / "qlib").load()
    assert back.instruments.equals(md.instruments) and back.calendar.equals(md.calendar)
    for f in md.fields:  # synthetic values are float32-exact, so the bin round trip is bit-exact
        np.testing.assert_array_equal(back.fields[f], md.fields[f])
    np.testing.assert_array_equal(back.benchmark.to_numpy(), md.benchmark.to_numpy())
    # a file that claims more days than the calendar has is reported, naming the file
    bad = tmp_path / "qlib" / "features" / md.instruments[0].lower() / "close.day.bin"
    np.concatenate([[390], np.ones(20)]).astype("<f4").tofile(bad)
    with pytest.raises(DataError, match=r"close\.day\.bin: stores calendar days 390"):
        QlibBinDataset(tmp_path / "qlib").load()


def test_qlib_bin_cache_equals_the_read_and_misses_on_a_changed_file(tmp_path):
    md = SyntheticDataset(n_instruments=12, n_days=300, seed=3, ipo_share=0.5, delist_share=0.5).load()
    dump_bin(md, tmp_path / "qlib")
    cache = tmp_path / "cache"
    uncached = QlibBinDataset(tmp_path / "qlib").load()
    cold = QlibBinDataset(tmp_path / "qlib").load(cache_dir=cache)
    [stored] = list((cache / "qlib").glob("*.arrow"))
    # the warm load reads the cache, not the .bin files: a file garbled behind its back (same size, same mtime)
    close = tmp_path / "qlib" / "features" / md.instruments[1].lower() / "close.day.bin"
    original, st = close.read_bytes(), close.stat()
    close.write_bytes(b"\xff" * len(original))
    os.utime(close, ns=(st.st_atime_ns, st.st_mtime_ns))
    warm = QlibBinDataset(tmp_path / "qlib").load(cache_dir=cache)
    close.write_bytes(original)
    for back in (cold, warm):
        assert back.instruments.equals(uncached.instruments) and back.calendar.equals(uncached.calendar)
        assert back.fields.keys() == uncached.fields.keys()
        for f in uncached.fields:
            np.testing.assert_array_equal(back.fields[f], uncached.fields[f])
            assert back.fields[f].dtype == uncached.fields[f].dtype
        np.testing.assert_array_equal(back.universe, uncached.universe)
        np.testing.assert_array_equal(back.benchmark.to_numpy(), uncached.benchmark.to_numpy())
    assert list((cache / "qlib").glob("*.arrow")) == [stored]
    # a re-dumped file (new values, same size) misses the cache and is read
    values = np.fromfile(close, dtype="<f4")
    values[1:] *= 2
    values.tofile(close)
    os.utime(close, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a re-dump comes later (mtimes are coarse)
    changed = QlibBinDataset(tmp_path / "qlib").load(cache_dir=cache)
    np.testing.assert_array_equal(changed.fields["close"][:, 1], 2 * uncached.fields["close"][:, 1])
    np.testing.assert_array_equal(changed.fields["close"][:, 2:], uncached.fields["close"][:, 2:])
    assert len(list((cache / "qlib").glob("*.arrow"))) == 2
    from qframe.cache_cli import entries  # `qframe cache` lists them as markets (cache/ of the work directory)

    listed = entries(tmp_path)
    assert [e.kind for e in listed] == ["market", "market"] and "Qlib data of" in listed[0].what
