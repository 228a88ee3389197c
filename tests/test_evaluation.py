"""Signal analysis (IC / Rank IC) and risk analysis against Qlib 0.9.7's answers on the qlib_small fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qframe.core.errors import ConfigError
from qframe.core.evaluation import mean_daily_ic, risk_analysis, risk_report, signal_analysis

FIXTURE = Path(__file__).parent / "fixtures" / "qlib_small"


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((FIXTURE / "qlib_reference.json").read_text())


def _long(df: pd.DataFrame, column: str) -> pd.Series:
    return df.rename(columns={"date": "datetime"}).set_index(["datetime", "instrument"])[column]


@pytest.fixture(scope="module")
def pred() -> pd.Series:
    return _long(pd.read_parquet(FIXTURE / "pred.parquet"), "score")


@pytest.fixture(scope="module")
def label() -> pd.Series:
    return _long(pd.read_parquet(FIXTURE / "alpha158.parquet", columns=["instrument", "date", "LABEL0"]), "LABEL0")


def test_daily_ic_matches_qlib(pred, label):
    daily, _ = signal_analysis(pred, label)
    expected = pd.read_parquet(FIXTURE / "ic.parquet").set_index("date")
    assert list(daily.columns) == ["IC", "RankIC"]
    assert daily.index.name == "datetime"
    np.testing.assert_array_equal(daily.index.to_numpy(), expected.index.to_numpy())
    np.testing.assert_allclose(daily["IC"].to_numpy(), expected["IC"].to_numpy(), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(daily["RankIC"].to_numpy(), expected["RankIC"].to_numpy(), rtol=1e-9, atol=1e-14)


def test_ic_summary_matches_qlib(pred, label, reference):
    _, summary = signal_analysis(pred, label)
    assert set(summary) == {"IC", "ICIR", "Rank IC", "Rank ICIR"}
    for key, want in reference["ic"].items():
        assert summary[key] == pytest.approx(want, rel=1e-9), key


def test_signal_analysis_pandas_corr_semantics():
    # ties, missing values and a date with a single valid pair: pandas' Series.corr per date is the reference
    rng = np.random.default_rng(3)
    dates = pd.date_range("2021-01-01", periods=4)
    idx = pd.MultiIndex.from_product([dates, [f"I{i}" for i in range(30)]], names=["datetime", "instrument"])
    pred = pd.Series(rng.integers(0, 5, len(idx)).astype(float), index=idx)  # many ties
    label = pd.Series(rng.normal(size=len(idx)), index=idx)
    pred.iloc[::7] = np.nan
    label.iloc[3::11] = np.nan
    label.loc[dates[3]] = np.nan
    label.loc[(dates[3], "I0")] = 1.0  # one valid pair on the last date -> NaN
    daily, summary = signal_analysis(pred, label.iloc[5:])  # label lacks a few rows entirely
    df = pd.DataFrame({"pred": pred, "label": label.iloc[5:]})
    for date, g in df.groupby(level="datetime"):
        want_ic = g["pred"].corr(g["label"])
        want_ric = g["pred"].corr(g["label"], method="spearman")
        np.testing.assert_allclose(daily.loc[date, "IC"], want_ic, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(daily.loc[date, "RankIC"], want_ric, rtol=1e-12, atol=1e-15)
    assert np.isnan(daily.loc[dates[3], "IC"])
    assert summary["IC"] == pytest.approx(daily["IC"].mean(), rel=1e-15)


def test_risk_report_matches_qlib(reference):
    report = pd.read_parquet(FIXTURE / "backtest_report.parquet").set_index("date")
    got = risk_report(report, N=238, mode="sum")
    assert set(got) == {"benchmark", "excess_return_without_cost", "excess_return_with_cost"}
    for key, want in reference["risk"].items():
        block, metric = key.split(".")
        assert got[block][metric] == pytest.approx(want, rel=1e-12), key


def test_risk_analysis_sum_definitions():
    r = pd.Series([0.01, -0.02, 0.03, -0.04, 0.01])
    got = risk_analysis(r, N=10, mode="sum")
    assert got["mean"] == pytest.approx(r.mean())
    assert got["std"] == pytest.approx(r.std(ddof=1))
    assert got["annualized_return"] == pytest.approx(r.mean() * 10)
    assert got["information_ratio"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(10))
    # summed curve 0.01, -0.01, 0.02, -0.02, -0.01: the deepest fall is from the 0.02 peak to -0.02
    assert got["max_drawdown"] == pytest.approx(-0.04)


def test_risk_analysis_product_definitions():
    r = pd.Series([0.1, -0.5, 0.2])
    got = risk_analysis(r, N=6, mode="product")
    growth = 1.1 * 0.5 * 1.2
    assert got["mean"] == pytest.approx(growth ** (1 / 3) - 1)
    assert got["std"] == pytest.approx(np.log1p(r).std(ddof=1))
    assert got["annualized_return"] == pytest.approx(growth**2 - 1)
    assert got["max_drawdown"] == pytest.approx(-0.5)  # 1.1 -> 0.55
    assert got["information_ratio"] == pytest.approx(got["mean"] / got["std"] * np.sqrt(6))


def test_risk_analysis_bad_mode():
    with pytest.raises(ConfigError, match="sum.*product"):
        risk_analysis(pd.Series([0.01, 0.02]), mode="compound")


def test_grouped_rank_is_pandas_average_rank():
    from qframe.core.evaluation import _grouped_rank

    rng = np.random.default_rng(7)
    for n in (0, 1, 2, 17, 300):
        codes = rng.integers(0, 6, n)
        values = np.round(rng.normal(size=n), 1)  # many ties
        expected = pd.Series(values).groupby(codes).rank(method="average").to_numpy()
        np.testing.assert_array_equal(_grouped_rank(values, codes), expected)


def test_mean_daily_ic_is_the_mean_of_signal_analysis_daily_ic():
    # arrays with day codes (a model's validation) give the IC the test segment is judged by
    rng = np.random.default_rng(5)
    day = np.repeat([3, 7, 8, 12, 20], 40)
    pred = rng.normal(size=len(day))
    label = 0.3 * pred + rng.normal(size=len(day))
    pred[::9] = np.nan
    label[5::13] = np.inf  # not finite: dropped like NaN
    label[day == 8] = 1.0  # a day without spread has no IC
    label[day == 12] = np.nan
    label[np.flatnonzero(day == 12)[0]] = 0.5  # one valid pair: no IC either
    dates = pd.bdate_range("2021-01-01", periods=21)[day]
    idx = pd.MultiIndex.from_arrays([dates, np.tile(np.arange(40), 5)], names=["datetime", "instrument"])
    daily, _ = signal_analysis(pd.Series(pred, idx), pd.Series(np.where(np.isinf(label), np.nan, label), idx))
    assert daily["IC"].notna().sum() == 3
    assert mean_daily_ic(pred, label, day) == pytest.approx(daily["IC"].mean(), rel=1e-12)
    assert mean_daily_ic(pred, label, None) == pytest.approx(  # one cross-section
        np.corrcoef(pred[np.isfinite(pred + label)], label[np.isfinite(pred + label)])[0, 1], rel=1e-12
    )
    assert np.isnan(mean_daily_ic(pred[day == 8], label[day == 8], day[day == 8]))
    assert np.isnan(mean_daily_ic(pred[:0], label[:0], day[:0]))


def test_a_prediction_without_spread_is_constant_relative_to_its_size():
    # LightGBM without a split predicts its base score up to rounding (spreads ~1e-25): constant, though not exactly;
    # so is a spread of 1e-9 on values of 0.5 (above any absolute floor: the check is relative); a tiny but real
    # ranking (a spread of 10 % on values that are small themselves) is not
    from qframe.core.evaluation import cross_sectional_spread, is_constant

    rng = np.random.default_rng(0)
    idx = pd.MultiIndex.from_product([pd.bdate_range("2021-01-01", periods=30), range(40)])
    cases = ((7.4e-11, 1e-25, True), (0.5, 1e-9, True), (7.4e-11, 0.0, True), (1e-9, 1e-10, False), (0.0, 0.02, False))
    for base, jitter, constant in cases:
        spread, scale = cross_sectional_spread(pd.Series(base + jitter * rng.normal(size=len(idx)), idx))
        assert is_constant(spread, scale) is constant, (base, jitter, spread, scale)
        assert spread > 0 or not jitter, (base, jitter)  # not exactly zero, yet constant


def test_run_plots_name_both_axes():
    from qframe.core.plots import ic_figure, returns_figure

    dates = pd.bdate_range("2021-01-01", periods=30)
    report = pd.DataFrame({"return": 0.001, "bench": 0.0005, "cost": 0.0001}, index=dates)
    daily_ic = pd.DataFrame({"IC": 0.05, "RankIC": 0.04}, index=dates)
    for mode, how in (("sum", "summed"), ("product", "compounded")):
        plt, fig, ax = returns_figure(report, mode)
        assert ax.get_ylabel() == f"cumulative return ({how} daily returns)" and ax.get_xlabel() == "date"
        plt.close(fig)
    plt, fig, ax = ic_figure(daily_ic)
    assert ax.get_ylabel() == "correlation with the label" and ax.get_xlabel() == "date"
    plt.close(fig)
