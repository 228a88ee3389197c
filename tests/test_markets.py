"""Market rules (``market=auto|cn|us|none``): limits, lots and annualisation, chosen by the dataset or explicitly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import random_market
from test_cli import qframe, runs_in
from test_plugins import ROOT, compose

from qframe.core.data import MarketData
from qframe.core.errors import ConfigError
from qframe.core.markets import MARKETS, resolve_market
from qframe.core.workflow import run_workflow
from qframe.plugins.datasets.qlib_bin import QlibBinDataset
from qframe.plugins.datasets.synthetic import SyntheticDataset
from qframe.plugins.datasets.tables import TableDataset
from qframe.plugins.strategies.topk_dropout import TopkDropoutStrategy


def limit_up_market() -> tuple[MarketData, pd.Series]:
    """A closes +10 % on day 2 (a limit-up day in cn), then stays flat at 11; B and C stay at 10. A scores best."""
    cal = pd.bdate_range("2022-01-03", periods=5, name="datetime")
    a = np.array([10.0, 10.0, 11.0, 11.0, 11.0])
    close = np.column_stack([a, np.full(5, 10.0), np.full(5, 10.0)])
    fields = {"close": close, "factor": np.ones_like(close)}
    market = MarketData(cal, pd.Index(["A", "B", "C"]), fields, benchmark=pd.Series(100.0, index=cal))
    index = pd.MultiIndex.from_product([cal, market.instruments], names=["datetime", "instrument"])
    scores = pd.Series(np.tile([3.0, 2.0, 1.0], 5), index=index)
    return market, scores


def held_a(rules_name: str, start_day: int, account: float = 1e5) -> pd.Series:
    market, scores = limit_up_market()
    strategy = TopkDropoutStrategy(topk=1, n_drop=1, account=account)
    strategy.use_market_rules(MARKETS[rules_name])
    strategy.backtest(scores, market, start=market.calendar[start_day], end=market.calendar[-1])
    return strategy.last_positions["A"]


def test_cn_refuses_a_limit_up_buy_us_and_none_do_not():
    # window day 0 is the +10 % day: cn may not buy A there (it buys on the next day), us and none do
    cn, us, none = (held_a(m, start_day=2) for m in ("cn", "us", "none"))
    assert cn.iloc[0] == 0 and cn.iloc[1] > 0
    assert us.iloc[0] > 0 and none.iloc[0] > 0


def test_lots_cn_100_shares_us_whole_shares_none_fractional():
    # a flat day at 11: 1e5 * 0.95 / 11 = 8636.36 shares wanted
    cn, us, none = (held_a(m, start_day=3).iloc[0] for m in ("cn", "us", "none"))
    assert cn == 8600
    assert us == 8636
    assert none == pytest.approx(1e5 * 0.95 / 11)


def test_explicit_strategy_settings_win_over_the_market():
    market, scores = limit_up_market()
    strategy = TopkDropoutStrategy(topk=1, n_drop=1, account=1e5, limit_threshold=None, trade_unit=10)
    applied = strategy.use_market_rules(MARKETS["cn"])
    assert (applied.limit_threshold, applied.trade_unit, applied.annualization) == (None, 10, 238)
    strategy.backtest(scores, market, start=market.calendar[2], end=market.calendar[-1])
    assert strategy.last_positions["A"].iloc[0] == 8630  # bought on the +10 % day, in lots of 10 (95000 / 11)
    # without rules given (plain Python use) the strategy trades by Qlib's own: the limit blocks A
    plain = TopkDropoutStrategy(topk=1, n_drop=1)
    plain.backtest(scores, market, start=market.calendar[2], end=market.calendar[-1])
    assert plain.last_positions["A"].iloc[0] == 0


def test_auto_resolves_the_datasets_region(tmp_path):
    assert resolve_market({"name": "auto"}, SyntheticDataset(), "synthetic").rules.name == "cn"
    table = tmp_path / "prices.csv"
    table.write_text("date,instrument,open,high,low,close,volume\n")
    choice = resolve_market({"name": "auto"}, TableDataset(path=str(table)), "csv")
    assert choice.rules.name == "none" and choice.reason == "default for a table; set market=cn|us|none"
    assert resolve_market({"name": "auto"}, QlibBinDataset(str(tmp_path / "us_data")), "qlib").rules.name == "us"
    assert resolve_market(None, QlibBinDataset(str(tmp_path / "cn_data_1d")), "qlib").rules.name == "cn"
    us = resolve_market({"name": "auto"}, QlibBinDataset(str(tmp_path / "cn_data"), region="us"), "qlib")
    assert us.rules.name == "us" and us.reason.startswith("dataset.region=us")
    other = resolve_market({"name": "auto"}, QlibBinDataset(str(tmp_path / "mine")), "qlib")
    assert other.rules.name == "cn" and "Qlib's default region" in other.reason
    # an explicit choice wins over the dataset's region
    assert resolve_market({"name": "us"}, SyntheticDataset(), "synthetic").rules.name == "us"
    with pytest.raises(ConfigError, match="dataset.region='tw'.*valid options: cn, us, null"):
        QlibBinDataset(str(tmp_path), region="tw")
    with pytest.raises(ConfigError, match="unknown market 'xx'; valid options: auto, cn, us, none"):
        resolve_market({"name": "xx"}, SyntheticDataset(), "synthetic")
    with pytest.raises(ConfigError, match="market.limit_threshold is not a market setting"):
        resolve_market({"name": "cn", "limit_threshold": 0.1}, SyntheticDataset(), "synthetic")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("markets-workdir")


def test_composed_defaults_follow_the_market_and_explicit_settings_win(workdir):
    from mlflow.tracking import MlflowClient

    default = run_workflow(compose(workdir))
    assert default.settings["market"] | {"reason": None} == {
        "name": "cn",
        "limit_threshold": 0.095,
        "trade_unit": 100,
        "annualization": 238,
        "applied_by_strategy": True,
        "reason": None,
        "explicit": [],
        "description": "price limits ±9.5 %, lots of 100 shares, 238 periods a year",
    }
    assert default.settings["annualization"] == 238

    explicit = run_workflow(
        compose(workdir, "market=us", "strategy.limit_threshold=0.2", "evaluation.annualization=250")
    )
    rules = explicit.settings["market"]
    assert (rules["name"], rules["limit_threshold"], rules["trade_unit"], rules["annualization"]) == ("us", 0.2, 1, 250)
    assert rules["explicit"] == ["strategy.limit_threshold=0.2", "evaluation.annualization=250"]
    assert explicit.settings["annualization"] == 250
    # the same predictions annualised with 250 instead of 238 periods: the annualised return scales with them
    a, b = (r.metrics["benchmark.annualized_return"] for r in (default, explicit))
    assert b == pytest.approx(a * 250 / 238)

    no_limit = run_workflow(compose(workdir, "market=cn", "strategy.limit_threshold=null", "strategy.trade_unit=null"))
    rules = no_limit.settings["market"]
    assert (rules["limit_threshold"], rules["trade_unit"], rules["annualization"]) == (None, None, 238)

    run = MlflowClient(explicit.tracking_uri).get_run(explicit.run_id)
    assert {k: v for k, v in run.data.params.items() if k.startswith("market_rules.")} == {
        "market_rules.name": "us",
        "market_rules.limit_threshold": "0.2",
        "market_rules.trade_unit": "1",
        "market_rules.annualization": "250",
    }
    assert run.data.params["market.name"] == "us"
    assert run.data.tags["qframe.market_rules"] == (
        "us — price limits ±20.0 %, whole shares, 250 periods a year (market=us; set explicitly: "
        "strategy.limit_threshold=0.2, evaluation.annualization=250)"
    )


class PlainStrategy:
    """A third-party strategy without use_market_rules: equal weights on the top 3, no limits, no costs."""

    def backtest(self, scores, market, *, start, end):
        cal = market.calendar[(market.calendar >= start) & (market.calendar <= end)]
        close = pd.DataFrame(market.fields["close"], index=market.calendar, columns=market.instruments)
        ret = close.pct_change().shift(-1).reindex(cal)
        top = scores.unstack().reindex(cal).rank(axis=1, ascending=False) <= 3
        daily = (ret.where(top).mean(axis=1)).fillna(0.0)
        return pd.DataFrame({"return": daily, "cost": 0.0, "bench": 0.0}, index=cal)


def test_a_strategy_without_the_hook_keeps_working(workdir):
    cfg = compose(workdir, "market=us")
    cfg["strategy"] = {"_target_": "test_markets.PlainStrategy"}
    result = run_workflow(cfg)
    rules = result.settings["market"]
    assert rules["applied_by_strategy"] is False and rules["annualization"] == 252
    assert rules["limit_threshold"] is None and "takes no market rules" in rules["description"]
    assert np.isfinite(result.metrics["excess_return_without_cost.information_ratio"])


def test_a_table_defaults_to_none_and_says_so(workdir, tmp_path):
    market = random_market(n_days=160, n_inst=12)
    long = market.to_long().reset_index().rename(columns={"datetime": "date"})
    long["date"] = long["date"].dt.strftime("%Y-%m-%d")
    path = tmp_path / "prices.csv"
    long.to_csv(path, index=False)
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from qframe.app import conf_dir

    overrides = ["dataset=csv", f"dataset.path={path}", "strategy.topk=3", "strategy.n_drop=1", "model=linear"]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = OmegaConf.to_container(hydra_compose("config", [*overrides, f"workdir={workdir}"]), resolve=True)
    rules = run_workflow(cfg).settings["market"]
    assert (rules["name"], rules["limit_threshold"], rules["trade_unit"], rules["annualization"]) == (
        "none",
        None,
        None,
        252,
    )
    assert rules["reason"] == "default for a table; set market=cn|us|none"


def test_command_line_prints_the_rules_and_refuses_an_unknown_market(tmp_path):
    small = ["dataset.n_instruments=40", "dataset.n_days=320", "strategy.topk=5", "strategy.n_drop=1", "model=linear"]
    done = qframe([*small, f"workdir={tmp_path}", "market=none"], cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "market rules: none — no price limits, no lot rounding, 252 periods a year (market=none)" in done.stdout
    assert "annualised with 252 periods" in done.stdout
    (run,) = runs_in(tmp_path / "mlflow.db")[1]
    assert run.data.params["market_rules.name"] == "none" and run.data.params["market_rules.trade_unit"] == "None"

    bad = qframe([f"workdir={tmp_path}", "market=nosuch"], cwd=ROOT)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == "qframe: error: unknown market 'nosuch'; valid options: auto, cn, none, us"
    bad = qframe([f"workdir={tmp_path}", "evaluation.annualization=yearly"], cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.count("qframe: error:") == 1 and "Traceback" not in bad.stderr
    assert "evaluation.annualization must be a positive whole number of periods a year or 'market'" in bad.stderr
