"""Threads per trial: with k trials at a time on c cores, each job gets QFRAME_THREADS=max(1, c // k) through its
``hydra.job.env_set``, unless model.num_threads is set or one trial runs at a time. The toy app records the variable
as its job sees it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from qframe.launch.threads import THREADS_ENV, job_threads, threads_per_job

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "tests" / "sweep_toy" / "toy_app.py"
CORES = len(os.sched_getaffinity(0))


def env():
    out = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    out["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return out


def toy(args, cwd):
    preload = [] if any(a.startswith("hydra/launcher=") for a in args) else ["hydra.launcher.preload=false"]
    argv = [sys.executable, str(TOY), "-m", *args, *preload]
    return subprocess.run(argv, cwd=cwd, env=env(), capture_output=True, text=True, timeout=180)


def job_threads_seen(log):
    """{job number: QFRAME_THREADS as the job saw it ("-": unset)}."""
    out = {}
    for line in Path(log).read_text().splitlines():
        if line.startswith("threads "):
            _, job, value = line.split()
            out[int(job)] = value
    return out


def test_threads_per_job_shares_the_cores_and_an_explicit_count_wins():
    assert threads_per_job(1) == CORES
    assert threads_per_job(2) == max(1, CORES // 2)
    assert threads_per_job(CORES * 4) == 1
    assert job_threads(OmegaConf.create({"model": {"num_threads": None}}), 2) == max(1, CORES // 2)
    assert job_threads(OmegaConf.create({"model": {"name": "linear"}}), 2) == max(1, CORES // 2)  # key absent
    assert job_threads(OmegaConf.create({"model": {"num_threads": None}}), 1) is None
    assert job_threads(OmegaConf.create({"model": {"num_threads": 3}}), 2) is None
    assert job_threads(OmegaConf.create({"x": 1}), 2) is None  # not a model config


def test_a_sweep_with_two_slots_passes_each_trial_its_thread_count(tmp_path):
    log = tmp_path / "log"
    proc = toy([f"hydra.sweep.dir={tmp_path / 'sweep'}", f"log={log}", "hydra.sweeper.n_jobs=2"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n = max(1, CORES // 2)
    assert job_threads_seen(log) == {job: str(n) for job in range(6)}
    line = f"2 trials at a time on {CORES} core{'s' * (CORES != 1)}: each trial's model uses {n} thread"
    assert proc.stdout.count(line) == 1, proc.stdout
    assert "(set model.num_threads to change)" in proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["hydra.sweeper.n_jobs=1"],
        ["hydra.sweeper.n_jobs=2", "model.num_threads=3"],  # explicit: wins
        ["hydra.sweeper.n_jobs=2", "model.num_threads=choice(1,2)"],  # searched: the trial's own value
        ["hydra.sweeper.n_jobs=2", "hydra/launcher=basic"],  # a batch runs one trial after another
    ],
    ids=["one-slot", "explicit", "searched", "basic-launcher"],
)
def test_no_thread_count_without_parallel_trials_or_with_an_explicit_one(tmp_path, args):
    log = tmp_path / "log"
    proc = toy([f"hydra.sweep.dir={tmp_path / 'sweep'}", f"log={log}", "hydra.sweeper.n_trials=4", *args], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(job_threads_seen(log).values()) == {"-"}
    assert "at a time on" not in proc.stdout


def test_batches_on_a_parallel_launcher_get_the_thread_count(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="hydra-joblib-launcher is not installed")
    log = tmp_path / "log"
    args = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=4"]
    proc = toy([f"hydra.sweep.dir={tmp_path / 'sweep'}", f"log={log}", *args], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert job_threads_seen(log) == {job: str(max(1, CORES // 2)) for job in range(4)}


@pytest.mark.parametrize(("n_jobs", "extra"), [(2, []), (1, []), (2, ["model.num_threads=2"])])
def test_a_plain_grid_on_the_fork_launcher(tmp_path, n_jobs, extra):
    """Hydra's basic sweeper hands the fork launcher a batch: n_jobs > 1 of them share the cores."""
    log = tmp_path / "log"
    args = [f"hydra.sweep.dir={tmp_path / 'grid'}", f"log={log}", "x=0.1,0.2,0.3", f"hydra.launcher.n_jobs={n_jobs}"]
    proc = toy(["--config-name", "grid", *args, *extra], tmp_path)  # argparse: the flag before the overrides
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = str(max(1, CORES // 2)) if n_jobs == 2 and not extra else "-"
    assert job_threads_seen(log) == {0: expected, 1: expected, 2: expected}
    output = proc.stdout + proc.stderr
    assert output.count("jobs at a time on") == (1 if expected != "-" else 0), output
    if expected != "-":
        assert f"2 jobs at a time on {CORES} core" in output and "set model.num_threads to change" in output
        assert THREADS_ENV not in output  # the jobs' log lines show their own overrides, not the hydra.* ones


def test_a_qframe_grid_with_two_jobs_records_the_thread_count_in_each_job(tmp_path):
    grid = tmp_path / "grid"
    args = ["model=linear", "model.alpha=0.1,1.0", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={grid}"]
    market = ["dataset.n_instruments=40", "dataset.n_days=320", "strategy.topk=5", "strategy.n_drop=1"]
    proc = subprocess.run(
        [sys.executable, "-m", "qframe", "-m", *args, *market],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"2 jobs at a time on {CORES} core" in proc.stdout + proc.stderr
    for job in (0, 1):
        hydra_cfg = yaml.safe_load((grid / str(job) / ".hydra" / "hydra.yaml").read_text())
        assert hydra_cfg["hydra"]["job"]["env_set"][THREADS_ENV] == str(max(1, CORES // 2))
