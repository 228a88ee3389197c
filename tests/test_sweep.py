"""The hyperopt sweeper end to end, in subprocesses: failures, stop rule, kill -9 and resume, launchers.

Most tests drive a toy Hydra app (tests/sweep_toy) whose trials take milliseconds and fail in a planted way by job
number; the qframe tests run real (tiny) LightGBM sweeps and read MLflow back.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "tests" / "sweep_toy" / "toy_app.py"
SMALL = [
    "dataset.n_instruments=40",
    "dataset.n_days=320",
    "strategy.topk=5",
    "strategy.n_drop=1",
    "model.num_boost_round=20",
    "model.lambda_l1=1",
    "model.lambda_l2=1",
    "model.num_threads=1",
]


def env():
    out = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    out["MLFLOW_DISABLE_TELEMETRY"] = "true"
    out["RAY_AUTH_MODE"] = "disabled"  # a local Ray instance without a token (hydra/launcher=ray)
    return out


def toy(args, cwd, timeout=120, **kw):
    return subprocess.run(
        [sys.executable, str(TOY), "-m", *args, *toy_launcher(args)],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def toy_launcher(args):
    # the toy needs none of qframe's stack preloaded in the fork launcher's parent (saves ~3 s a sweep)
    return [] if any(a.startswith("hydra/launcher=") for a in args) else ["hydra.launcher.preload=false"]


def qframe(args, cwd, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "qframe", *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout
    )


def state(sweep_dir):
    return json.loads((Path(sweep_dir) / "sweep_state.json").read_text())


def results(sweep_dir):
    return yaml.safe_load((Path(sweep_dir) / "optimization_results.yaml").read_text())


def test_every_failure_kind_is_a_failed_trial_and_the_sweep_completes(tmp_path):
    sweep = tmp_path / "sweep"
    kinds = ["ok", "raise", "nan_value", "string", "segv", "kill", "hang"]
    proc = toy(
        [
            f"hydra.sweep.dir={sweep}",
            f"failures=[{','.join(kinds)}]",
            "hydra.sweeper.n_trials=9",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.trial_timeout=3",
            "hydra.sweeper.max_failure_rate=1",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = {t["job"]: t for t in state(sweep)["trials"]}
    assert len(trials) == 9
    reasons = {
        "raise": "RuntimeError: planted failure in job 1",
        "nan_value": "returned nan",
        "string": "non-number: 'not a number'",
        "segv": "died by SIGSEGV",
        "kill": "died by SIGKILL",
        "hang": "timed out after 3 s",
    }
    for job, kind in enumerate(kinds):
        if kind == "ok":
            assert trials[job]["status"] == "complete"
        else:
            assert trials[job]["status"] == "failed", (kind, trials[job])
            assert reasons[kind] in trials[job]["error"], (kind, trials[job]["error"])
    assert trials[7]["status"] == trials[8]["status"] == "complete"
    res = results(sweep)
    assert res["completed"] == 3 and res["failed"] == 6
    done = [t for t in trials.values() if t["status"] == "complete"]
    best = min(done, key=lambda t: t["value"])  # direction: minimize in the toy config
    assert res["best_value"] == best["value"] and res["best_trial"] == best["number"]
    assert res["best_job_dir"] == str(sweep / str(best["job"]))
    assert (sweep / "trials.parquet").is_file() and (sweep / "optimization_history.png").stat().st_size > 1000
    import pandas as pd

    table = pd.read_parquet(sweep / "trials.parquet")
    assert list(table["status"]) == [trials[j]["status"] for j in sorted(trials)]
    assert {"params.x", "params.y", "params.c", "objective", "duration_s", "error"} <= set(table.columns)
    # types reach the job as they are: c is a choice of strings, x a float
    assert all(t["params"]["c"] in ("a", "b") and isinstance(t["params"]["x"], float) for t in trials.values())
    # two slots overlap: some trial started before the previous one ended
    spans = sorted((t["started"], t["ended"]) for t in trials.values())
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


def test_max_failure_rate_stops_the_sweep_with_results_written(tmp_path):
    sweep = tmp_path / "sweep"
    proc = toy(
        [f"hydra.sweep.dir={sweep}", "mode=raise", "hydra.sweeper.n_trials=10", "hydra.sweeper.max_failure_rate=0.2"],
        tmp_path,
    )
    assert proc.returncode == 2
    assert "qframe: error: sweep stopped: 3 of 10 trials failed" in proc.stderr
    assert "Traceback" not in proc.stderr
    res = results(sweep)
    assert res["failed"] == 3 and res["completed"] == 0 and "stopped" in res


def test_async_slots_start_a_trial_as_soon_as_one_ends(tmp_path):
    """One trial of every pair is slow: the other slot keeps starting trials meanwhile (no batch barrier)."""
    sweep = tmp_path / "sweep"
    log = tmp_path / "runs.log"
    proc = toy(
        [
            f"hydra.sweep.dir={sweep}",
            f"log={log}",
            "hydra.sweeper.n_trials=6",
            "hydra.sweeper.n_jobs=2",
            "sleep=choice(0.05,1.5)",
            "hydra.sweeper.seed=3",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = sorted(state(sweep)["trials"], key=lambda t: t["started"])
    slow = [t for t in trials if t["params"]["sleep"] == 1.5]
    fast = [t for t in trials if t["params"]["sleep"] == 0.05]
    assert slow and fast
    # trial b was started when trial c ended, while trial a (started before c ended) still ran. With batches that
    # cannot happen: a batch starts only once every trial of the previous one has ended
    found = [
        (a["number"], b["number"], c["number"])
        for a in trials
        for b in trials
        for c in trials
        if len({a["number"], b["number"], c["number"]}) == 3 and a["started"] < c["ended"] <= b["started"] < a["ended"]
    ]
    assert found, [(t["params"]["sleep"], t["started"], t["ended"]) for t in trials]


def test_kill_9_mid_sweep_then_resume_completes_without_rerunning(tmp_path):
    sweep = tmp_path / "sweep"
    log = tmp_path / "runs.log"
    args = [
        f"hydra.sweep.dir={sweep}",
        f"log={log}",
        "sleep=0.4",
        "hydra.sweeper.n_trials=10",
        "hydra.sweeper.n_jobs=2",
    ]
    proc = subprocess.Popen(
        [sys.executable, str(TOY), "-m", *args, *toy_launcher(args)],
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        path = sweep / "sweep_state.json"
        if path.is_file():
            try:
                if sum(t["status"] == "complete" for t in state(sweep)["trials"]) >= 3:
                    break
            except ValueError:
                pass
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its running trials die at once
    proc.wait()
    before = state(sweep)["trials"]
    completed_before = {t["number"]: t for t in before if t["status"] == "complete"}
    assert 3 <= len(completed_before) < 10
    assert any(t["status"] == "running" for t in before)

    again = toy(args, tmp_path)  # the same command on the same sweep dir resumes
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming the sweep" in again.stdout
    after = state(sweep)["trials"]
    assert sum(t["status"] in ("complete", "failed") for t in after) == 10
    assert all(t["status"] == "complete" for t in after)
    for number, t in completed_before.items():
        assert after[number]["value"] == t["value"] and after[number]["job"] == t["job"]
    jobs = [t["job"] for t in after]
    assert len(set(jobs)) == len(jobs) and max(jobs) >= 10  # retried trials got new job numbers
    # no completed trial ran twice: each (x, y) of a completed trial started exactly once
    starts = [line.split()[2:4] for line in log.read_text().splitlines() if line.startswith("start")]
    for t in completed_before.values():
        assert starts.count([repr(t["params"]["x"]), repr(t["params"]["y"])]) == 1
    assert results(sweep)["completed"] == 10


def test_malformed_grammar_in_params_is_one_line(tmp_path):
    proc = toy([f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.sweeper.params.x='interval(0.1'"], tmp_path)
    assert proc.returncode == 2
    assert "qframe: error: malformed search space entry 'x=interval(0.1'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "sweep" / "0").exists()


def test_resume_with_a_different_space_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    first = toy([f"hydra.sweep.dir={sweep}", "hydra.sweeper.n_trials=2"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    other = toy([f"hydra.sweep.dir={sweep}", "x=interval(0,5)"], tmp_path)
    assert other.returncode == 2
    assert "qframe: error: cannot resume the sweep" in other.stderr and "different search space" in other.stderr


LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra.launcher.n_jobs=2", "hydra.launcher.prefer=processes"],
    # a local Ray instance in a directory of the test's own
    "ray": ["+hydra.launcher.ray.init.num_cpus=2"],
    # submitit's local executor: the Slurm launcher's code path, each job a fresh process
    "submitit_local": [],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_other_hydra_launchers_with_failures_and_trial_timeout(tmp_path, launcher):
    """Batch launchers run the sweep too; a job that hangs is interrupted by its own alarm (trial_timeout)."""
    if launcher in ("ray", "submitit_local"):
        plugin = "hydra_ray_launcher.ray_launcher" if launcher == "ray" else "hydra_submitit_launcher.submitit_launcher"
        pytest.importorskip(f"hydra_plugins.{plugin}", reason="the `scale` extra is not installed")
    sweep = tmp_path / "sweep"
    extra = list(LAUNCHERS[launcher])
    if launcher == "ray":
        # Ray's sockets live under its temp dir, and a unix socket path is limited to 107 bytes
        ray_dir = tempfile.mkdtemp(prefix="qf-ray-", dir="/tmp")
        extra.append(f"+hydra.launcher.ray.init._temp_dir={ray_dir}")
    started = time.time()
    proc = toy(
        [
            f"hydra.sweep.dir={sweep}",
            f"hydra/launcher={launcher}",
            "failures=[ok,raise,hang]",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.trial_timeout=3",
            *extra,
        ],
        tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = state(sweep)["trials"]
    assert [t["status"] for t in trials] == ["complete", "failed", "failed", "complete"]
    assert "planted failure in job 1" in trials[1]["error"]
    assert "timed out after 3 s (interrupted)" in trials[2]["error"]
    assert [t["job"] for t in trials] == [0, 1, 2, 3]
    assert time.time() - started < 60  # the hanging job (60 s) did not hold the sweep
    if launcher == "ray":
        shutil.rmtree(ray_dir, ignore_errors=True)


def test_timed_task_interrupts_and_restores_the_alarm():
    from qframe.tuning.timeout import TimedTask, TrialTimeout

    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(TrialTimeout, match=r"timed out after 0.2 s"):
        TimedTask(lambda cfg: time.sleep(5), 0.2)({})
    assert TimedTask(lambda cfg: cfg["x"] + 1, 5)({"x": 1}) == 2
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0) and signal.getsignal(signal.SIGALRM) is before


def test_trials_on_a_batch_launcher_get_one_tracked_run_each(tmp_path):
    """Trial identity travels in hydra.job.env_set: with the in-process basic launcher, a batch of two trials
    still gets one nested MLflow run per trial, tagged with its own number."""
    from mlflow.tracking import MlflowClient

    sweep = tmp_path / "sweep"
    proc = qframe(
        [
            "-m",
            "tuner=lightgbm",
            "hydra/launcher=basic",
            f"hydra.sweep.dir={sweep}",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=2",
            *SMALL,
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / '.qframe' / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (parent,) = [r for r in runs if r.data.tags.get("qframe.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(int(r.data.tags["qframe.trial"]) for r in children) == [0, 1, 2, 3]
    values = {t["number"]: t["value"] for t in state(sweep)["trials"]}
    for run in children:
        objective = run.data.metrics["excess_return_with_cost.information_ratio"]
        assert objective == pytest.approx(values[int(run.data.tags["qframe.trial"])], abs=1e-12)
    # each trial left its lease in its job dir, ended with its result (what a resumed sweep would adopt)
    leases = {int(p.parent.name): json.loads(p.read_text()) for p in sweep.glob("*/trial_lease.json")}
    assert sorted(leases) == [0, 1, 2, 3]
    for job, lease in leases.items():
        assert lease["done"] and lease["job"] == job
        assert lease["value"] == pytest.approx(values[lease["trial"]], abs=1e-12)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["hydra.sweeper.objective=sharpe"], "hydra.sweeper.objective='sharpe' is not a metric a run records"),
        (["hydra/sweeper=hyperopt"], "the search space is empty"),
        (["hydra.sweeper.n_jobs=0"], "hydra.sweeper.n_jobs must be >= 1"),
        (["hydra.sweeper.algo=cmaes"], "unknown tuner_backend 'cmaes'; valid options: anneal, rand, tpe"),
        (["model.nosuchkey=interval(0,1)"], "qframe: error: search space key model.nosuchkey is not in the config"),
    ],
)
def test_bad_sweep_input_is_one_line_before_any_trial(tmp_path, args, needle):
    base = ["tuner=lightgbm"] if args[0] != "hydra/sweeper=hyperopt" else []
    proc = qframe(["-m", *base, *args, *SMALL], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert needle in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    if "objective" in args[0]:
        assert "excess_return_with_cost.information_ratio" in proc.stderr  # the valid metrics are listed
    if "nosuchkey" in args[0]:
        (line,) = proc.stderr.strip().splitlines()  # one line, naming the closest keys and the fix
        assert "closest valid keys: model." in line and "++model.nosuchkey=" in line, line
    assert not list(tmp_path.glob(".qframe/multirun/*/*/0"))  # no trial ran


def test_lightgbm_sweep_tracks_parent_and_children_and_best_command_reproduces(tmp_path):
    from mlflow.tracking import MlflowClient

    sweep = tmp_path / "sweep"
    proc = qframe(
        [
            "-m",
            "tuner=lightgbm",
            f"hydra.sweep.dir={sweep}",
            "hydra.sweeper.n_trials=6",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.max_failure_rate=1",
            "hydra.sweeper.seed=1",
            # num_leaves=1 is invalid for LightGBM: those trials fail inside the run
            "model.num_leaves=choice(1,8)",
            # a key of the named space narrowed through hydra.sweeper.params (null in tuner=lightgbm)
            "hydra.sweeper.params.model.learning_rate='interval(0.01,0.02)'",
            *SMALL,
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = state(sweep)["trials"]
    failed = [t for t in trials if t["status"] == "failed"]
    done = [t for t in trials if t["status"] == "complete"]
    assert failed and done, [(t["params"], t["error"]) for t in trials]
    assert all(t["params"]["model.num_leaves"] == 1 for t in failed)
    assert all(type(t["params"]["model.max_depth"]) is int for t in trials)
    assert all(0.01 <= t["params"]["model.learning_rate"] <= 0.02 for t in trials)

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / '.qframe' / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (parent,) = [r for r in runs if r.data.tags.get("qframe.kind") == "sweep"]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["algo"] == "tpe" and parent.data.params["n_trials"] == "6"
    assert parent.data.params["space.model.learning_rate"] == "interval(0.01,0.02)"
    history = client.get_metric_history(parent.info.run_id, "best objective")
    assert len(history) == len(done)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"optimization_results.yaml", "trials.parquet", "optimization_history.png"} <= artifacts
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 6
    by_trial = {int(r.data.tags["qframe.trial"]): r for r in children}
    for t in trials:
        run = by_trial[t["number"]]
        assert run.info.status == ("FINISHED" if t["status"] == "complete" else "FAILED")
        if t["status"] == "failed":
            assert "num_leaves" in run.data.tags["qframe.error"]
            assert run.data.params["model.num_leaves"] == "1"  # a failed run still shows what it ran with
        else:
            # inputs came from the sweep process's memory (no data/feature loading in the trial); no plots
            assert "time.fit" in run.data.metrics and "time.features" not in run.data.metrics
            assert not {"cumulative_return.png", "report.html"} & {
                a.path for a in client.list_artifacts(run.info.run_id)
            }
    # where each trial ran: a forked process of its own, on this host (no Ray: the node is the host)
    ran = [by_trial[t["number"]].data.tags for t in done]
    assert len({tags["qframe.pid"] for tags in ran}) == len(ran)
    assert all(tags["qframe.node"] == tags["qframe.host"] for tags in ran)

    res = results(sweep)
    best = max(done, key=lambda t: t["value"])  # maximize: the default direction
    assert res["best_value"] == best["value"]
    command = res["best_command"].split()
    assert command[0] == "qframe"
    rerun = qframe([*command[1:], "run_name=rerun"], tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    (run,) = client.search_runs([parent.info.experiment_id], "attributes.run_name = 'rerun'")
    assert run.data.metrics["excess_return_with_cost.information_ratio"] == pytest.approx(best["value"], abs=1e-12)
    # a single run loads its inputs itself (from the caches the sweep wrote) and draws its plots and report
    assert "time.features" in run.data.metrics
    assert {"cumulative_return.png", "report.html"} <= {a.path for a in client.list_artifacts(run.info.run_id)}


def test_plain_grid_runs_in_forked_jobs(tmp_path):
    sweep = tmp_path / "grid"
    proc = qframe(["-m", "model=linear", "model.alpha=0.1,1.0", f"hydra.sweep.dir={sweep}", *SMALL[:4]], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (sweep / "0" / ".hydra" / "overrides.yaml").is_file() and (sweep / "1" / ".hydra").is_dir()
    assert "Launching 2 jobs in forked processes" in proc.stdout + proc.stderr


def test_resume_true_continues_the_newest_sweep_with_the_same_space(tmp_path):
    first = toy(["hydra.sweeper.n_trials=2"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    time.sleep(1.1)  # the default sweep dir is time-stamped to the second: the next run gets a new one
    again = toy(["hydra.sweeper.n_trials=4", "hydra.sweeper.resume=true"], tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    (path,) = list(tmp_path.glob("multirun/*/*/sweep_state.json"))
    trials = json.loads(path.read_text())["trials"]
    assert [t["job"] for t in trials] == [0, 1, 2, 3] and all(t["status"] == "complete" for t in trials)


FALLBACK_LINE = "composing and running each job with Hydra's public API (hydra.launcher.fast_path=false)"


def test_hydras_public_api_gives_the_fast_paths_trials(tmp_path):
    """hydra.launcher.fast_path=false (the path taken on a Hydra other than the verified one) composes and runs
    every job with Hydra's public API, says so once, and gets the fast path's trials: params, values, failures, and
    each job's recorded config in its own directory."""
    trials_of, files_of = {}, {}
    for fast_path in ("true", "false"):
        workdir = tmp_path / fast_path
        workdir.mkdir()
        sweep = workdir / "sweep"
        proc = qframe(
            [
                "-m",
                "tuner=lightgbm",
                f"hydra.sweep.dir={sweep}",
                f"hydra.launcher.fast_path={fast_path}",
                "hydra.sweeper.n_trials=4",
                "hydra.sweeper.n_jobs=2",
                "hydra.sweeper.max_failure_rate=1",
                "hydra.sweeper.seed=1",
                "model.num_leaves=choice(1,8)",  # num_leaves=1: LightGBM refuses it, the trial fails in the run
                *SMALL,
            ],
            workdir,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        output = proc.stdout + proc.stderr
        assert output.count(FALLBACK_LINE) == (1 if fast_path == "false" else 0), output[-3000:]
        trials = state(sweep)["trials"]
        trials_of[fast_path] = [(t["number"], t["status"], t["params"], t["value"], t["error"]) for t in trials]
        files_of[fast_path] = {}
        for t in trials:
            assert t["working_dir"] == str(sweep / str(t["job"]))
            for name in ("config.yaml", "overrides.yaml"):  # what the job ran with, as Hydra recorded it
                text = (sweep / str(t["job"]) / ".hydra" / name).read_text()
                files_of[fast_path][t["job"], name] = text.replace(str(workdir), "<workdir>")
    # both a job's value and its exception made it back
    assert {status for _, status, _, _, _ in trials_of["true"]} == {"complete", "failed"}, trials_of["true"]
    assert trials_of["false"] == trials_of["true"]
    assert files_of["false"] == files_of["true"]
