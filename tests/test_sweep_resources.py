"""Trial resources and retries, for real (subprocesses, signals, the operating system's limits, MLflow):

* a trial that allocates past its memory limit fails with the limit in its reason; the sweep and the other slot go on;
* a trial whose process is SIGKILLed once from outside is retried (same number and params, a new attempt) and
  completes; ``n_trials`` counts trials; the trials table has a row per attempt;
* an exception, a NaN objective or the trial's own segfault is never retried;
* a timed-out trial is retried when asked, and MLflow has a run per attempt;
* ``trial_gpus``: distinct devices per slot; refused in one line without GPUs or with too few;
* an attempt interrupted with the sweep is a row of the trials table once the sweep resumes.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_sweep import SMALL  # the tiny LightGBM sweep of the end-to-end tests
from test_sweep_failures import error_lines, qframe, scratch

from qframe.core.errors import ConfigError
from qframe.launch.devices import DeviceSlots, visible_devices
from qframe.launch.limits import CgroupTrials, TrialLimits, format_size, parse_size, resolve_memory

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "tests" / "sweep_toy" / "toy_app.py"


def toy_env(tmp, **extra):
    out = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING", "CUDA_"))}
    out.update(MLFLOW_DISABLE_TELEMETRY="true", TMPDIR=str(scratch(tmp)), **extra)
    return out


def toy_argv(sweep, log, *args):
    return [sys.executable, str(TOY), "-m", f"hydra.sweep.dir={sweep}", f"log={log}", "hydra.launcher.preload=false",
            *args]  # fmt: skip


def toy(tmp, sweep, log, *args, **env):
    argv = toy_argv(sweep, log, *args)
    return subprocess.run(argv, cwd=tmp, env=toy_env(tmp, **env), capture_output=True, text=True, timeout=120)


def state(sweep):
    return json.loads((Path(sweep) / "sweep_state.json").read_text())["trials"]


def log_lines(log, kind):
    return [line.split() for line in Path(log).read_text().splitlines() if line.startswith(kind + " ")]


def test_a_trial_past_its_memory_limit_fails_with_the_limit_while_the_sweep_and_other_slot_go_on(tmp_path):
    sweep, log = tmp_path / "sweep", tmp_path / "jobs.log"
    # job 0 writes 300 MB against a 200 MB limit; the other jobs allocate nothing (bounded memory on a shared box)
    args = ["hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=2", "failures=[alloc]", "alloc_mb=300", "sleep=0.5",
            "hydra.sweeper.trial_memory=200MB", "hydra.sweeper.max_failure_rate=1"]  # fmt: skip
    proc = toy(tmp_path, sweep, log, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("may use up to 200 MB of memory") == 1, proc.stdout  # stated once, at the start
    trials = {t["job"]: t for t in state(sweep)}
    assert trials[0]["status"] == "failed"
    assert trials[0]["error"].startswith("memory limit exceeded (200 MB)"), trials[0]["error"]
    assert [trials[j]["status"] for j in (1, 2)] == ["complete", "complete"]
    # the other slot ran while the trial went over its limit, and went on to the end
    starts = {int(job): float(t) for _, job, _, _, t in log_lines(log, "start")}
    assert starts[1] < trials[0]["ended"]
    assert {int(line[1]) for line in log_lines(log, "done")} == {1, 2}


def test_a_trial_sigkilled_once_from_outside_is_retried_and_completes(tmp_path):
    sweep, log = tmp_path / "sweep", tmp_path / "jobs.log"
    argv = toy_argv(sweep, log, "hydra.sweeper.n_trials=2", "hydra.sweeper.max_retries=1", "sleep=1.5")
    sweeper = subprocess.Popen(argv, cwd=tmp_path, env=toy_env(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (log.is_file() and log_lines(log, "pid")) and time.monotonic() < deadline:
        time.sleep(0.05)
    (_, job, pid, _), *_ = log_lines(log, "pid")
    assert job == "0"
    os.kill(int(pid), signal.SIGKILL)  # from outside: not the trial's own doing
    out, err = sweeper.communicate(timeout=90)
    assert sweeper.returncode == 0, err[-3000:]
    trials = state(sweep)
    assert len(trials) == 2  # n_trials counts trials, not attempts
    first = trials[0]
    assert first["number"] == 0 and first["status"] == "complete" and first["attempts"] == 2
    (earlier,) = first["history"]
    assert earlier["attempt"] == 1 and earlier["job"] == 0 and earlier["status"] == "retried"
    assert earlier["error"] == "the job process died by SIGKILL"
    # the retry ran the same params under a new job number
    starts = log_lines(log, "start")
    assert [s[1] for s in starts[:2]] == ["0", str(first["job"])] and starts[0][2:4] == starts[1][2:4]
    assert "trial 0 attempt 1 (job 0) failed transiently" in out
    table = pd.read_csv(sweep / "trials.csv")
    assert list(zip(table["trial"], table["attempt"], table["status"], strict=True)) == [
        (0, 1, "retried"), (0, 2, "complete"), (1, 1, "complete")]  # fmt: skip


def test_an_exception_a_nan_or_the_trials_own_segfault_is_never_retried(tmp_path):
    sweep, log = tmp_path / "sweep", tmp_path / "jobs.log"
    proc = toy(tmp_path, sweep, log, "hydra.sweeper.n_trials=3", "hydra.sweeper.max_retries=3",
               "hydra.sweeper.max_failure_rate=1", "failures=[raise,nan_value,segv]")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = state(sweep)
    assert [t["status"] for t in trials] == ["failed"] * 3
    assert all(t["attempts"] == 1 and not t["history"] for t in trials), trials
    assert "planted failure" in trials[0]["error"] and trials[1]["error"] == "the job returned nan"
    assert "SIGSEGV" in trials[2]["error"]
    assert len(log_lines(log, "start")) == 3  # one attempt each
    assert "transiently" not in proc.stdout


def test_a_timed_out_trial_is_retried_when_asked_and_mlflow_has_a_run_per_attempt(tmp_path):
    sweep = tmp_path / "sweep"
    proc = qframe([f"hydra.sweep.dir={sweep}", "tuner=lightgbm", "hydra.sweeper.n_trials=1",
                   "hydra.sweeper.trial_timeout=1", "hydra.sweeper.max_retries=1", "hydra.sweeper.retry_timeouts=true",
                   "hydra.sweeper.max_failure_rate=1", *SMALL,
                   "model.num_boost_round=100000", "model.early_stopping_rounds=100000"], tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (trial,) = state(sweep)
    assert trial["status"] == "failed" and trial["attempts"] == 2 and trial["error"].startswith("timed out")
    assert [a["status"] for a in trial["history"]] == ["retried"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / '.qframe' / 'mlflow.db'}")
    runs = [r for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
            if r.data.tags.get("mlflow.parentRunId")]  # fmt: skip
    by_attempt = {r.data.tags.get("qframe.attempt"): r for r in runs}
    assert set(by_attempt) == {"1", "2"} and {r.data.tags["qframe.trial"] for r in runs} == {"0"}
    assert all(r.info.status == "FAILED" for r in runs)
    assert by_attempt["1"].data.tags["qframe.error"].startswith("retried: timed out after 1 s")
    assert by_attempt["2"].data.tags["qframe.error"] == trial["error"]


def test_each_slot_gets_its_own_devices(tmp_path):
    sweep, log = tmp_path / "sweep", tmp_path / "jobs.log"
    # the devices the sweep is given (no CUDA is initialised: the toy only reads its CUDA_VISIBLE_DEVICES)
    proc = toy(tmp_path, sweep, log, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", "hydra.sweeper.trial_gpus=1",
               "sleep=0.3", CUDA_VISIBLE_DEVICES="3,5")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GPUs per trial: slot 0: GPU 3; slot 1: GPU 5" in proc.stdout
    gpus = {int(job): dev for _, job, _, dev in log_lines(log, "pid")}
    assert set(gpus.values()) == {"3", "5"}
    trials = sorted(state(sweep), key=lambda t: t["started"])
    for a, b in zip(trials, trials[1:], strict=False):  # two trials that overlap never share a device
        if b["started"] < a["ended"]:
            assert gpus[a["job"]] != gpus[b["job"]]


def test_trial_gpus_without_gpus_or_with_too_few_is_one_line(tmp_path):
    sweep, log = tmp_path / "sweep", tmp_path / "jobs.log"
    proc = toy(tmp_path, sweep, log, "hydra.sweeper.trial_gpus=1", CUDA_VISIBLE_DEVICES="")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = error_lines(proc)
    assert "trial_gpus=1 but this machine has no GPU" in line
    assert not sweep.exists() or not (sweep / "sweep_state.json").exists()  # refused before any trial
    proc = toy(tmp_path, sweep, log, "hydra.sweeper.trial_gpus=1", "hydra.sweeper.n_jobs=3", CUDA_VISIBLE_DEVICES="0,1")
    (line,) = error_lines(proc)
    assert "needs 3 GPUs, this machine has 2" in line and "n_jobs to 2" in line


def test_the_gpu_slots_hand_out_distinct_devices_and_free_them():
    slots = DeviceSlots(2, 2, devices=["0", "1", "2", "3"])
    assert [slots.acquire(10), slots.acquire(11)] == ["0,1", "2,3"]
    with pytest.raises(RuntimeError):
        slots.acquire(12)
    slots.release(10)
    assert slots.acquire(12) == "0,1"
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "2, 7"}) == ["2", "7"]
    assert visible_devices({}, driver=Path("/nonexistent")) == []


def test_sizes_and_the_default_share_of_memory():
    assert parse_size("4GB") == 4 * 1024**3 and parse_size("512MiB") == 512 * 1024**2 and parse_size(1000) == 1000
    assert format_size(4 * 1024**3) == "4 GB" and format_size(200 * 1024**2) == "200 MB"
    for bad in ("lots", "-1GB", 0):
        with pytest.raises(ConfigError, match="trial_memory"):
            parse_size(bad)
    one, _ = resolve_memory("auto", 1)
    four, how = resolve_memory("auto", 4)
    assert abs(one / 4 - four) <= 1 and "75%" in how
    assert resolve_memory(None, 2)[0] is None
    limits = TrialLimits.create("200MB", 2)
    assert limits.explain(0, "MemoryError: ") == "memory limit exceeded (200 MB): MemoryError: "
    assert limits.explain(0, "RuntimeError: planted") == "RuntimeError: planted"
    if limits.mechanism == "address-space limit":  # no delegated cgroup here: with GPUs, CUDA must not be limited
        cuda = TrialLimits.create("200MB", 2, gpus=True)
        assert cuda.memory is None and "would break CUDA" in cuda.describe(2)


def test_trial_cgroups_are_made_limited_and_read_in_a_delegated_tree(tmp_path):
    # the files of a delegated cgroup v2 directory (this machine has no memory controller to delegate): what
    # qframe writes and reads there
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("memory\n")
    trials, why = CgroupTrials.open(tmp_path)
    assert trials is not None, why
    path = trials.create(7, 200 * 1024**2)
    assert path.parent == tmp_path and (path / "memory.max").read_text() == str(200 * 1024**2)
    assert not trials.oom_killed(path)
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert trials.oom_killed(path)
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "cgroup.controllers").write_text("cpu pids\n")
    assert CgroupTrials.open(tmp_path / "none")[0] is None


def test_an_attempt_interrupted_with_the_sweep_is_a_row_of_the_trials_table_after_resume(tmp_path):
    sweep, log = tmp_path / "sweep", tmp_path / "jobs.log"
    argv = toy_argv(sweep, log, "hydra.sweeper.n_trials=1", "sleep=3")
    sweeper = subprocess.Popen(argv, cwd=tmp_path, env=toy_env(tmp_path), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (log.is_file() and log_lines(log, "pid")) and time.monotonic() < deadline:
        time.sleep(0.05)
    sweeper.kill()  # the sweep dies (its trial with it)
    sweeper.wait(timeout=30)
    proc = toy(tmp_path, sweep, log, "hydra.sweeper.n_trials=1", "sleep=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (trial,) = state(sweep)
    assert trial["status"] == "complete" and trial["attempts"] == 2
    assert [a["status"] for a in trial["history"]] == ["interrupted"]
    table = pd.read_csv(sweep / "trials.csv")
    assert list(zip(table["attempt"], table["status"], strict=True)) == [(1, "interrupted"), (2, "complete")]
