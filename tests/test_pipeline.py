"""Multi-stage tuning pipelines (``hydra.sweeper.stages``, docs/sweeps.md "Pipelines"), for real: the toy app
(tests/sweep_toy/conf/pipeline.yaml: stages a and b independent, d from the global best; a known objective,
minimised) in subprocesses for the scheduling, resume and failure rules, and one small qframe pipeline (a ridge stage,
then a strategy stage re-evaluating its best trial's predictions) for the MLflow tree, the no-refit strategy stage and
the re-run command.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from qframe.core.errors import ConfigError
from qframe.tuning.pipeline import parse_pipeline
from qframe.tuning.settings import SweepSettings

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "tests" / "sweep_toy" / "toy_app.py"
SMALL = ["dataset.n_instruments=40", "dataset.n_days=320"]


def env():
    out = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    out["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return out


def toy_argv(args):
    return [sys.executable, str(TOY), "--config-name", "pipeline", "-m", *args, "hydra.launcher.preload=false"]


def toy(args, cwd, timeout=120):
    return subprocess.run(toy_argv(args), cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)


def stage_state(sweep_dir, stage):
    return json.loads((Path(sweep_dir) / stage / "sweep_state.json").read_text())


def results(sweep_dir):
    return yaml.safe_load((Path(sweep_dir) / "pipeline_results.yaml").read_text())


def log_lines(path):
    """{job: (start, done)} times and {job: (x, y)} from the toy's log."""
    times, values = {}, {}
    for line in Path(path).read_text().splitlines():
        kind, job, *rest = line.split()
        if kind in ("start", "done"):
            start, done = times.get(int(job), (None, None))
            times[int(job)] = (float(rest[2]), done) if kind == "start" else (start, float(rest[2]))
            values[int(job)] = (float(rest[0]), float(rest[1]))
    return times, values


