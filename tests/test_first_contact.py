"""What a new user meets first: commands that work from any directory, one-line errors, honest results.

Every case runs the real ``qframe`` command in a subprocess from a fresh directory without ``workdir=``.
"""

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_cli import SMALL, one_line_error, qframe, runs_in

FIXTURE = Path(__file__).parent / "fixtures" / "qlib_small"
SMALL_LINEAR = [*SMALL, "model=linear"]


def test_plain_grid_with_qframe_home(tmp_path):
    # (from a fresh directory without QFRAME_HOME: the README's own grid command, tests/test_readme.py)
    fresh, home = tmp_path / "project", tmp_path / "home"
    fresh.mkdir()
    proc = qframe(["-m", "model=linear", *SMALL], cwd=fresh, env_extra={"QFRAME_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((home / "multirun").glob("*/*/multirun.yaml"))
    assert len(runs_in(home / "mlflow.db")[1]) == 1
    assert not (fresh / ".qframe").exists()


def test_grid_job_failure_is_one_line(tmp_path):
    # 40 instruments leave ~20 tradable names: the default topk=50 is refused in each job
    proc = qframe(["-m", "model=linear,lightgbm_small", "dataset.n_instruments=40", "dataset.n_days=320"], cwd=tmp_path)
    one_line_error(proc, "strategy.topk=50", "tradable")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["model.learnin_rate=0.1"], ["unknown key model.learnin_rate", "did you mean model.learning_rate?"]),
        (["+model.learnin_rate=0.1"], ["unknown parameter model.learnin_rate", "model.learning_rate"]),
        (["model=linear", "+model.alhpa=1"], ["unknown parameter model.alhpa", "did you mean model.alpha?"]),
        (["strategy.topk_=3"], ["unknown key strategy.topk_", "strategy.topk"]),
        (["model.learning_rate=interval(0.3"], ["cannot parse", "interval(0.3"]),
        (["+model=linear"], ["model=linear"]),
        (["hydra/launcher=nosuch"], ["unknown hydra/launcher 'nosuch'", "basic"]),
    ],
    ids=["typo", "typo-forced", "typo-plain-class", "strategy-typo", "grammar", "plus-group", "hydra-group"],
)
def test_config_mistakes_are_one_line(tmp_path, args, needles):
    one_line_error(qframe(args, cwd=tmp_path), *needles)


def test_sweep_grammar_error_is_one_line(tmp_path):
    proc = qframe(["-m", "hydra/sweeper=hyperopt", "model.learning_rate=interval(0.3"], cwd=tmp_path)
    one_line_error(proc, "cannot parse")


def test_cheap_checks_come_before_the_data(tmp_path):
    # the data file does not exist: an error about a parameter proves nothing was read first
    for bad, needle in (("model.num_leaves=abc", "model.num_leaves"), ("strategy.n_drop=99", "n_drop")):
        proc = qframe(["dataset=csv", "dataset.path=missing.csv", bad], cwd=tmp_path)
        line = one_line_error(proc, needle)
        assert "missing.csv" not in line
    assert not (tmp_path / ".qframe" / "mlflow.db").exists()  # not even a run was started


def test_unknown_plugin_in_load_list_is_named(tmp_path):
    proc = qframe(["plugins"], cwd=tmp_path, env_extra={"QFRAME_LOAD_PLUGINS": "nosuch"})
    assert proc.returncode == 0
    assert "QFRAME_LOAD_PLUGINS names 'nosuch'" in proc.stderr


def _long_table(path: Path, days: int | None = None, drop: tuple[str, ...] = ()) -> Path:
    df = pd.read_parquet(FIXTURE / "ohlcv.parquet")
    if days is not None:
        df = df[df["date"].isin(sorted(df["date"].unique())[:days])]
    df.drop(columns=list(drop)).to_csv(path, index=False)
    return path


def test_constant_prediction_is_refused_and_recorded(tmp_path):
    """Qlib's benchmark penalties on 4,700 training rows: no split, one constant, never printed as a result."""
    args = ["dataset=qlib", f"dataset.provider_uri={FIXTURE / 'qlib_bin'}", "dataset.market=csi300",
            "strategy.topk=5", "strategy.n_drop=1"]  # fmt: skip
    line = one_line_error(qframe(args, cwd=tmp_path), "predicts one constant", "model=lightgbm_small")
    assert "lambda_l1" in line
    client, runs = runs_in(tmp_path / ".qframe" / "mlflow.db")
    (run,) = runs
    assert run.info.status == "FAILED"
    assert run.data.tags["qframe.degenerate"] == "constant prediction"
    assert "IC" not in run.data.metrics
    # (the small-data preset on the same data: the README's dataset=qlib command, tests/test_readme.py)


def test_constant_prediction_fails_its_sweep_trial(tmp_path):
    args = ["-m", "hydra/sweeper=hyperopt", "hydra.sweeper.n_trials=2", "hydra.sweeper.max_failure_rate=1",
            "strategy.topk=choice(4,5)", "dataset=qlib", f"dataset.provider_uri={FIXTURE / 'qlib_bin'}",
            "dataset.market=csi300", "strategy.n_drop=1"]  # fmt: skip
    proc = qframe(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (trials,) = (tmp_path / ".qframe" / "multirun").glob("*/*/trials.csv")
    table = pd.read_csv(trials)
    assert list(table["status"]) == ["failed", "failed"]
    assert table["error"].str.contains("predicts one constant").all()


def test_too_little_data_is_refused_before_any_work(tmp_path):
    path = _long_table(tmp_path / "p30.csv", days=30)
    proc = qframe(["dataset=csv", f"dataset.path={path}", "model=linear", "strategy.topk=5"], cwd=tmp_path)
    line = one_line_error(proc, "30 trading days", "at least 92")
    assert "Warning" not in proc.stderr, proc.stderr
    assert "alpha158" in line
    assert not list((tmp_path / ".qframe" / "cache").glob("*.arrow"))  # no feature was computed


def test_small_table_runs_without_raw_warnings_and_notes_once(tmp_path):
    path = _long_table(tmp_path / "p100.csv", days=100, drop=("vwap",))
    proc = qframe(["dataset=csv", f"dataset.path={path}", "model=linear", "strategy.topk=5"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Warning" not in proc.stderr, proc.stderr
    assert (proc.stdout + proc.stderr).count("vwap = (high + low + close) / 3") == 1


def test_wide_table_drops_features_in_one_compact_note(tmp_path):
    df = pd.read_parquet(FIXTURE / "ohlcv.parquet").pivot(index="date", columns="instrument", values="close")
    path = tmp_path / "closes.csv"
    df.reset_index().to_csv(path, index=False)
    proc = qframe(["dataset=csv", f"dataset.path={path}", "model=linear", "strategy.topk=5"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    dropped = [line for line in out.splitlines() if "dropped" in line]
    assert dropped and all(len(line) < 300 for line in dropped), dropped
    assert sum("feature(s)" in line for line in dropped) == len(dropped)


def test_topk_holding_the_universe_is_refused_and_near_it_noted():
    from conftest import random_market

    from qframe.core.errors import ConfigError
    from qframe.plugins.strategies.topk_dropout import TopkDropoutStrategy

    market = random_market(n_days=120, n_inst=20)
    start, end = market.calendar[60], market.calendar[-1]
    with pytest.raises(ConfigError, match="strategy.topk=20 would hold every tradable instrument"):
        TopkDropoutStrategy(topk=20, n_drop=2).check_market(market, start, end)
    (note,) = TopkDropoutStrategy(topk=12, n_drop=2).check_market(market, start, end)
    assert "more than half of the 20" in note
    assert TopkDropoutStrategy(topk=5, n_drop=1).check_market(market, start, end) == []


def test_segments_partial_settings_are_derived_and_overlap_refused(tmp_path):
    from qframe.core.errors import ConfigError
    from qframe.core.handler import resolve_segments

    cal = pd.bdate_range("2020-01-01", periods=400)
    only_test = resolve_segments(cal, {"test": ["2021-01-01", None]})
    test_lo = only_test["test"][0]
    assert only_test["train"][0] == cal[0] and only_test["valid"][1] < test_lo
    before = cal[cal < test_lo]
    n_train = len(before[before <= only_test["train"][1]])
    assert abs(n_train / len(before) - 0.75) < 0.01  # 0.6 : 0.2 of the days before test
    only_train = resolve_segments(cal, {"train": [None, "2020-06-30"]})
    assert only_train["valid"][0] > pd.Timestamp("2020-06-30") and only_train["test"][1] == cal[-1]
    gap = resolve_segments(cal, {"train": [None, "2020-06-30"], "test": ["2020-10-01", None]})
    assert pd.Timestamp("2020-06-30") < gap["valid"][0] <= gap["valid"][1] < pd.Timestamp("2020-10-01")
    overlap = {"train": [None, "2020-12-31"], "valid": ["2021-01-01", "2021-01-31"], "test": ["2020-12-01", None]}
    with pytest.raises(ConfigError, match="overlaps segments.test.*allow_overlap"):
        resolve_segments(cal, overlap)
    assert resolve_segments(cal, {**overlap, "allow_overlap": True})["test"][0] == pd.Timestamp("2020-12-01")
    with pytest.raises(ConfigError, match="segments.valid"):
        resolve_segments(cal, {"train": [None, "2020-06-30"], "test": ["2020-07-01", None]})

    # end to end, from the command line: only the test segment set
    proc = qframe([*SMALL_LINEAR, "segments.test=[2014-12-01,null]"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seg = next(line for line in proc.stdout.splitlines() if line.startswith("segments:"))
    assert "test 2014-12-01" in seg and "train 2014-01-02" in seg, seg


def test_version_and_help(tmp_path):
    version = qframe(["--version"], cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("qframe 0."), version.stdout
    help_proc = qframe(["--help"], cwd=tmp_path)
    assert help_proc.returncode == 0, help_proc.stderr[-2000:]
    helptext = help_proc.stdout
    for needle in ("qframe -m", "qframe plugins", "qframe cache", "-sc install=bash", "--version"):
        assert needle in helptext
    # the config groups, each with its options (every group against conf/: the README's `qframe --help` case)
    groups = dict(line.split(": ", 1) for line in helptext.splitlines() if re.match(r"^\w+: \w", line))
    assert {"lightgbm", "linear"} <= set(groups["model"].split(", "))
    assert groups["dataset"].split(", ") == ["csv", "qlib", "synthetic"]


def test_progress_recorder_and_cache_of_a_fresh_directory(tmp_path):
    """Progress only on a terminal; the built-in recorder; ``qframe cache`` lists and clears what runs left."""
    piped = qframe([*SMALL_LINEAR, "recorders=[csv_log]"], cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr[-2000:]
    assert "✓" not in piped.stderr and "features" not in piped.stderr
    assert "stages: data" in piped.stdout and "features" in piped.stdout
    rows = pd.read_csv(tmp_path / ".qframe" / "runs.csv")
    assert len(rows) == 1 and rows["model"][0] == "linear" and rows["run_id"][0] in piped.stdout
    assert "recorder csv_log" in qframe(["plugins", "--hook", "register_recorders"], cwd=tmp_path).stdout

    # the same run with stderr on a pseudo-terminal: each stage collapses to a timing line; the cache is named
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    proc = subprocess.run([sys.executable, "-m", "qframe", *SMALL_LINEAR], cwd=tmp_path, env=env,
                          stdout=subprocess.PIPE, stderr=follower, timeout=300)  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, screen[-2000:]
    for stage in ("data", "features", "processors", "fit", "evaluation", "recording"):
        assert f"✓\x1b[0m {stage}" in screen or f"✓ {stage}" in screen, (stage, screen[-3000:])
    assert "from the cache" in screen  # the first, piped run computed and cached the features

    listing = qframe(["cache", "list", "--json"], cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    entries = json.loads(listing.stdout)["entries"]
    assert {"features", "market"} <= {e["kind"] for e in entries}
    assert any("alpha158" in e["what"] for e in entries)
    cleared = qframe(["cache", "clear", "--kind", "features"], cwd=tmp_path)
    assert cleared.returncode == 0 and "removed 1 entries" in cleared.stdout
    assert not list((tmp_path / ".qframe" / "cache").glob("*.arrow"))
    assert list((tmp_path / ".qframe" / "cache").glob("synthetic-*.npz"))


def test_thread_budget_reaches_only_an_unset_num_threads():
    from qframe.app import apply_thread_budget
    from qframe.launch.threads import THREADS_ENV

    unset = {"model": {"name": "lightgbm", "num_threads": None}}
    apply_thread_budget(unset, {THREADS_ENV: "1"})
    assert unset["model"]["num_threads"] == 1
    explicit = {"model": {"name": "lightgbm", "num_threads": 4}}
    apply_thread_budget(explicit, {THREADS_ENV: "1"})
    assert explicit["model"]["num_threads"] == 4
    none = {"model": {"name": "linear", "alpha": 1.0}}
    apply_thread_budget(none, {THREADS_ENV: "1"})
    assert "num_threads" not in none["model"]
    features = {"model": {"name": "linear"}, "handler": {"num_threads": None}}
    apply_thread_budget(features, {THREADS_ENV: "2"})
    assert features["handler"]["num_threads"] == 2  # a trial's feature threads: its share of the cores
    apply_thread_budget(features, {})
    assert features["handler"]["num_threads"] == 2


def test_csv_log_begun_with_other_columns_keeps_them(tmp_path):
    """A runs.csv begun by an older qframe (fewer metric columns) gets rows under its own header, never shifted."""
    from types import SimpleNamespace

    from qframe.plugins.recorders.csv_log import CsvLogRecorder

    path = tmp_path / "runs.csv"
    old = ["time", "run_id", "experiment", "run_name", "dataset", "model", "strategy", "objective_name", "objective"]
    path.write_text(",".join([*old, "IC"]) + "\n")
    result = SimpleNamespace(run_id="r1", objective_name="IC", objective=0.5, metrics={"IC": 0.5, "controls.x": 1.0})
    CsvLogRecorder(str(path))(result, {"experiment_name": "e", "model": {"name": "linear"}})
    rows = pd.read_csv(path)
    assert list(rows.columns) == [*old, "IC"]
    assert rows.loc[0, "run_id"] == "r1" and rows.loc[0, "IC"] == 0.5 and rows.loc[0, "model"] == "linear"
    CsvLogRecorder(str(tmp_path / "new.csv"))(result, {"experiment_name": "e"})
    assert "controls.x" not in pd.read_csv(tmp_path / "new.csv").columns  # not a metric qframe declares
