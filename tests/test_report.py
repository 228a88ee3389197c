"""The run report (report.html and its figures): numbers against hand computations and the run's own metrics, a
self-contained page, ``qframe runs report`` for recorded runs, and a real headless Chromium drawing it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cli import qframe
from test_plugins import compose

from qframe.core.evaluation import risk_analysis
from qframe.core.tearsheet import analysis as an

# 60 names x 500 days, ridge: a run in about a second once the features are cached
MARKET = [
    "dataset.n_instruments=60",
    "dataset.n_days=500",
    "strategy.topk=5",
    "strategy.n_drop=1",
    "model=linear",
    "evaluation.controls.random=4",
    "recording.plots=true",
]

# ------------------------------------------------------------------------------------ hand computations


def test_quantile_returns_are_the_mean_forward_return_of_each_score_group():
    """10 names cut into 5 groups of 2 by score; a name without a forward return is left out of the ranking."""
    dates = pd.bdate_range("2021-01-04", periods=2)
    scores = pd.DataFrame([np.arange(10.0), np.arange(10.0)[::-1]], index=dates)
    fwd = pd.DataFrame([np.arange(10.0) / 100, np.arange(10.0) / 100], index=dates)
    fwd.iloc[1, 9] = np.nan  # day 2: 9 names left; group floor((rank - 1) * 5 / 9): sizes 2, 2, 2, 2, 1
    q = an.quantile_returns(scores, fwd, 5)
    np.testing.assert_allclose(q.iloc[0].to_numpy(), [0.005, 0.025, 0.045, 0.065, 0.085])
    # day 2: scores descend, so the lowest scores are names 8, 7, ... (name 9 has no return); the top group is name 0
    np.testing.assert_allclose(q.iloc[1].to_numpy(), [0.075, 0.055, 0.035, 0.015, 0.0], atol=1e-15)
    s = an.quantile_summary(q)
    assert s.loc["long-short", "mean"] == pytest.approx(((0.085 - 0.005) + (0.0 - 0.075)) / 2)
    assert s.loc[1, "stderr"] == pytest.approx(np.std([0.005, 0.075], ddof=1) / np.sqrt(2))


def test_ic_decay_correlates_the_score_with_each_horizons_forward_return():
    """Forward return at h: close(t+h+1) / close(t+1) - 1 (the label's convention), IC = mean daily Pearson."""
    rng = np.random.default_rng(3)
    cal = pd.bdate_range("2021-01-04", periods=30)
    close = pd.DataFrame(np.exp(np.cumsum(rng.normal(0, 0.02, (30, 6)), axis=0)), index=cal)
    close.iloc[5, 2] = np.nan  # a suspension: instrument 2 has no forward return on the days that need day 5
    signal = pd.DataFrame(rng.normal(size=(5, 6)), index=cal[:5])
    signal.iloc[1, 0] = np.nan  # nor a score on day 1
    fwd = an.forward_returns(close, pd.DatetimeIndex(signal.index), horizons=(1, 3))
    c = close.to_numpy()
    assert fwd[3].iloc[1, 4] == pytest.approx(c[1 + 3 + 1, 4] / c[1 + 1, 4] - 1)
    assert np.isnan(fwd[1].iloc[4, 2]) and np.isnan(fwd[3].iloc[1, 2]) and np.isfinite(fwd[1].iloc[1, 2])
    decay = an.ic_decay(signal, fwd)
    for h in (1, 3):
        by_hand = {
            method: np.mean([signal.iloc[t].corr(pd.Series(c[t + h + 1] / c[t + 1] - 1), method) for t in range(5)])
            for method in ("pearson", "spearman")
        }
        assert decay.loc[h, "IC"] == pytest.approx(by_hand["pearson"], abs=1e-12)
        assert decay.loc[h, "RankIC"] == pytest.approx(by_hand["spearman"], abs=1e-12)
        daily = an.daily_ic(signal, fwd[h])  # the one-horizon path agrees
        assert daily["RankIC"].mean() == pytest.approx(by_hand["spearman"], abs=1e-12)
    # past the calendar's end there is no forward return: the 1-day one needs the closes of t+1 and t+2
    late = an.forward_returns(close, pd.DatetimeIndex(cal[-3:]), horizons=(1,))[1]
    assert late.iloc[0].notna().all() and late.iloc[1:].isna().all().all()


def test_monthly_table_sums_or_compounds_each_calendar_month():
    dates = pd.to_datetime(["2021-01-05", "2021-01-20", "2021-02-03", "2022-03-01", "2022-03-02"])
    r = pd.Series([0.01, 0.02, -0.01, 0.03, 0.01], index=dates)
    summed = an.monthly_table(r, "sum")
    assert list(summed.columns) == list(range(1, 13)) and list(summed.index) == [2021, 2022]
    assert summed.loc[2021, 1] == pytest.approx(0.03) and summed.loc[2021, 2] == pytest.approx(-0.01)
    assert summed.loc[2022, 3] == pytest.approx(0.04) and np.isnan(summed.loc[2021, 3])
    assert an.monthly_table(r, "product").loc[2021, 1] == pytest.approx(1.01 * 1.02 - 1)
    assert an.monthly_mean(r).to_dict() == pytest.approx({"2021-01": 0.015, "2021-02": -0.01, "2022-03": 0.02})


@pytest.mark.parametrize("mode", ["sum", "product"])
def test_drawdown_and_rolling_ir_agree_with_risk_analysis(mode):
    r = pd.Series(np.random.default_rng(1).normal(0.0005, 0.01, 120), index=pd.bdate_range("2021-01-04", periods=120))
    assert an.drawdown(r, mode).min() == pytest.approx(risk_analysis(r, N=252, mode=mode)["max_drawdown"], abs=1e-15)
    last = an.rolling_ir(r, 252, window=60).iloc[-1]
    assert last == pytest.approx(risk_analysis(r.iloc[-60:], N=252, mode="sum")["information_ratio"], rel=1e-12)
    assert an.rolling_ir(r, 252, window=60).iloc[:59].isna().all()


def test_signal_autocorrelation_is_the_rank_correlation_with_the_day_before():
    rng = np.random.default_rng(2)
    signal = pd.DataFrame(rng.normal(size=(4, 8)), index=pd.bdate_range("2021-01-04", periods=4))
    signal.iloc[2, 3] = np.nan
    auto = an.signal_autocorrelation(signal)
    assert np.isnan(auto.iloc[0])
    for t in (1, 2, 3):
        assert auto.iloc[t] == pytest.approx(signal.iloc[t].corr(signal.iloc[t - 1], method="spearman"), abs=1e-12)


# ------------------------------------------------------------------------------------------ a real run


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two finished runs (ridge and its lightgbm-free twin with another seed) in one store, with their reports."""
    from qframe.core.workflow import run_workflow

    workdir = tmp_path_factory.mktemp("report")
    first = run_workflow(compose(workdir, *MARKET))
    second = run_workflow(compose(workdir, *MARKET, "strategy.topk=8", "run_name=topk8"))
    return workdir, first, second


def _artifacts(result) -> Path:
    from urllib.parse import urlparse

    return Path(urlparse(result.artifact_uri).path)


def test_a_run_records_a_self_contained_report_and_its_figures(recorded):
    _, result, _ = recorded
    out = _artifacts(result)
    page = (out / "report.html").read_text()
    assert (out / "cumulative_return.png").is_file() and (out / "ic.png").is_file()
    figures = {p.stem for p in (out / "figures").glob("*.png")}
    assert {"ic_histogram", "ic_by_month", "ic_decay", "signal_autocorrelation", "quantile_returns"} <= figures
    assert {"quantile_mean", "drawdown", "monthly_excess", "rolling_ir", "turnover_cost", "holdings"} <= figures
    # every figure is inline; nothing is fetched from anywhere
    assert page.count('src="data:image/png;base64,') == len(figures) + 2
    assert not re.search(r"(src|href)\s*=\s*[\"'](?!data:)", page)
    assert "http://" not in page and "https://" not in page and "@import" not in page
    for header in ("model", "dataset", "test segment", "market rules"):
        assert f"<b>{header}</b>" in page
    assert "random-score runs" in page  # the controls' summary


def test_report_numbers_equal_the_runs_metrics(recorded):
    """The page's tables show the recorded metrics; its own analysis reproduces IC, IR and max drawdown."""
    from qframe.core.tearsheet import analyse
    from qframe.core.tearsheet.model import max_drawdown
    from qframe.experiments.report_cli import recorded_inputs
    from qframe.experiments.store import RunStore

    workdir, result, _ = recorded
    page = (_artifacts(result) / "report.html").read_text()
    m = result.metrics
    for key in ("IC", "ICIR", "Rank IC", "excess_return_with_cost.information_ratio",
                "excess_return_with_cost.max_drawdown", "benchmark.annualized_return"):  # fmt: skip
        assert f"<td class=n>{m[key]:.4f}</td>" in page, key
    store = RunStore.open(workdir=workdir)
    a = analyse(recorded_inputs(store, store.resolve(result.run_id)))
    assert max_drawdown(a) == pytest.approx(m["excess_return_with_cost.max_drawdown"], abs=1e-12)
    # label horizon 1: the 1-day forward return is the label (which the handler stores as float32, hence the
    # tolerance), so the decay's first point is the run's IC
    assert a.decay.loc[1, "IC"] == pytest.approx(m["IC"], abs=1e-6)
    assert a.decay.loc[1, "RankIC"] == pytest.approx(m["Rank IC"], abs=1e-6)
    assert abs(a.decay.loc[1, "IC"] - a.decay.loc[2, "IC"]) > 1e-4  # and another horizon is another number
    ir = an.rolling_ir(a.excess, result.settings["annualization"], window=len(a.excess)).iloc[-1]
    assert ir == pytest.approx(m["excess_return_with_cost.information_ratio"], rel=1e-9)
    # topk=5, n_drop=1: five names most days, one more while a sale waits on a price limit (Qlib's behaviour)
    held = a.inputs.report["holdings"]
    assert held.iloc[0] == 0 and held.median() == 5 and held.max() <= 6


def test_runs_report_writes_pages_and_a_comparison(recorded, tmp_path):
    workdir, first, second = recorded
    done = qframe(["runs", "report", first.run_id, "topk8", "--workdir", str(workdir), "--out", "out"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for r in (first, second):
        page = tmp_path / "out" / r.run_id[:8] / "report.html"
        assert page.is_file() and str(page.relative_to(tmp_path)) in done.stdout
        assert (page.parent / "figures" / "ic_decay.png").is_file()
    # the recorded run's page shows what the run's own page shows
    live = (_artifacts(first) / "report.html").read_text()
    again = (tmp_path / "out" / first.run_id[:8] / "report.html").read_text()
    section = re.compile(r"<h3>IC decay</h3>.*?</table>.*?</table>", re.S)
    assert section.search(again).group(0) == section.search(live).group(0)
    comparison = (tmp_path / "out" / "comparison.html").read_text()
    assert first.run_id[:8] in comparison and "topk8" in comparison
    assert f"{second.metrics['excess_return_with_cost.information_ratio']:.4f}" in comparison
    assert comparison.count("data:image/png;base64,") == 6 and "https://" not in comparison

    bad = qframe(["runs", "report", "no-such-run", "--workdir", str(workdir)], tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("qframe: error:") and "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------------------ a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install -y --no-install-recommends chromium)"
)


def _chromium(*args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@needs_chromium
def test_the_report_renders_in_headless_chromium(recorded, tmp_path):
    """Chromium loads the page with no script error, every figure decodes, and the screenshot shows them."""
    from PIL import Image

    _, result, _ = recorded
    url = (_artifacts(result) / "report.html").as_uri()
    n = (_artifacts(result) / "report.html").read_text().count('class="figure"')
    dom = _chromium("--dump-dom", url)
    assert f'data-figures="{n}/{n}"' in dom.stdout, dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr and "CONSOLE" not in dom.stderr.replace("INFO:CONSOLE", ""), dom.stderr
    shot = tmp_path / "shot.png"
    _chromium("--window-size=1400,2400", f"--screenshot={shot}", url)
    image = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    # figures drew: lines in matplotlib's colours (tab:blue, tab:orange) cover part of the page
    blue = (np.abs(image - [31, 119, 180]).sum(axis=2) < 60).mean()
    orange = (np.abs(image - [255, 127, 14]).sum(axis=2) < 60).mean()
    assert blue > 0.002 and orange > 0.0005, (blue, orange)

    # the check can fail: a page whose figure does not decode reports it
    broken = tmp_path / "broken.html"
    broken.write_text(
        (_artifacts(result) / "report.html").read_text().replace("data:image/png;base64,", "data:image/png;base64,x", 1)
    )
    assert f'data-figures="{n - 1}/{n}"' in _chromium("--dump-dom", broken.as_uri()).stdout


def test_row_ranks_equal_pandas_average_ranks_with_ties_and_gaps():
    rng = np.random.default_rng(0)
    for trial in range(20):
        a = rng.integers(0, 5, (6, 9)).astype(float) if trial % 2 else rng.normal(size=(6, 9))
        mask = (rng.random((6, 9)) > 0.3) & (rng.random((6, 9)) > 0.1)
        expected = pd.DataFrame(np.where(mask, a, np.nan)).rank(axis=1, method="average").to_numpy()
        np.testing.assert_array_equal(an._row_rank(a, mask), expected)
