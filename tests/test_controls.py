"""Honest controls: random-score and buy-and-hold backtests under the model's own rules, ranked in the summary."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cli import qframe
from test_first_contact import _long_table
from test_plugins import compose

from qframe.core.controls import ControlResult, buy_and_hold_report, control_metric_names, control_settings
from qframe.core.errors import ConfigError
from qframe.core.evaluation import risk_analysis
from qframe.core.plots import returns_figure
from qframe.core.workflow import metric_names, run_workflow
from qframe.plugins.strategies.topk_dropout import TopkDropoutStrategy

# 60 names x 500 days, ridge: ~0.7 s a run once the features are cached
MARKET = ["dataset.n_instruments=60", "dataset.n_days=500", "strategy.topk=5", "strategy.n_drop=1"]


def run(workdir: Path, *overrides: str):
    return run_workflow(compose(workdir, *MARKET, "recording.plots=false", *overrides))


def controls_of(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k.startswith("controls.")}


def test_no_signal_market_is_not_distinguishable_from_random(tmp_path):
    result = run(tmp_path, "dataset.signal_ic=0")
    pct = result.metrics["controls.model_percentile"]
    assert 5 <= pct < 90, pct
    assert result.metrics["controls.random.count"] == 20
    assert any("not distinguishable from random scores" in n for n in result.notes)
    assert any(f"{round(pct)}th percentile of 20 random-score runs" in line for line in result.settings["controls"])


def test_planted_signal_beats_every_random_run(tmp_path):
    result = run(tmp_path, "dataset.signal_ic=0.5")
    m = result.metrics
    assert m["controls.model_percentile"] >= 95
    assert (
        m["excess_return_with_cost.information_ratio"]
        > m["controls.random.excess_return_with_cost.information_ratio.p95"]
    )
    assert not any("not distinguishable" in n for n in result.notes)
    # the random runs pay the same costs: with cost below without, for each summary
    for q in ("median", "p05", "p95"):
        with_cost = m[f"controls.random.excess_return_with_cost.annualized_return.{q}"]
        assert with_cost < m[f"controls.random.excess_return_without_cost.annualized_return.{q}"]


def test_controls_are_deterministic_in_their_seed_and_recorded(tmp_path):
    from mlflow.tracking import MlflowClient

    first = run(tmp_path, "evaluation.controls.random=5")
    again = run(tmp_path, "evaluation.controls.random=5")
    other = run(tmp_path, "evaluation.controls.random=5", "evaluation.controls.seed=7")
    assert controls_of(first.metrics) == controls_of(again.metrics)
    assert (
        first.metrics["controls.random.excess_return_with_cost.information_ratio.median"]
        != (other.metrics["controls.random.excess_return_with_cost.information_ratio.median"])
    )
    names = set(controls_of(first.metrics))
    assert names == set(control_metric_names()) and names <= set(metric_names())
    logged = MlflowClient(first.tracking_uri).get_run(first.run_id).data.metrics
    assert {k: v for k, v in controls_of(logged).items()} == pytest.approx(controls_of(first.metrics))
    assert "time.controls" in logged


def test_controls_off_records_none_and_a_controls_objective_is_refused(tmp_path):
    result = run(tmp_path, "evaluation.controls.enabled=false")
    assert controls_of(result.metrics) == {} and result.settings["controls"] == []
    assert "controls" not in result.timings
    from mlflow.tracking import MlflowClient

    client = MlflowClient(result.tracking_uri)
    assert not controls_of(client.get_run(result.run_id).data.metrics)
    assert "controls.parquet" not in {a.path for a in client.list_artifacts(result.run_id)}
    with pytest.raises(ConfigError, match="evaluation.controls.enabled=true"):
        run(tmp_path, "evaluation.controls.enabled=false", "objective=controls.model_percentile")
    # random=0 keeps buy-and-hold only
    only_bh = run(tmp_path, "evaluation.controls.random=0")
    assert set(controls_of(only_bh.metrics)) == {n for n in control_metric_names() if ".buy_and_hold." in n}


def test_controls_default_off_in_a_sweep_trial():
    assert control_settings({}, in_sweep=False).random == 20
    assert not control_settings({}, in_sweep=True).any
    assert control_settings({"controls": {"enabled": True}}, in_sweep=True).random == 20
    for bad in ({"enabled": "yes"}, {"random": -1}, {"random": True}, {"seeds": 3}):
        with pytest.raises(ConfigError, match="evaluation.controls"):
            control_settings({"controls": bad}, in_sweep=False)


def test_buy_and_hold_buys_the_first_day_universe_once(small_market):
    strategy = TopkDropoutStrategy(topk=3, n_drop=1)
    cal = small_market.calendar[150:]
    report = buy_and_hold_report(strategy, small_market, cal, np.zeros(len(cal)))
    lo = 150
    tradable = small_market.universe[lo] & ~np.isnan(small_market.fields["close"][lo])
    assert report.attrs["bought"] == int(tradable.sum()) > 0
    assert report["cost"].iloc[0] > 0 and (report["cost"].iloc[1:] == 0).all()  # no trade after the first day
    assert (report["total_turnover"].iloc[1:] == report["total_turnover"].iloc[0]).all()
    invested = report["value"].iloc[0] / strategy.account
    assert 0.9 < invested <= strategy.risk_degree + 1e-9  # equal shares of account * risk_degree, rounded down


def test_band_is_drawn_only_from_random_runs(tmp_path, small_market):
    index = pd.bdate_range("2021-01-01", periods=30)
    rng = np.random.default_rng(0)
    daily = pd.DataFrame({f"random.{k}": rng.normal(0, 0.01, 30) for k in range(20)}, index=index)
    report = pd.DataFrame({"return": 0.001, "bench": 0.0, "cost": 0.0001}, index=index)
    band = ControlResult(daily=daily).band("sum")
    cum = daily.cumsum().to_numpy()
    assert np.allclose(band["p05"], np.percentile(cum, 5, axis=1))
    assert (band["p05"] <= band["p95"]).all()
    _, fig, ax = returns_figure(report, "sum", band=band)
    labels = [c.get_label() for c in ax.collections]
    assert any("random scores" in label for label in labels)
    _, fig2, ax2 = returns_figure(report, "sum")
    assert not ax2.collections
    assert ControlResult().band() is None
    assert ControlResult(daily=daily[[]].assign(buy_and_hold=0.0)).band() is None


def test_workflow_records_the_band_data_when_controls_ran(tmp_path):
    from mlflow.tracking import MlflowClient

    result = run(tmp_path, "evaluation.controls.random=4", "recording.plots=true")
    client = MlflowClient(result.tracking_uri)
    local = client.download_artifacts(result.run_id, "controls.parquet", str(tmp_path / "dl"))
    daily = pd.read_parquet(local)
    assert [c for c in daily.columns if c.startswith("random.")] == [f"random.{k}" for k in range(4)]
    assert "buy_and_hold" in daily.columns
    assert "cumulative_return.png" in {a.path for a in client.list_artifacts(result.run_id)}


def test_zero_series_risk_has_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = risk_analysis(pd.Series(np.zeros(50)))
    assert np.isnan(stats["information_ratio"])


def test_benchmarkless_table_says_na_once_without_warnings(tmp_path):
    path = _long_table(tmp_path / "prices.csv")
    proc = qframe(
        ["dataset=csv", f"dataset.path={path}", "model=linear", "strategy.topk=5", "evaluation.controls.random=3"],
        cwd=tmp_path,
        env_extra={"PYTHONWARNINGS": "error::RuntimeWarning"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RuntimeWarning" not in proc.stderr, proc.stderr[-3000:]
    out = proc.stdout
    assert out.count("no benchmark in the data") == 1
    bench_row = next(line for line in out.splitlines() if "benchmark " in line and "│" in line)
    assert bench_row.count("n/a") == 5 and "nan" not in bench_row
    assert "random-score runs" in out


# ---- the random runs at once (backtest_many): the reports of one backtest each, number for number ---------------
def _rough_market():
    """A market with what the engine deals with one name at a time: suspensions, limit moves, a factor."""
    from conftest import random_market

    market = random_market(n_days=160, n_inst=30, seed=3)
    rng = np.random.default_rng(4)
    close = market.fields["close"]
    jumps = rng.random(close.shape) < 0.03  # limit-up and limit-down days
    close[1:][jumps[1:]] = close[:-1][jumps[1:]] * rng.choice([0.89, 1.11], jumps[1:].sum())
    close[rng.random(close.shape) < 0.02] = np.nan  # suspended bars
    market.fields["factor"] = np.full(close.shape, 1.7)
    return market


class _OneByOne:
    """A strategy without backtest_many: the controls take the one-backtest-each path."""

    def __init__(self, strategy):
        self.strategy = strategy

    def backtest(self, *args, **kwargs):
        return self.strategy.backtest(*args, **kwargs)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"n_drop": 0},
        {"hold_thresh": 3, "forbid_all_trade_at_limit": False},
        {"limit_threshold": None, "trade_unit": None},
        {"account": 3e4, "min_cost": 40.0, "risk_degree": 1.0},  # lots round to nothing, the cash runs short
    ],
)
def test_random_runs_at_once_equal_one_backtest_each(settings):
    from qframe.core.controls import ControlSettings, run_controls
    from qframe.core.evaluation import risk_report

    market = _rough_market()
    lo = 40
    t_idx, n_idx = np.nonzero(np.ones((len(market.calendar) - lo, len(market.instruments)), dtype=bool))
    index = pd.MultiIndex.from_arrays(
        [market.calendar[lo + t_idx], market.instruments[n_idx]], names=["datetime", "instrument"]
    )
    values = np.random.default_rng(5).standard_normal(len(index))
    values[np.random.default_rng(6).random(len(index)) < 0.1] = np.nan  # names the model did not score
    scores = pd.Series(values, index=index, name="score")
    window = (market.calendar[lo], market.calendar[-1])
    strategy = TopkDropoutStrategy(**{"topk": 6, "n_drop": 2, **settings})
    many = strategy.backtest_many(index, [values, -values, values[::-1].copy()], market, *window)
    for vals, report in zip([values, -values, values[::-1].copy()], many, strict=True):
        pd.testing.assert_frame_equal(report, strategy.backtest(pd.Series(vals, index=index), market, *window))
    report = strategy.backtest(scores, market, *window)
    risk = risk_report(report)
    controls = ControlSettings(random=6)
    at_once = run_controls(controls, strategy, "topk_dropout", market, scores, report, risk, 252, "sum", window)
    each = run_controls(controls, _OneByOne(strategy), "x", market, scores, report, risk, 252, "sum", window)
    random = [k for k in at_once.metrics if k.startswith("controls.random.")] + ["controls.model_percentile"]
    assert len(random) == 14 and {k: at_once.metrics[k] for k in random} == {k: each.metrics[k] for k in random}
    pd.testing.assert_frame_equal(at_once.daily.filter(like="random."), each.daily.filter(like="random."))
