"""qframe's own Ray launcher (``hydra/launcher=qframe_ray``, qframe/launch/ray_runner.py), for real, without a
cluster: an address where no cluster listens is one error line; a toy sweep on a local Ray instance the launcher
starts itself (no address) has a hanging trial stopped at its timeout. Its sweeps on a two-node cluster (slots
refilled, a node killed mid-sweep) are in tests/test_ray_cluster.py, on the cluster that module shares; this
module is in the same xdist group, so the local instance never starts beside the cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

try:
    import tracking_services as services  # tests/ is on sys.path under pytest's default import mode
except ImportError:
    sys.path.insert(0, str(Path(__file__).parent))
    import tracking_services as services
from ray_cluster import ray_env  # noqa: E402 - found on the path set above

pytest.importorskip("ray", reason="the `scale` extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "tests" / "sweep_toy" / "toy_app.py"
pytestmark = pytest.mark.xdist_group("ray_cluster")


def driver_env(base: dict[str, str]) -> dict[str, str]:
    """A sweep driver's environment: ``base`` less qframe's and MLflow's tracking variables."""
    return {k: v for k, v in base.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}


def trials(sweep: Path) -> list[dict]:
    """The trials of the sweep state in ``sweep``."""
    return json.loads((sweep / "sweep_state.json").read_text())["trials"]


def test_the_launcher_is_registered_and_an_address_nobody_answers_is_one_error_line(tmp_path):
    """``hydra/launcher=qframe_ray`` composes, is read as a cluster launcher by its address, and an address where no
    Ray cluster listens is refused in one line, exit 2, before any trial (no Ray is started)."""
    from hydra import compose, initialize_config_dir

    from qframe.app import conf_dir
    from qframe.launch.placement import launcher_of

    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", ["hydra/launcher=qframe_ray", "hydra.launcher.address=127.0.0.1:1"], True)
    assert cfg.hydra.launcher.num_cpus == 1 and cfg.hydra.launcher.temp_dir is None
    assert launcher_of(cfg, {}).kind == "qframe_ray" and launcher_of(cfg, {}).address == "127.0.0.1:1"
    port = services.free_port()  # nothing listens there
    args = ["-m", "tuner=lightgbm", "hydra/launcher=qframe_ray", f"hydra.launcher.address=127.0.0.1:{port}"]
    args += ["tracking_uri=http://127.0.0.1:1", f"workdir={tmp_path / '.qframe'}"]
    proc = services.run_qframe(args, tmp_path, timeout=180)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"qframe: error: hydra.launcher.address=127.0.0.1:{port}: no Ray cluster"), lines
    assert not list((tmp_path / ".qframe").rglob("sweep_state.json"))


def test_a_hanging_trial_on_a_local_ray_is_killed_at_its_timeout(tmp_path):
    """No address: the launcher starts a Ray instance of its own (in its own temp dir) and it ends with the sweep."""
    log, sweep, temp = tmp_path / "jobs.log", tmp_path / "sweep", Path(f"/tmp/qfrl{os.getpid()}")
    args = [
        "-m",
        "hydra/launcher=qframe_ray",
        f"hydra.launcher.temp_dir={temp}",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.trial_timeout=5",
        "failures=[hang]",
        "sleep=0.2",
        f"log={log}",
        f"hydra.sweep.dir={sweep}",
    ]
    env = ray_env(temp)
    env.pop("RAY_ADDRESS", None)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, str(TOY), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
        )
        took = time.monotonic() - started
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert "sweep done: 3 complete, 1 failed" in proc.stdout, proc.stdout[-2000:]
        (hung,) = [t for t in trials(sweep) if t["status"] == "failed"]
        assert hung["error"] == "timed out after 5 s (killed)" and hung["job"] == 0
        # counted from when its worker was up (a fresh worker imports the stack first): well before the 60 s hang
        assert 5 <= hung["ended"] - hung["started"] < 30, hung
        pids = {int(w[1]): int(w[2]) for w in (line.split() for line in log.read_text().splitlines()) if w[0] == "pid"}
        # the hanging job's worker process was killed, not abandoned (it would sleep 60 s)
        assert not _alive(pids[0]), pids
        assert took < 60 + 30, took  # the sweep did not wait for the hang
    finally:
        import shutil

        shutil.rmtree(temp, ignore_errors=True)


def _alive(pid: int, wait: float = 10.0) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return False
        except OSError:
            return False
        time.sleep(0.2)
    return True
