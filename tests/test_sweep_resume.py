"""Resume semantics, for real: sweeps of the toy app (and one tiny qframe sweep with MLflow) in subprocesses, an
unfinished sweep made by killing one with SIGKILL mid-way.

* ``hydra.sweeper.resume=true`` continues the newest *unfinished* sweep of the same command (search space, fixed
  overrides, direction) under the sweeps root, even when a newer finished one exists, and skips other commands;
* a sweep with nothing left to do (finished, or stopped by ``max_failure_rate``) is reported and left as it is: no
  trial, no file written, no MLflow run created or changed;
* no sweep of the command to continue: one ``qframe: error:`` line naming where it looked (exit status 2).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "tests" / "sweep_toy" / "toy_app.py"
MARKET = ["dataset.n_instruments=40", "dataset.n_days=320", "strategy.topk=5", "strategy.n_drop=1"]


def env():
    out = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    out["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return out


def toy_argv(args):
    return [sys.executable, str(TOY), "-m", *args, "hydra.launcher.preload=false"]


def toy(args, cwd, timeout=120):
    return subprocess.run(toy_argv(args), cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)


def qframe(args, cwd, timeout=300):
    argv = [sys.executable, "-m", "qframe", "-m", *args]
    return subprocess.run(argv, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)


def state(sweep_dir):
    return json.loads((Path(sweep_dir) / "sweep_state.json").read_text())


def done(sweep_dir):
    return sum(t["status"] in ("complete", "failed") for t in state(sweep_dir)["trials"])


def files(root):
    """Every file under ``root`` with its mtime (ns) and size: what "changes nothing" compares."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()}


def sweep_dirs(root):
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*") if p.is_dir())


