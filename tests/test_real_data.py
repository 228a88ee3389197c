"""Real-world tables: dates as their authors meant them, column names in any case, calendar gaps, unadjusted
splits, and the data report (recorded by a run, printed by `qframe data check`). Small tables built here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import random_market

from qframe.core.data_report import data_report
from qframe.core.dates import parse_trading_days
from qframe.core.errors import ConfigError, DataError
from qframe.plugins.datasets import TableDataset
from qframe.plugins.features.alpha158 import Alpha158

QFRAME = str(Path(sys.executable).with_name("qframe"))


def long_table(md, columns=None) -> pd.DataFrame:
    """The market as a long table (one row per bar), dates as ISO strings."""
    df = md.to_long().reset_index().rename(columns={"datetime": "date"})
    df["date"] = df["date"].dt.strftime("%Y-%m-%d")
    df = df[["date", "instrument", "open", "high", "low", "close", "volume"]]
    return df.rename(columns=columns or {})


# --- dates --------------------------------------------------------------------------------------------------------


def days(*iso: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(d) for d in iso]


def test_yyyymmdd_integers_and_strings_are_dates_not_nanoseconds():
    for values in ([20090821, 20090824], ["20090821", "20090824"], [20090821.0, 20090824.0]):
        got = parse_trading_days(pd.Series(values), "f.csv", "Date")
        assert list(got) == days("2009-08-21", "2009-08-24")


def test_mixed_and_common_formats():
    got = parse_trading_days(pd.Series(["2009-08-21", "20090824", "2009/08/25", "26 Aug 2009"]), "f", "d")
    assert list(got) == days("2009-08-21", "2009-08-24", "2009-08-25", "2009-08-26")
    # 12/25 can only be month/day: it settles 03/04 as March 4th
    got = parse_trading_days(pd.Series(["03/04/2009", "12/25/2009"]), "f", "d")
    assert list(got) == days("2009-03-04", "2009-12-25")
    assert list(parse_trading_days(pd.Series(["21.08.2009"]), "f", "d")) == days("2009-08-21")


def test_timezone_aware_stamps_become_their_local_trading_day():
    text = pd.Series(["2009-08-21T16:00:00-04:00", "2009-08-24 09:30:00+09:00", "2009-08-25T23:59:00Z"])
    assert list(parse_trading_days(text, "f", "d")) == days("2009-08-21", "2009-08-24", "2009-08-25")
    # a late New York close is 04:00 UTC the next day, but its trading day is the local one
    stamps = pd.Series(pd.to_datetime(["2009-08-21 23:00", "2009-08-24 16:00"]).tz_localize("America/New_York"))
    assert list(parse_trading_days(stamps, "f", "d")) == days("2009-08-21", "2009-08-24")


def test_ambiguous_and_unparseable_dates_are_one_error_with_the_format_hint():
    with pytest.raises(DataError) as err:
        parse_trading_days(pd.Series(["03/04/2009", "05/06/2009"]), "prices.csv", "Date")
    msg = str(err.value)
    assert "prices.csv" in msg and "'Date'" in msg and "'03/04/2009'" in msg and "dataset.date_format=" in msg
    assert "ambiguous" in msg
    stated = parse_trading_days(pd.Series(["03/04/2009", "05/06/2009"]), "f", "d", "%d/%m/%Y")
    assert list(stated) == days("2009-04-03", "2009-06-05")
    with pytest.raises(DataError, match=r"'Date'.*'soon'.*dataset\.date_format="):
        parse_trading_days(pd.Series(["2009-08-21", "soon"]), "f", "Date")
    with pytest.raises(DataError, match=r"dataset\.date_format='%Y%m%d'.*'2009-08-21'"):
        parse_trading_days(pd.Series(["2009-08-21"]), "f", "Date", "%Y%m%d")


def test_integer_dates_in_a_table_load_as_their_days(tmp_path):
    md = random_market(n_days=40, n_inst=3)
    df = long_table(md, {"date": "Date", "close": "Close", "volume": "VOLUME", "instrument": "Instrument"})
    df["Date"] = df["Date"].str.replace("-", "").astype(int)
    df.to_csv(tmp_path / "t.csv", index=False)
    got = TableDataset(tmp_path / "t.csv").load()
    assert got.calendar.equals(md.calendar) and got.instruments.equals(md.instruments)
    np.testing.assert_allclose(got.fields["close"], md.fields["close"])
    assert got.findings["columns"]["close"] == "Close" and got.findings["columns"]["date"] == "Date"


# --- corporate actions ----------------------------------------------------------------------------------------------


def unadjust(md, splits: dict[int, tuple[int, float]]) -> pd.DataFrame:
    """The long table of ``md`` with raw prices: instrument j split ``shares``-for-1 on day t (prices before it
    times ``shares``, volume divided)."""
    raw = {k: v.copy() for k, v in md.fields.items()}
    for j, (t, shares) in splits.items():
        for f in ("open", "high", "low", "close"):
            raw[f][:t, j] *= shares
        raw["volume"][:t, j] /= shares
    from qframe.core.data import MarketData

    return long_table(MarketData(md.calendar, md.instruments, raw))


def test_split_and_reverse_split_detected_and_back_adjusted(tmp_path):
    md = random_market(n_days=160, n_inst=6, seed=3)
    adjusted_path = tmp_path / "adjusted.csv"
    long_table(md).to_csv(adjusted_path, index=False)
    # S001: a 2:1 split on day 100; S004: a 1:10 reverse split on day 60
    unadjust(md, {1: (100, 2.0), 4: (60, 0.1)}).to_csv(tmp_path / "raw.csv", index=False)

    given = TableDataset(tmp_path / "raw.csv").load()
    found = given.findings["splits"]["found"]
    assert [(s["instrument"], s["date"], s["ratio"]) for s in found] == [
        ("S004", str(md.calendar[60].date()), "1:10"),
        ("S001", str(md.calendar[100].date()), "2:1"),
    ]
    warning = [n for n in given.notes if "split" in n]
    assert (
        len(warning) == 1 and "S001" in warning[0] and "S004" in warning[0] and "dataset.adjust=detected" in warning[0]
    )
    assert np.nanmin(given.fields["change"][:, 1]) < -0.4  # used as given: the jump is there

    fixed = TableDataset(tmp_path / "raw.csv", adjust="detected").load()
    truth = TableDataset(adjusted_path).load()
    for f in ("open", "high", "low", "close", "volume", "vwap", "change"):
        np.testing.assert_allclose(fixed.fields[f], truth.fields[f], rtol=1e-12, equal_nan=True, err_msg=f)
    # Qlib's convention: factor = adjusted / raw, so 1/2 before the split, 10 before the reverse split
    assert fixed.fields["factor"][50, 1] == 0.5 and fixed.fields["factor"][50, 4] == pytest.approx(10.0)
    a, b = Alpha158().compute(fixed), Alpha158().compute(truth)
    assert a.names == b.names and len(a.names) == 158
    np.testing.assert_allclose(a.values, b.values, rtol=2e-5, atol=1e-6, equal_nan=True)
    report = data_report(fixed)
    assert report["outliers"]["count"] == 0 and len(report["splits"]["found"]) == 2


def test_crash_without_volume_is_an_outlier_not_a_split(tmp_path):
    # the price falls 60% and stays there, volume does not follow: no split, an outlier
    md = random_market(n_days=80, n_inst=3, seed=5)
    df = unadjust(md, {})
    crash = (df["instrument"] == "S002") & (pd.to_datetime(df["date"]) >= md.calendar[40])
    for f in ("open", "high", "low", "close"):
        df.loc[crash, f] *= 0.4
    df.to_csv(tmp_path / "crash.csv", index=False)
    got = TableDataset(tmp_path / "crash.csv", adjust="detected").load()
    assert got.findings["splits"]["found"] == []
    out = data_report(got)["outliers"]
    assert out["count"] == 1 and out["first"][0]["instrument"] == "S002"


def test_factor_mode_and_bad_adjust(tmp_path):
    md = random_market(n_days=40, n_inst=2)
    df = long_table(md)
    df["factor"] = 2.0
    df.to_csv(tmp_path / "f.csv", index=False)
    got = TableDataset(tmp_path / "f.csv", adjust="factor").load()
    np.testing.assert_allclose(got.fields["close"], md.fields["close"] * 2)
    np.testing.assert_allclose(got.fields["volume"], md.fields["volume"] / 2)
    with pytest.raises(ConfigError, match=r"dataset\.adjust='guess'.*none, detected, factor"):
        TableDataset(tmp_path / "f.csv", adjust="guess")
    long_table(md).to_csv(tmp_path / "nofactor.csv", index=False)
    with pytest.raises(ConfigError, match=r"dataset\.adjust=factor.*no factor column"):
        TableDataset(tmp_path / "nofactor.csv", adjust="factor").load()


# --- calendar gaps --------------------------------------------------------------------------------------------------


def test_calendar_gaps_reported_and_missing_mode(tmp_path):
    md = random_market(n_days=60, n_inst=3, seed=1)
    df = long_table(md)
    lost = md.calendar[30:33]  # three consecutive weekdays lost by the data
    holiday = md.calendar[10]  # one missing weekday: a holiday, not a gap
    df = df[~pd.to_datetime(df["date"]).isin([*lost, holiday])]
    df.to_csv(tmp_path / "gaps.csv", index=False)
    kept = TableDataset(tmp_path / "gaps.csv").load()
    gaps = kept.findings["calendar_gaps"]
    assert gaps["count"] == 1 and gaps["missing_weekdays"] == 3 and gaps["single_missing_weekdays"] == 1
    assert gaps["longest"]["after"] == str(md.calendar[29].date())
    note = [n for n in kept.notes if n.startswith("calendar:")]
    assert len(note) == 1 and "longest 3" in note[0] and "dataset.calendar_gaps=missing" in note[0]
    assert len(kept.calendar) == 56
    after = kept.calendar.get_loc(md.calendar[33])
    assert np.isfinite(kept.fields["change"][after]).all()  # bridged: a three-day return as one

    missing = TableDataset(tmp_path / "gaps.csv", calendar_gaps="missing").load()
    g = missing.calendar.get_loc(lost[0])  # the holiday stays out: 29 here
    assert len(missing.calendar) == 59 and missing.calendar[g : g + 3].equals(lost)
    assert np.isnan(missing.fields["close"][g : g + 3]).all() and np.isnan(missing.fields["change"][g + 3]).all()
    from qframe.core.features import label

    y = label(missing)  # close(t+2) / close(t+1) - 1: NaN whenever t+1 or t+2 falls in the gap
    assert np.isnan(y[g - 2 : g + 2]).all() and np.isfinite(y[g - 3]).all() and np.isfinite(y[g + 3]).all()
    # the added days are not suspensions
    assert data_report(missing)["suspended"]["bars"] == 0
    with pytest.raises(ConfigError, match=r"dataset\.calendar_gaps='drop'.*keep, missing"):
        TableDataset(tmp_path / "gaps.csv", calendar_gaps="drop")


# --- the report: a run records it, `qframe data check` prints it ---------------------------------------------------


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """A long table with capitalised columns and YYYYMMDD dates, a split, and an index file (Date, Close)."""
    root = tmp_path_factory.mktemp("user")
    md = random_market(n_days=320, n_inst=30, seed=7)
    df = unadjust(md, {2: (200, 2.0)})
    df["date"] = df["date"].str.replace("-", "").astype(int)
    df.columns = [c.capitalize() for c in df.columns]
    df.to_csv(root / "prices.csv", index=False)
    pd.DataFrame({"Date": md.calendar.strftime("%Y%m%d").astype(int), "Close": md.benchmark.to_numpy()}).to_csv(
        root / "index.csv", index=False
    )
    return root, md


def test_a_run_records_data_report_json(user_files, tmp_path):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from qframe.app import conf_dir
    from qframe.core.workflow import run_workflow

    root, md = user_files
    overrides = [
        "dataset=csv",
        f"dataset.path={root / 'prices.csv'}",
        f"dataset.benchmark_path={root / 'index.csv'}",
        "dataset.adjust=detected",
        "model=linear",
        "strategy.topk=5",
        "strategy.n_drop=1",
        "recording.plots=false",
        f"workdir={tmp_path}",
    ]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    result = run_workflow(cfg)
    path = Path(result.artifact_uri.removeprefix("file://")) / "data_report.json"
    report = json.loads(path.read_text())
    assert report["instruments"] == 30 and report["dates"]["count"] == 320
    assert report["dates"]["first"] == str(md.calendar[0].date())
    assert [(s["instrument"], s["ratio"]) for s in report["splits"]["found"]] == [("S002", "2:1")]
    assert report["adjust"] == "detected" and report["benchmark"]["value_column"] == "Close"
    assert "market_rules" in report and report["columns"]["volume"] == "Volume"
    assert report == result.settings["data_report"]


def test_qframe_data_check_prints_the_report(user_files):
    root, md = user_files
    args = [QFRAME, "data", "check", "dataset=csv", f"dataset.path={root / 'prices.csv'}"]
    out = subprocess.run(args + [f"dataset.benchmark_path={root / 'index.csv'}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"data: 30 instruments, 320 days {md.calendar[0].date()}..{md.calendar[-1].date()}" in out.stdout
    assert "1 likely split(s), adjust=none" in out.stdout and "benchmark: index" in out.stdout
    assert "WARNING: 1 likely unadjusted split(s)" in out.stdout and "S002" in out.stdout
    js = subprocess.run(args + ["dataset.adjust=detected", "--json"], capture_output=True, text=True)
    assert js.returncode == 0, js.stderr
    assert json.loads(js.stdout)["splits"]["found"][0]["instrument"] == "S002"
    bad = subprocess.run(args + ["dataset.adjust=guess"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("qframe: error: dataset.adjust='guess'")


def test_an_ambiguous_date_column_from_the_command_line(tmp_path):
    rows = "date,instrument,open,high,low,close,volume\n03/04/2009,A,1,1,1,1,9\n05/06/2009,A,1,1,1,1,9\n"
    (tmp_path / "amb.csv").write_text(rows)
    args = [QFRAME, "data", "check", "dataset=csv", f"dataset.path={tmp_path / 'amb.csv'}"]
    bad = subprocess.run(args, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "'03/04/2009'" in bad.stderr and "dataset.date_format='%d/%m/%Y'" in bad.stderr
    ok = subprocess.run([*args, "dataset.date_format='%d/%m/%Y'"], capture_output=True, text=True)
    assert ok.returncode == 0 and "2 days 2009-04-03..2009-06-05" in ok.stdout, ok.stderr
