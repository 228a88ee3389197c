"""``from_run=RUN``: a recorded run's predictions re-evaluated (no fit) on real small runs in a real sqlite store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tracking_services as services
except ImportError:
    sys.path.insert(0, str(Path(__file__).parent))
    import tracking_services as services

import qframe

SMALL = ["dataset.n_instruments=40", "dataset.n_days=320", "strategy.topk=5", "strategy.n_drop=1"]
OBJECTIVE = "excess_return_with_cost.information_ratio"


def composed(overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from qframe.app import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides), resolve=True)


def run(overrides: list[str], workdir: Path):
    from qframe.core.workflow import run_workflow

    return run_workflow(composed([*SMALL, *overrides, f"workdir={workdir}"]))


def qframe_cmd(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return services.run_qframe(args, cwd)


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qframe: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A store with one fitted run (ridge on Alpha360, so the handler is not the default one): (workdir, result)."""
    wd = tmp_path_factory.mktemp("reuse") / ".qframe"
    result = run(["model=linear", "model.alpha=1", "handler=alpha360", "run_name=source"], wd)
    return wd, result


def test_same_strategy_same_metrics_other_topk_other_return(source):
    wd, src = source
    again = run(["from_run=source"], wd)
    store = qframe.runs(tracking_uri=f"sqlite:///{wd / 'mlflow.db'}")
    recorded = store.get(again.run_id)
    # every metric the source recorded, controls included, equals the re-evaluation's to the last bit
    assert again.metrics.keys() == src.metrics.keys()
    for name, value in src.metrics.items():
        assert again.metrics[name] == value or (value != value and again.metrics[name] != again.metrics[name]), name
    # linked to its source, saying which model and handler made the predictions; nothing was fitted
    assert recorded.tags["qframe.from_run"] == src.run_id
    assert recorded.params["model.name"] == "linear" and recorded.params["model.alpha"] == "1"
    assert recorded.params["handler.features.name"] == "alpha360" and recorded.params["from_run"] == src.run_id
    assert "fit" not in again.timings and "predict" not in again.timings
    assert not any(k.startswith("time.fit") for k in recorded.metrics)
    assert recorded.load("pred").equals(store.get(src.run_id).load("pred"))

    other = run(["from_run=" + src.run_id[:10], "strategy.topk=10"], wd)
    assert other.metrics["IC"] == src.metrics["IC"] and other.metrics["Rank IC"] == src.metrics["Rank IC"]
    assert other.metrics[OBJECTIVE] != src.metrics[OBJECTIVE]
    assert store.get(other.run_id).tags["qframe.from_run"] == src.run_id


def test_mismatched_data_is_one_error_line(source):
    wd, src = source
    args = [a for a in SMALL if not a.startswith("dataset.n_instruments")]
    proc = qframe_cmd([*args, "dataset.n_instruments=30", "from_run=source", f"workdir={wd}"], wd.parent)
    one_line_error(proc, "not this config's test segment", "dataset.n_instruments=40 (here 30)")
    proc = qframe_cmd([*SMALL, "segments.test=[2015-02-01,null]", "from_run=source", f"workdir={wd}"], wd.parent)
    one_line_error(proc, "not this config's test segment", "segments.test=")
    proc = qframe_cmd([*SMALL, "from_run=source", "model=mlp", f"workdir={wd}"], wd.parent)
    one_line_error(proc, "model would change nothing")
    proc = qframe_cmd([*SMALL, "from_run=nosuch", f"workdir={wd}"], wd.parent)
    one_line_error(proc, "from_run=nosuch: no run 'nosuch'")


def test_strategy_sweep_over_stored_predictions_fits_nothing(source):
    wd, src = source
    data = [a for a in SMALL if a.startswith("dataset.")]
    # the strategy space, narrowed to what 40 instruments (a universe of 20) can trade
    space = ["tuner=strategy", "strategy.topk=choice(3,5,8)", "strategy.n_drop=choice(1,2)"]
    sweep = qframe_cmd(["-m", *data, "from_run=source", *space, "hydra.sweeper.n_trials=3", f"workdir={wd}"], wd.parent)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert "sweep done: 3 complete, 0 failed" in sweep.stdout + sweep.stderr
    store = qframe.runs(tracking_uri=f"sqlite:///{wd / 'mlflow.db'}")
    trials = store.search(sweep="last")
    assert len(trials) == 3 and set(trials["status"]) == {"FINISHED"}
    assert set(trials["tags.qframe.from_run"]) == {src.run_id}
    assert set(trials["params.model.name"]) == {"linear"}
    # no trial fitted or predicted: it evaluated the source's predictions (same IC) under its own strategy
    assert not [c for c in trials.columns if c.startswith(("metrics.time.fit", "metrics.time.predict"))]
    assert set(trials["metrics.IC"]) == {src.metrics["IC"]}
    # nor loaded anything: the sweep's parent loaded the source and the market once, and every trial forked with them
    assert "metrics.time.data" not in trials.columns and trials["metrics.time.backtest_risk"].notna().all()
    assert json.loads(trials["tags.qframe.overrides"].iloc[0])  # each trial says what it was run with

    # `last` is now the sweep's parent run, which predicts nothing: from_run=last takes the newest finished run
    # that is not one (a re-evaluation itself, if the first test ran: its predictions are the source's)
    assert store.resolve("last").data.tags.get("qframe.kind") == "sweep"
    again = run(["from_run=last"], wd)
    named = store.get(store.get(again.run_id).tags["qframe.from_run"])
    assert named.tags.get("qframe.kind") != "sweep" and named.status == "FINISHED"
    assert again.metrics["IC"] == src.metrics["IC"]
