"""A sweep's processes, for real: its trials (and what they start) die with it, SIGTERM/SIGINT stop it cleanly, a
resume retries an interrupted trial once and never twice, and one directory belongs to one process.

Every process a test starts carries a marker in its environment (``TOY_MARKER``), inherited by the sweep's forked
trials and by what they start; "no orphan" means no live process with the marker is left.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "tests" / "sweep_toy" / "toy_app.py"
MARKET = ["dataset.n_instruments=40", "dataset.n_days=320", "strategy.topk=5", "strategy.n_drop=1", "model=linear"]


def env(marker):
    out = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    out["MLFLOW_DISABLE_TELEMETRY"] = "true"
    out["TOY_MARKER"] = marker
    return out


def toy_argv(args):
    return [sys.executable, str(TOY), "-m", *args, "hydra.launcher.preload=false"]


def start_toy(args, cwd, marker):
    return subprocess.Popen(
        toy_argv(args), cwd=cwd, env=env(marker), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def marked(marker):
    """PIDs of live (not zombie) processes whose environment carries ``marker``."""
    needle = f"TOY_MARKER={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if needle not in fh.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2] != "Z":
            found.append(int(entry))
    return found


def none_left(marker, within=5.0):
    """Whether every marked process is gone within ``within`` seconds (the kernel delivers kills asynchronously)."""
    deadline = time.time() + within
    while marked(marker):
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


def state(sweep_dir):
    return json.loads((Path(sweep_dir) / "sweep_state.json").read_text())


def wait_for(predicate, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_a_signalled_sweep_takes_its_trials_with_it_and_resume_completes(tmp_path, signum):
    """Trials 1 and 2 hang (1 has started a ``sleep 60`` of its own) when the sweep gets ``signum``; nothing of the
    sweep runs on, and the resumed sweep ends with exactly n_trials trials, each run to its end once."""
    marker = uuid.uuid4().hex
    sweep, log = tmp_path / "sweep", tmp_path / "runs.log"
    args = [f"hydra.sweep.dir={sweep}", f"log={log}", "failures=[ok,spawn_hang,hang]", "sleep=0.2"]
    args += ["hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=2"]
    proc = start_toy(args, tmp_path, marker)
    try:
        wait_for(lambda: "spawned 1" in log.read_text() and "start 2" in log.read_text())
        wait_for(lambda: [t["status"] for t in state(sweep)["trials"]] == ["complete", "running", "running"])
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == (-9 if signum == signal.SIGKILL else 128 + signum), err[-3000:]
    trials = state(sweep)["trials"]
    assert [t["status"] for t in trials] == ["complete", "running", "running"]
    # the trials die with the sweep (the parent-death signal, kill -9 included)
    trial_pids = {t["owner"]["pid"] for t in trials[1:]}
    wait_for(lambda: not trial_pids & set(marked(marker)), timeout=5)
    assert none_left(marker)  # what a trial started dies with its process group, kill -9 of the sweep included
    if signum != signal.SIGKILL:
        name = signal.Signals(signum).name
        assert err.strip() == (
            f"qframe: sweep stopped by {name}; its state is saved: continue it with the same command and "
            f"hydra.sweep.dir={sweep}"
        ), err[-3000:]

    again = subprocess.run(toy_argv(args), cwd=tmp_path, env=env(marker), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 interrupted (retried)" in again.stdout
    assert none_left(marker)
    after = state(sweep)["trials"]
    assert [t["number"] for t in after] == list(range(6)) and all(t["status"] == "complete" for t in after)
    assert all(t["owner"] is None for t in after)
    lines = log.read_text().splitlines()
    done_jobs = [int(line.split()[1]) for line in lines if line.startswith("done ")]
    assert sorted(done_jobs) == sorted(t["job"] for t in after)  # one result per trial; the hung attempts never
    assert 1 not in done_jobs and 2 not in done_jobs


def test_a_timed_out_trial_leaves_nothing_it_started(tmp_path):
    marker = uuid.uuid4().hex
    sweep, log = tmp_path / "sweep", tmp_path / "runs.log"
    args = [f"hydra.sweep.dir={sweep}", f"log={log}", "failures=[spawn_hang]", "hydra.sweeper.trial_timeout=2"]
    proc = start_toy([*args, "hydra.sweeper.n_trials=2", "hydra.sweeper.max_failure_rate=1"], tmp_path, marker)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    (spawned,) = [int(line.split()[2]) for line in log.read_text().splitlines() if line.startswith("spawned")]
    assert none_left(marker, within=2.0) and spawned not in marked(marker)
    trials = state(sweep)["trials"]
    assert trials[0]["status"] == "failed" and "timed out after 2 s (killed)" in trials[0]["error"]


def test_two_sweeps_of_one_dir_one_runs_the_other_gets_one_line(tmp_path):
    marker = uuid.uuid4().hex
    sweep = tmp_path / "sweep"
    args = [f"hydra.sweep.dir={sweep}", "sleep=1.5", "hydra.sweeper.n_trials=4"]
    procs = [start_toy(args, tmp_path, marker) for _ in range(2)]
    errs = [p.communicate(timeout=120)[1] for p in procs]  # reads the pipes to the end: no process blocks on them
    (ok, ok_err), (refused, refused_err) = sorted(zip((p.returncode for p in procs), errs, strict=True))
    assert ok == 0, ok_err[-3000:]
    assert refused == 2, refused_err[-3000:]
    (line,) = refused_err.strip().splitlines()
    host = os.uname().nodename
    assert line.startswith(f"qframe: error: the sweep in {sweep} is running in another process (PID ")
    assert f" on {host}, since " in line and line.endswith("or give this sweep another hydra.sweep.dir")
    trials = state(sweep)["trials"]
    assert len(trials) == 4 and len({t["job"] for t in trials}) == 4  # ran once, not twice

    # the lock of a process that died is free: a new sweep takes the directory over
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"pid": int(dead.stdout), "host": host, "since": "2000-01-01 00:00:00 UTC"}
    (sweep / ".sweep.lock").write_text(json.dumps(stale))
    more = subprocess.run(
        toy_argv([*args[:1], "sleep=1.5", "hydra.sweeper.n_trials=5"]),
        cwd=tmp_path,
        env=env(marker),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert more.returncode == 0, more.stderr[-3000:]
    assert len(state(sweep)["trials"]) == 5
    assert json.loads((sweep / ".sweep.lock").read_text())["pid"] != stale["pid"]


def test_concurrent_single_runs_get_their_own_output_dirs(tmp_path):
    marker = uuid.uuid4().hex
    # the output directories are what is tested: no random-score controls or plots in the 8 runs
    argv = [sys.executable, "-m", "qframe", *MARKET, "evaluation.controls.enabled=false", "recording.plots=false"]
    procs = [
        subprocess.Popen(argv, cwd=tmp_path, env=env(marker), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    dirs = sorted(tmp_path.glob(".qframe/outputs/*/*"))
    assert len(dirs) == 8, dirs
    pids = {p.pid for p in procs}
    assert {int(d.name.rsplit("-", 1)[1]) for d in dirs} == pids  # <time>-<pid>: each process its own


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_qframe_sweep_marks_its_runs_killed_and_resume_logs_one_run_per_trial(tmp_path, signum):
    """SIGTERM mid-trial: the trial's run and the parent are KILLED at once (after kill -9: by the resumed sweep);
    the resumed sweep ends with exactly one FINISHED run per trial under the same parent, nothing left RUNNING."""
    from mlflow.tracking import MlflowClient

    marker = uuid.uuid4().hex
    sweep = tmp_path / "sweep"
    argv = [sys.executable, "-m", "qframe", "-m", "hydra/sweeper=hyperopt", "model.alpha=interval(0.01,1)", *MARKET]
    argv += [f"hydra.sweep.dir={sweep}", "hydra.sweeper.n_trials=3"]
    db = tmp_path / ".qframe" / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")

    def runs():
        return client.search_runs([e.experiment_id for e in client.search_experiments()])

    def running_trial():
        """The trial number of a trial run that is RUNNING now (None: none is)."""
        if not db.is_file():
            return None  # the sweep creates the store
        return next(
            (
                r.data.tags["qframe.trial"]
                for r in runs()
                if r.info.status == "RUNNING" and "qframe.trial" in r.data.tags
            ),
            None,
        )

    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=env(marker), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: running_trial() is not None, timeout=300)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert none_left(marker)
    (parent,) = [r for r in runs() if r.data.tags.get("qframe.kind") == "sweep"]
    if signum == signal.SIGTERM:
        assert proc.returncode == 143, err[-3000:]
        assert "Traceback" not in err and "qframe: sweep stopped by SIGTERM" in err
        assert parent.info.status == "KILLED"
        assert "RUNNING" not in {r.info.status for r in runs()}
        why = "interrupted: the sweep was stopped while it ran"
    else:
        assert parent.info.status == "RUNNING"  # nothing could end it
        why = "interrupted: the sweep died while it ran"

    again = subprocess.run(argv, cwd=tmp_path, env=env(marker), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    (killed,) = [r for r in runs() if r.info.status == "KILLED" and "qframe.trial" in r.data.tags]
    assert killed.data.tags["qframe.error"] == why
    children = [r for r in runs() if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    finished = sorted(int(r.data.tags["qframe.trial"]) for r in children if r.info.status == "FINISHED")
    assert finished == [0, 1, 2]  # the interrupted trial once more, and no second result for any trial
    assert sorted(r.info.run_id for r in children if r.info.status == "KILLED") == [killed.info.run_id]
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_grid_on_the_fork_launcher_stops_in_one_line(tmp_path, signum):
    """A plain grid (Hydra's basic sweeper) on the fork launcher: SIGTERM or Ctrl-C kills its running jobs and what
    they started, and ends in one line with the signal's exit status, no traceback."""
    marker = uuid.uuid4().hex
    log = tmp_path / "runs.log"
    args = [f"hydra.sweep.dir={tmp_path / 'grid'}", f"log={log}", "x=0.1,0.2,0.3", "failures=[ok,spawn_hang]"]
    proc = subprocess.Popen(
        [sys.executable, str(TOY), "--config-name", "grid", "-m", *args, "hydra.launcher.preload=false"],
        cwd=tmp_path,
        env=env(marker),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: log.is_file() and "spawned 1" in log.read_text())
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err[-3000:]
    assert "Traceback" not in err
    name = signal.Signals(signum).name
    (line,) = [line for line in err.splitlines() if line.startswith("qframe:")]
    assert line.startswith(f"qframe: grid stopped by {name}: 1 of 3 jobs had finished"), err[-3000:]
    assert none_left(marker)


def test_a_grid_stopped_by_sigterm_leaves_its_running_jobs_runs_killed_with_their_params(tmp_path):
    """No parent run settles a plain grid's runs: each running job ends its own MLflow run (KILLED, with its params
    and why) before the grid kills its group, so no run stays RUNNING."""
    from mlflow.tracking import MlflowClient

    marker = uuid.uuid4().hex
    started = tmp_path / "fits.log"
    model = f"+model={{_target_:adhoc_components.SlowFit,started:{started},seconds:120}}"
    argv = [sys.executable, "-m", "qframe", "-m", "~model", model, "dataset.seed=0,1", *MARKET[:-1]]
    argv += ["hydra.launcher.n_jobs=2", "hydra.launcher.preload=false", f"workdir={tmp_path / 'wd'}"]
    proc = subprocess.Popen(
        argv,
        cwd=tmp_path,
        env={**env(marker), "PYTHONPATH": str(ROOT / "tests")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: started.is_file() and len(started.read_text().split()) == 2, timeout=120)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-3000:]
    assert "qframe: grid stopped by SIGTERM: 0 of 2 jobs had finished" in err, err[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'wd' / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.data.params["dataset.seed"] for r in runs) == ["0", "1"]
    assert {r.info.status for r in runs} == {"KILLED"}
    assert {r.data.tags["qframe.error"] for r in runs} == {"stopped: the sweep was interrupted"}
    assert none_left(marker)


def test_a_trial_that_outlives_its_sweep_elsewhere_is_waited_for_then_its_result_kept(tmp_path):
    """Trials the sweep knows only by their leases (joblib's workers here; Ray's or Slurm's on other hosts): killed
    with kill -9, the sweep leaves them running; a resume while one runs is refused in one line naming it, and once
    it has ended its result is adopted: no trial runs twice."""
    marker = uuid.uuid4().hex
    sweep, log = tmp_path / "sweep", tmp_path / "runs.log"
    args = [f"hydra.sweep.dir={sweep}", f"log={log}", "lease=true", "sleep=6", "hydra.sweeper.n_trials=2"]
    args += ["hydra.sweeper.n_jobs=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    argv = [sys.executable, str(TOY), "-m", *args]
    # no pipes: the orphaned workers would hold them open
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env(marker), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(list(sweep.glob("*/trial_lease.json"))) == 2, timeout=120)
        proc.kill()
        proc.wait(timeout=30)
        refused = subprocess.run(argv, cwd=tmp_path, env=env(marker), capture_output=True, text=True)
        assert refused.returncode == 2, refused.stderr[-3000:]
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith("qframe: error: trial ") and " is still running on " in line, line
        assert "wait for it to end (its result is then kept)" in line
        wait_for(lambda: log.read_text().count("done ") == 2, timeout=60)  # the orphans finish on their own
        again = subprocess.run(argv, cwd=tmp_path, env=env(marker), capture_output=True, text=True)
    finally:
        proc.kill()
        for pid in marked(marker):
            os.kill(pid, signal.SIGKILL)
    assert again.returncode == 0, again.stderr[-3000:]
    assert log.read_text().count("start ") == 2  # adopted, not run again
    trials = json.loads((sweep / "sweep_state.json").read_text())["trials"]
    done = {line.split()[1]: float(line.split()[2]) for line in log.read_text().splitlines() if line.startswith("done")}
    assert [t["status"] for t in trials] == ["complete", "complete"]
    assert sorted(t["params"]["x"] for t in trials) == pytest.approx(sorted(done.values()))
