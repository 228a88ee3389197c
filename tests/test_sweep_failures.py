"""Stopping on failures, and the sweep and MLflow agreeing on every trial, for real (subprocesses).

* more failures than ``max_failure_rate`` allows: no trial starts, the running ones end and count as what they are;
  the stop line and the summary give the same counts; a re-run of the command refuses, saying why;
* a failed trial's MLflow run is FAILED with the sweep's reason and has the trial's params, whether the trial
  returned NaN or its process was killed;
* no ``qframe-artifacts-*`` scratch directory is left in the temp dir;
* a search-space key the config lacks is refused before any trial; a one-value ``choice`` warns.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from test_sweep import SMALL  # the tiny LightGBM sweep of the end-to-end tests

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "tests" / "sweep_toy" / "toy_app.py"
FIXTURE = ROOT / "tests" / "fixtures" / "qlib_small"


def env(tmp):
    out = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    out["MLFLOW_DISABLE_TELEMETRY"] = "true"
    out["TMPDIR"] = str(tmp)  # the scratch directories of its runs go here, where the test can see them
    return out


def scratch(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    return tmp


def toy(args, cwd):
    argv = [sys.executable, str(TOY), "-m", *args, "hydra.launcher.preload=false"]
    return subprocess.run(argv, cwd=cwd, env=env(scratch(cwd)), capture_output=True, text=True, timeout=120)


def qframe(args, cwd):
    argv = [sys.executable, "-m", "qframe", "-m", *args]
    return subprocess.run(argv, cwd=cwd, env=env(scratch(cwd)), capture_output=True, text=True, timeout=300)


def trials(sweep_dir):
    return json.loads((Path(sweep_dir) / "sweep_state.json").read_text())["trials"]


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("qframe: error:")]


def dead_pid():
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_failure_stop_lets_running_trials_end_and_its_counts_are_the_summarys(tmp_path):
    # an orphan of a killed run (its process is gone): the sweep sweeps it up
    orphan = scratch(tmp_path) / f"qframe-artifacts-{dead_pid()}-x"
    orphan.mkdir()
    command = [
        "hydra.sweep.dir=" + str(tmp_path / "multirun" / "${now:%H-%M-%S-%f}"),
        "failures=[raise,ok,raise,ok,raise]",
        "sleep=0.5",
        "hydra.sweeper.n_trials=10",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.max_failure_rate=0.2",
    ]
    proc = toy(command, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "multirun").iterdir()
    done = trials(sweep)
    # the third failure (job 4) ends while job 5 (or, under load, job 6) runs: that one ends and counts as complete
    assert [t["job"] for t in done if t["status"] == "failed"] == [0, 2, 4], done
    assert all(t["status"] == "complete" for t in done if t["job"] not in (0, 2, 4)) and len(done) in (6, 7), done
    assert not any("killed" in (t["error"] or "") for t in done)
    stop = next(t["ended"] for t in done if t["job"] == 4)
    assert any(t["status"] == "complete" and t["started"] < stop < t["ended"] for t in done), done  # in flight
    complete = len(done) - 3
    res = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert (res["completed"], res["failed"]) == (complete, 3)
    (line,) = error_lines(proc)
    assert line.startswith(
        f"qframe: error: sweep stopped: 3 of 10 trials failed ({complete} complete), more than max_failure_rate=0.2 "
        "allows; most common error (1 of 3): RuntimeError: planted failure in job 0;"
    ), line
    assert "raise hydra.sweeper.max_failure_rate" in line
    assert f"sweep stopped: {complete} complete, 3 failed" in proc.stdout
    assert res["stopped"] in line
    assert not orphan.exists()

    # the same command again: no new sweep, the reason and what to change
    again = toy(command, tmp_path)
    assert again.returncode == 2
    (line,) = error_lines(again)
    assert line.startswith(f"qframe: error: sweep {sweep} stopped: 3 of 10 trials failed ({complete} complete)"), line
    assert "not starting another sweep of this command: fix the setting that fails" in line
    assert "most common error" in line and "Traceback" not in again.stderr
    assert list((tmp_path / "multirun").iterdir()) == [sweep]


def test_a_one_value_choice_warns_once(tmp_path):
    proc = toy([f"hydra.sweep.dir={tmp_path / 'sweep'}", "x=choice(5)", "hydra.sweeper.n_trials=1"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if "qframe: warning:" in line]
    assert warnings == [
        "qframe: warning: search space x=choice(5) has one value, so it is a constant: give it as a plain override "
        "(x=5)"
    ]


def test_an_unknown_search_key_is_one_line_naming_the_closest_keys(tmp_path):
    proc = toy([f"hydra.sweep.dir={tmp_path / 'sweep'}", "model.num_thread=interval(0,1)"], tmp_path)
    assert proc.returncode == 2
    assert error_lines(proc) == [
        "qframe: error: search space key model.num_thread is not in the config; closest valid keys: "
        "model.num_threads; fix the key, or add a new key with ++model.num_thread=..."
    ]
    assert "Traceback" not in proc.stderr and not (tmp_path / "sweep" / "0").exists()


def child_runs(tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / '.qframe' / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (parent,) = [r for r in runs if r.data.tags.get("qframe.kind") == "sweep"]
    return {int(r.data.tags["qframe.trial"]): r for r in runs if r.data.tags.get("mlflow.parentRunId")}


def test_a_nan_objective_is_a_failed_trial_and_a_failed_run_with_the_same_reason(tmp_path):
    sweep = tmp_path / "sweep"
    proc = qframe(
        [
            f"hydra.sweep.dir={sweep}",
            "hydra/sweeper=hyperopt",
            # no benchmark in this table: the benchmark is 0 every day, its information ratio 0/0
            "dataset=csv",
            f"dataset.path={FIXTURE / 'ohlcv.parquet'}",
            "objective=benchmark.information_ratio",
            "model=linear",
            "strategy.topk=choice(4,5)",
            "strategy.n_drop=1",
            "evaluation.annualization=238",
            "segments.train=[null,2020-08-31]",
            "segments.valid=[2020-09-01,2020-10-31]",
            "segments.test=[2020-11-01,null]",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.max_failure_rate=1",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = trials(sweep)
    assert [t["status"] for t in done] == ["failed", "failed"]
    runs = child_runs(tmp_path)
    for t in done:
        assert t["error"] == "the job returned nan"
        run = runs[t["number"]]
        assert run.info.status == "FAILED" and run.data.tags["qframe.error"] == t["error"]
        assert run.data.params["strategy.topk"] == str(t["params"]["strategy.topk"])
    assert not list(scratch(tmp_path).glob("qframe-artifacts-*"))


def test_a_trial_killed_for_its_timeout_has_a_failed_run_with_its_params(tmp_path):
    sweep = tmp_path / "sweep"
    proc = qframe(
        [
            f"hydra.sweep.dir={sweep}",
            "tuner=lightgbm",
            "hydra.sweeper.n_trials=1",
            "hydra.sweeper.trial_timeout=1",
            "hydra.sweeper.max_failure_rate=1",
            *SMALL,
            # a fit far longer than the timeout
            "model.num_boost_round=100000",
            "model.early_stopping_rounds=100000",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (trial,) = trials(sweep)
    assert trial["status"] == "failed" and re.match(r"timed out after 1 s", trial["error"]), trial
    run = child_runs(tmp_path)[0]
    assert run.info.status == "FAILED" and run.data.tags["qframe.error"] == trial["error"]
    for key, value in trial["params"].items():
        assert run.data.params[key.lstrip("+")] == str(value)
    assert not list(scratch(tmp_path).glob("qframe-artifacts-*"))


def test_a_searched_key_is_there_when_its_value_is_missing_and_the_stop_is_worded_once():
    from omegaconf import OmegaConf

    from qframe.tuning.outputs import stop_report
    from qframe.tuning.settings import SweepSettings
    from qframe.tuning.state import SweepState, Trial
    from qframe.tuning.sweep_config import _has_key, closest_keys

    config = OmegaConf.create({"dataset": {"path": "???", "start": None}, "hydra": {"job": {}}})
    assert _has_key(config, "dataset.path") and _has_key(config, "dataset.start")
    assert not _has_key(config, "dataset.paths") and closest_keys(config, "dataset.paths")[0] == "dataset.path"
    state = SweepState("sig", {}, [], {})
    state.trials = [Trial(n, n, "failed", {}, {}, error="E: same") for n in range(2)]
    state.trials.append(Trial(2, 2, "complete", {}, {}, value=1.0))
    assert stop_report(state, SweepSettings(n_trials=4, max_failure_rate=0.5)) is None  # 2 of 4 is allowed
    assert stop_report(state, SweepSettings(n_trials=4, max_failure_rate=0.25)) == (
        "sweep stopped: 2 of 4 trials failed (1 complete), more than max_failure_rate=0.25 allows; most common "
        "error (2 of 2): E: same"
    )


def test_a_trial_interrupted_with_the_sweep_has_a_killed_run(tmp_path):
    import signal
    import time

    sweep = tmp_path / "sweep"
    argv = [sys.executable, "-m", "qframe", "-m", f"hydra.sweep.dir={sweep}", "tuner=lightgbm"]
    argv += ["hydra.sweeper.n_trials=1", *SMALL, "model.num_boost_round=100000", "model.early_stopping_rounds=100000"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env(scratch(tmp_path)), stderr=subprocess.PIPE, text=True)
    db = tmp_path / ".qframe" / "mlflow.db"
    deadline = time.time() + 120
    while time.time() < deadline and not (db.is_file() and _children(db)):
        time.sleep(0.5)  # the trial's run exists: it is fitting
    proc.send_signal(signal.SIGINT)  # Ctrl-C, to the sweep process
    proc.communicate(timeout=120)
    (trial,) = trials(sweep)
    assert trial["status"] == "running"  # interrupted: retried when the sweep resumes
    (run,) = child_runs(tmp_path).values()
    assert run.info.status == "KILLED" and "interrupted" in run.data.tags["qframe.error"]


def _children(db):
    import sqlite3

    try:
        with sqlite3.connect(db) as con:
            return con.execute("select count(*) from tags where key = 'qframe.trial'").fetchone()[0]
    except sqlite3.Error:
        return 0