def killed_mid_way(args, cwd, sweep_dir, complete=2):
    """Start a toy sweep, SIGKILL it (and its running trials) once ``complete`` trials are done."""
    proc = subprocess.Popen(
        toy_argv(args), cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if sum(t["status"] == "complete" for t in state(sweep_dir)["trials"]) >= complete:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_resume_true_continues_the_newest_unfinished_sweep_of_this_command(tmp_path):
    root = tmp_path / "multirun"
    command = ["sleep=0.3", "hydra.sweeper.n_trials=8", "hydra.sweeper.n_jobs=2"]
    unfinished = "multirun/2000-01-01/00-00-00"
    killed_mid_way([*command, f"hydra.sweep.dir={unfinished}"], tmp_path, tmp_path / unfinished)
    before = state(tmp_path / unfinished)["trials"]
    assert 2 <= done(tmp_path / unfinished) < 8 and any(t["status"] == "running" for t in before)

    # the same command again, in a new (time-stamped) sweep dir: it runs to the end, and says how to resume instead
    newer = toy(command, tmp_path)
    assert newer.returncode == 0, newer.stderr[-3000:]
    assert f"an unfinished sweep of this command is in {unfinished}" in newer.stdout
    assert "add hydra.sweeper.resume=true to continue it instead" in newer.stdout
    (finished,) = [d for d in sweep_dirs(root) if not d.startswith("2000-")]
    assert done(root / finished) == 8
    # newest of all, and short of 8 trials: sweeps of other commands (a different fixed override, a different space)
    other_fixed = toy(
        ["sleep=0.0", "hydra.sweeper.n_trials=2", "hydra.sweep.dir=multirun/2000-01-02/00-00-00"], tmp_path
    )
    other_space = toy(
        ["x=interval(0,0.5)", "sleep=0.3", "hydra.sweeper.n_trials=2", "hydra.sweep.dir=multirun/2000-01-02/00-00-01"],
        tmp_path,
    )
    assert other_fixed.returncode == other_space.returncode == 0
    dirs = sweep_dirs(root)
    untouched = {k: v for k, v in files(root).items() if not k.startswith("2000-01-01")}

    resumed = toy([*command, "hydra.sweeper.resume=true"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    line = next(x for x in resumed.stdout.splitlines() if x.startswith("resuming the sweep in"))
    assert line.startswith(f"resuming the sweep in {unfinished}: ") and " of 8 trials done " in line, line
    assert "interrupted (retried)" in line
    after = state(tmp_path / unfinished)["trials"]
    assert done(tmp_path / unfinished) == 8 and all(t["status"] == "complete" for t in after)
    for t in before:
        if t["status"] == "complete":
            assert after[t["number"]]["value"] == t["value"]
    assert sweep_dirs(root) == dirs  # no new sweep dir
    assert {k: v for k, v in files(root).items() if not k.startswith("2000-01-01")} == untouched

    # every sweep of the command is finished now: resume=true names the newest, and does nothing
    snapshot = files(root)
    again = toy([*command, "hydra.sweeper.resume=true"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"sweep {unfinished} is already finished: 8 of 8 trials (8 complete, 0 failed); best objective = " in (
        again.stdout
    )
    assert "nothing to do (raise hydra.sweeper.n_trials to continue it)" in again.stdout
    assert files(root) == snapshot and sweep_dirs(root) == dirs


def test_resume_true_without_a_sweep_of_this_command_is_one_error_line(tmp_path):
    proc = toy(["hydra.sweeper.resume=true"], tmp_path)
    assert proc.returncode == 2
    assert (
        "qframe: error: hydra.sweeper.resume=true but no sweep of this command to continue under multirun "
        "(no sweep there at all); run it without hydra.sweeper.resume=true to start a new sweep"
    ) in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "multirun").exists()
    other = toy(["hydra.sweeper.n_trials=1", "sleep=0.01"], tmp_path)
    assert other.returncode == 0, other.stderr[-2000:]
    proc = toy(["hydra.sweeper.resume=true"], tmp_path)
    assert proc.returncode == 2 and "found 1 sweep(s) of other commands" in proc.stderr, proc.stderr[-2000:]
    assert len(sweep_dirs(tmp_path / "multirun")) == 1


def test_a_sweep_stopped_by_max_failure_rate_is_left_as_it_is_until_the_rate_allows_more(tmp_path):
    sweep = tmp_path / "sweep"
    command = [f"hydra.sweep.dir={sweep}", "failures=[raise,raise,raise]", "hydra.sweeper.n_trials=6"]
    first = toy([*command, "hydra.sweeper.max_failure_rate=0.4"], tmp_path)
    assert first.returncode == 2 and "sweep stopped: 3 of 6 trials failed" in first.stderr
    snapshot = files(sweep)
    again = toy([*command, "hydra.sweeper.max_failure_rate=0.4"], tmp_path)
    assert again.returncode == 2
    # why it stopped (with its most common error) and what to change
    assert (
        f"qframe: error: sweep {sweep} stopped: 3 of 6 trials failed (0 complete), more than max_failure_rate=0.4 "
        "allows; most common error (1 of 3): RuntimeError: planted failure in job 0; no trial completed; nothing to "
        "do (fix the setting that fails, or raise hydra.sweeper.max_failure_rate and add hydra.sweeper.resume=true "
        "to continue it)"
    ) in again.stderr
    assert files(sweep) == snapshot
    more = toy([*command, "hydra.sweeper.max_failure_rate=0.5"], tmp_path)
    assert more.returncode == 0, more.stderr[-2000:]
    assert "resuming the sweep in" in more.stdout
    assert [t["status"] for t in state(sweep)["trials"]] == ["failed"] * 3 + ["complete"] * 3


def test_a_finished_qframe_sweep_changes_nothing_and_more_trials_continue_it(tmp_path):
    """A real qframe sweep with MLflow: re-running a finished one (resume=true, or its dir) writes nothing at all,
    MLflow included; raising n_trials continues it under the same parent run."""
    from mlflow.tracking import MlflowClient

    command = ["hydra/sweeper=hyperopt", "model=linear", "model.alpha=interval(0.01,1)", *MARKET]
    first = qframe([*command, "hydra.sweeper.n_trials=1"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    (path,) = tmp_path.glob(".qframe/multirun/*/*/sweep_state.json")
    sweep = path.parent
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / '.qframe' / 'mlflow.db'}")

    def runs():
        found = client.search_runs([e.experiment_id for e in client.search_experiments()])
        return {r.info.run_id: (r.info.status, r.info.end_time, r.data.tags.get("qframe.kind")) for r in found}

    runs_before = runs()
    assert len(runs_before) == 2  # the parent and its trial
    snapshot = files(tmp_path)
    for how in (["hydra.sweeper.resume=true"], [f"hydra.sweep.dir={sweep}"]):
        again = qframe([*command, "hydra.sweeper.n_trials=1", *how], tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
        assert (
            f"sweep {sweep} is already finished: 1 of 1 trials (1 complete, 0 failed); "
            "best excess_return_with_cost.information_ratio = "
        ) in again.stdout, again.stdout
        assert "Traceback" not in again.stderr
        assert files(tmp_path) == snapshot, how
        assert runs() == runs_before

    more = qframe([*command, "hydra.sweeper.n_trials=2", "hydra.sweeper.resume=true"], tmp_path)
    assert more.returncode == 0, more.stderr[-3000:]
    assert f"resuming the sweep in {sweep}: 1 of 2 trials done (1 complete, 0 failed)" in more.stdout
    assert [t["status"] for t in state(sweep)["trials"]] == ["complete"] * 2
    runs_after = runs()
    (parent,) = [rid for rid, r in runs_before.items() if r[2] == "sweep"]
    assert set(runs_after) > set(runs_before) and len(runs_after) == 3  # one trial more, under the same parent
    assert runs_after[parent][0] == "FINISHED"
    assert len(list(tmp_path.glob(".qframe/multirun/*/*"))) == 1