def test_stages_share_the_slots_and_a_stage_starts_from_the_global_best(tmp_path):
    sweep_dir, log = tmp_path / "sweep", tmp_path / "log"
    proc = toy(["hydra.sweeper.n_jobs=2", "sleep=0.4", f"log={log}", f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = results(sweep_dir)
    bests = {name: stage["best_value"] for name, stage in doc["stages"].items()}
    # the global best is the best (minimum) of the stages' bests, and says where it came from
    assert doc["global_best"]["value"] == min(bests.values())
    winner = doc["global_best"]["stage"]
    assert bests[winner] == doc["global_best"]["value"]
    assert doc["global_best"]["trial"] == doc["stages"][winner]["best_trial"]
    # d started from the global best of a and b: each of its trials carries that trial's settings (but y, searched)
    before = min(("a", "b"), key=bests.get)
    inherited = [p for p in doc["stages"][before]["best_params"] if not p.startswith("y=")]
    d = stage_state(sweep_dir, "d")
    assert inherited and all(p in d["fixed"] for p in inherited), (inherited, d["fixed"])
    times, values = log_lines(log)
    jobs = {name: [t["job"] for t in stage_state(sweep_dir, name)["trials"]] for name in ("a", "b", "d")}
    assert sorted(sum(jobs.values(), [])) == list(range(8))  # one numbering for the pipeline: no job twice
    if before == "a":
        x = float(inherited[0].split("=")[1])
        assert all(values[job][0] == x for job in jobs["d"])
    # a and b ran side by side, never more than the 2 slots at once; d waited for both
    events = sorted([(s, 1) for s, _ in times.values()] + [(e, -1) for _, e in times.values()])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2
    side_by_side = [
        (i, j) for i in jobs["a"] for j in jobs["b"] if times[i][0] < times[j][1] and times[j][0] < times[i][1]
    ]
    assert side_by_side, times
    assert min(times[j][0] for j in jobs["d"]) >= max(times[j][1] for j in jobs["a"] + jobs["b"])
    # what each stage leaves is what a single sweep leaves, in its own directory; and the pipeline's own files
    for name in ("a", "b", "d"):
        for file in ("optimization_results.yaml", "trials.csv", "optimization_history.png"):
            assert (sweep_dir / name / file).is_file(), (name, file)
        assert all((sweep_dir / name / str(job)).is_dir() for job in jobs[name])
    assert (sweep_dir / "pipeline_history.png").stat().st_size > 0
    assert "global best" in proc.stdout and "[1/3]" in proc.stdout


def test_resume_after_kill_9_in_stage_2_continues_it_and_refuses_a_changed_finished_stage(tmp_path):
    sweep_dir, log = tmp_path / "sweep", tmp_path / "log"
    # a -> b -> d, one after another
    args = ["+hydra.sweeper.stages.b.from=a", "hydra.sweeper.stages.b.n_trials=3", "sleep=0.3", f"log={log}"]
    args += [f"hydra.sweep.dir={sweep_dir}"]
    proc = subprocess.Popen(
        toy_argv(args),
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            if sum(t["status"] == "complete" for t in stage_state(sweep_dir, "b")["trials"]) >= 1:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the pipeline and its running trial
    proc.wait()
    a_before = (sweep_dir / "a" / "sweep_state.json").read_text()
    b_done = sum(t["status"] == "complete" for t in stage_state(sweep_dir, "b")["trials"])
    assert 1 <= b_done < 3 and not (sweep_dir / "d").exists()

    resumed = toy(args, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    # a is not run again; b continues (its totals are totals), d runs after it
    assert (sweep_dir / "a" / "sweep_state.json").read_text() == a_before
    assert not re.search(r"^a trial", resumed.stdout, re.M) and "resuming the sweep in" in resumed.stdout
    b = stage_state(sweep_dir, "b")
    assert sum(t["status"] == "complete" for t in b["trials"]) == 3 == len(b["trials"])
    # b started from a's best trial: every trial of it carries a's best x (and its own y=0.5)
    a_best = results(sweep_dir)["stages"]["a"]["best_params"]
    assert a_best[0].startswith("x=") and {a_best[0], "y=0.5"} <= set(b["fixed"])
    assert len(stage_state(sweep_dir, "d")["trials"]) == 3
    starts = [line for line in log.read_text().splitlines() if line.startswith("start")]
    assert len(starts) <= 3 + 3 + 1 + 3  # b's interrupted trial is the only one run twice
    doc = results(sweep_dir)
    assert doc["global_best"]["value"] == min(s["best_value"] for s in doc["stages"].values())

    # nothing left to do: reported, nothing written
    again = toy(args, tmp_path)
    assert again.returncode == 0 and "already finished" in again.stdout, again.stdout + again.stderr
    # a finished stage changed: refused before any trial, saying what changed
    changed = toy([*args, "hydra.sweeper.stages.a.n_trials=5"], tmp_path)
    assert changed.returncode == 2
    assert changed.stderr.strip().splitlines() == [changed.stderr.strip()]
    assert "stage a is finished and its definition changed (n_trials: 3 -> 5)" in changed.stderr


def test_a_finished_last_stage_continues_with_more_trials(tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = [f"hydra.sweep.dir={sweep_dir}"]
    first = toy(args, tmp_path)
    assert first.returncode == 0, first.stderr
    before = {n: (sweep_dir / n / "sweep_state.json").read_text() for n in ("a", "b")}
    d_before = stage_state(sweep_dir, "d")["trials"]
    assert len(d_before) == 3
    more = toy([*args, "hydra.sweeper.stages.d.n_trials=5"], tmp_path)
    assert more.returncode == 0, more.stderr
    assert "already finished" not in more.stdout
    # a and b are not run again; d keeps its 3 trials and runs 2 more, from the same start
    assert {n: (sweep_dir / n / "sweep_state.json").read_text() for n in ("a", "b")} == before
    d = stage_state(sweep_dir, "d")
    assert len(d["trials"]) == 5 and d["trials"][:3] == d_before
    assert sum(t["status"] == "complete" for t in d["trials"]) == 5
    doc = results(sweep_dir)
    best_d = min(t["value"] for t in d["trials"] if t["status"] == "complete")
    assert doc["stages"]["d"]["best_value"] == best_d
    state = json.loads((sweep_dir / "pipeline_state.json").read_text())
    assert state["stages"]["d"]["definition"]["n_trials"] == 5 and state["stages"]["d"]["status"] == "finished"
    # a stage a finished stage started from: more trials would change d's start, refused before any trial
    refused = toy([*args, "hydra.sweeper.stages.d.n_trials=5", "hydra.sweeper.stages.a.n_trials=4"], tmp_path)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "stage a is finished and its definition changed (n_trials: 3 -> 4)" in refused.stderr
    assert "stage d started from it and finished" in refused.stderr


def test_a_stage_whose_trials_fail_stops_the_pipeline_naming_it(tmp_path):
    sweep_dir = tmp_path / "sweep"
    # jobs 0-2 (stage a, which has the slot first) succeed, b's fail: d, which starts from the best of both, never
    proc = toy(["mode=raise", "failures=[ok,ok,ok]", f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("qframe:")]
    assert len(lines) == 1 and lines[0].startswith("qframe: error: stage b failed"), proc.stderr
    assert "planted failure" in lines[0]
    assert not (sweep_dir / "d").exists()
    doc = results(sweep_dir)
    assert doc["stages"]["a"]["status"] == "finished" and doc["stages"]["b"]["status"] == "failed"
    assert doc["stages"]["d"]["status"] == "pending" and "stage b failed" in doc["stopped"]


BAD = {
    "unknown from": ({"a": {"params": {"x": "interval(0, 1)"}, "from": "zz"}}, "from=zz: no such stage"),
    "cycle": (
        {"a": {"params": {"x": "interval(0, 1)"}, "from": "b"}, "b": {"params": {"y": "interval(0, 1)"}, "from": "a"}},
        "form a cycle (a -> b -> a)",
    ),
    "no space": ({"a": {"n_trials": 3}}, "hydra.sweeper.stages.a has no search space"),
    "refit": (
        {
            "m": {"overrides": ["model=linear"], "params": {"model.alpha": "interval(0.1, 1)"}},
            "s": {"from": "m", "overrides": ["model=mlp"], "spaces": ["strategy"]},
        },
        "its override model=mlp changes the model or the data, which needs a refit",
    ),
    "strategy from the base": ({"s": {"spaces": ["strategy"]}}, "searches only strategy.*/evaluation.*"),
    "bad name": ({"best": {"params": {"x": "interval(0, 1)"}}}, "bad stage name 'best'"),
    "bad name 2": ({"1st": {"params": {"x": "interval(0, 1)"}}}, "bad stage name '1st'"),
    "unknown field": ({"a": {"param": {"x": "interval(0, 1)"}}}, "stages.a.param is not a stage field"),
    "best first": ({"a": {"params": {"x": "interval(0, 1)"}, "from": "best"}}, "no stage is declared before a"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_pipelines_are_one_error_before_any_trial(case):
    stages, message = BAD[case]
    with pytest.raises(ConfigError, match=None) as info:
        parse_pipeline(SweepSettings(stages=stages), [], "objective")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_bad_pipeline_from_the_command_line_is_one_line_and_exit_2(tmp_path):
    log = tmp_path / "log"
    proc = toy(["hydra.sweeper.stages.d.from=zz", f"log={log}", f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "qframe: error: hydra.sweeper.stages.d.from=zz: no such stage; valid options: null, best, a, b"
    ]
    assert not log.exists() and not (tmp_path / "sweep" / "a").exists()  # no trial ran


def test_model_keys_on_the_command_line_are_refused_with_a_re_evaluating_stage():
    stages = {"m": {"params": {"model.alpha": "interval(0.1, 1)"}}, "s": {"from": "m", "spaces": ["strategy"]}}
    with pytest.raises(ConfigError, match="model=linear on the command line: stage s re-evaluates"):
        parse_pipeline(SweepSettings(stages=stages), ["model=linear"], "objective")


#: a ridge stage, then a strategy stage from its best (so: re-evaluating its predictions); the command line's
#: strategy.topk/n_drop are the ridge stage's, the strategy stage searches its own
STAGES = (
    'hydra.sweeper.stages={ridge:{overrides:["model=linear"],params:{model.alpha:"tag(log, interval(0.01, 100))"},'
    'n_trials:2},strategy:{from:ridge,params:{strategy.topk:"choice(3, 5)",strategy.n_drop:"int(interval(1, 2))"},'
    "n_trials:3}}"
)
PIPELINE = ["hydra/sweeper=hyperopt", "hydra/launcher=qframe", STAGES, "hydra.sweeper.n_startup_trials=2"]


def test_qframe_pipeline_mlflow_tree_strategy_stage_fits_nothing_and_the_rerun_reproduces_the_best(tmp_path):
    from mlflow.tracking import MlflowClient

    sweep_dir = tmp_path / "sweep"
    argv = [sys.executable, "-m", "qframe", "-m", *PIPELINE, *SMALL, "strategy.topk=5", "strategy.n_drop=1"]
    proc = subprocess.run(
        [*argv, f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = results(sweep_dir)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / '.qframe' / 'mlflow.db'}")
    state = json.loads((sweep_dir / "pipeline_state.json").read_text())
    pipeline = client.get_run(state["run_id"])
    assert pipeline.data.tags["qframe.kind"] == "pipeline" and pipeline.info.status == "FINISHED"
    assert pipeline.data.metrics["best objective"] == doc["global_best"]["value"]
    experiment = [pipeline.info.experiment_id]
    stages = client.search_runs(experiment, f"tags.mlflow.parentRunId = '{pipeline.info.run_id}'")
    by_stage = {run.data.tags["qframe.stage"]: run for run in stages}
    assert sorted(by_stage) == ["ridge", "strategy"]
    trials = {
        name: client.search_runs(experiment, f"tags.mlflow.parentRunId = '{run.info.run_id}'")
        for name, run in by_stage.items()
    }
    assert len(trials["ridge"]) == 2 and len(trials["strategy"]) == 3
    # the strategy stage re-evaluates the ridge stage's best trial's predictions: no trial of it fits a model
    ridge_best = doc["stages"]["ridge"]["best_trial"]
    source = next(r for r in trials["ridge"] if r.data.tags["qframe.trial"] == str(ridge_best))
    assert all("time.fit" in r.data.metrics for r in trials["ridge"])
    for run in trials["strategy"]:
        assert run.data.tags["qframe.from_run"] == source.info.run_id
        assert (
            "time.fit" not in run.data.metrics and run.data.params["model.alpha"] == source.data.params["model.alpha"]
        )
    assert f"from_run={source.info.run_id}" in stage_state(sweep_dir, "strategy")["fixed"]
    # qframe runs --sweep: the pipeline's run lists every stage's trials, a stage's run its own
    for ref, expected in (
        (pipeline.info.run_id, trials["ridge"] + trials["strategy"]),
        (by_stage["ridge"].info.run_id, trials["ridge"]),
    ):
        listed = subprocess.run(
            [sys.executable, "-m", "qframe", "runs", "--sweep", ref, "--json"],
            cwd=tmp_path,
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert listed.returncode == 0, listed.stderr
        ids = {run["id"] for run in json.loads(listed.stdout)}
        assert ids == {r.info.run_id for r in expected}
    # the global best's one-line command re-runs it as a single run, with the same objective exactly
    best = doc["global_best"]
    assert best["value"] == max(s["best_value"] for s in doc["stages"].values())
    rerun = subprocess.run(
        ["bash", "-c", best["command"].replace("qframe ", f"{sys.executable} -m qframe ", 1)],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    newest = client.search_runs(experiment, "tags.mlflow.parentRunId IS NULL", order_by=["start_time DESC"])[0]
    assert newest.data.metrics["excess_return_with_cost.information_ratio"] == best["value"]


def test_two_stages_of_one_name_in_a_config_file_are_one_error(tmp_path):
    from omegaconf import OmegaConf

    from qframe.hydra_errors import describe_hydra_error

    path = tmp_path / "dup.yaml"
    path.write_text("hydra:\n  sweeper:\n    stages:\n      a: {spaces: [lightgbm]}\n      a: {spaces: [strategy]}\n")
    with pytest.raises(Exception) as info:
        OmegaConf.load(path)
    message = describe_hydra_error(info.value, [])
    assert message == (
        f"cannot read {path} line 5: found duplicate key a; a mapping holds each key once (two stages of a pipeline "
        "need two names)"
    )
