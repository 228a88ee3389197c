"""qframe's own Ray launcher (``hydra/launcher=qframe_ray``, qframe/launch/ray_runner.py), for real.

One two-node Ray cluster on 127.0.0.1 (its own temp dir, RAY_AUTH_MODE=disabled) serves the module's cluster tests,
in order: a qframe sweep of 6 tiny LightGBM trials, 2 slots, recording to an ``mlflow server`` on a fresh
PostgreSQL database (both nodes ran trials; slots refill the moment a trial ends; workers are reused); then a toy
sweep during which the worker node is killed (SIGKILL of its raylet and workers: a lost machine), which finishes with
the lost trial retried. A toy sweep on a local Ray instance the launcher starts itself (no address) has a hanging
trial stopped at its timeout.
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
from ray_cluster import ray_cluster, ray_env  # noqa: E402 - found on the path set above
from test_sweep import SMALL  # noqa: E402 - the tiny LightGBM sweep of the end-to-end tests

pytest.importorskip("ray", reason="the `scale` extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "tests" / "sweep_toy" / "toy_app.py"
pytestmark = pytest.mark.xdist_group("ray_cluster")


@pytest.fixture(scope="module")
def cluster():
    """Two nodes of 2 CPUs: a worker (1 CPU) per slot spread over both, and room for a replacement on the head."""
    with ray_cluster(nodes=2, num_cpus=2) as running:
        yield running


@pytest.fixture
def database():
    services.require_postgres()
    with services.fresh_database() as uri:
        yield uri


def driver_env(base: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in base.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}


def trials(sweep: Path) -> list[dict]:
    return json.loads((sweep / "sweep_state.json").read_text())["trials"]


def alive_node_ids(cluster) -> set[str]:
    probe = (
        f"import ray; ray.init(address={cluster.address!r}, logging_level='ERROR');"
        "print(' '.join(n['NodeID'] for n in ray.nodes() if n['Alive']))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=cluster.env, capture_output=True, text=True, timeout=120, check=True
    )
    return set(out.stdout.strip().splitlines()[-1].split())


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


def test_a_sweep_on_two_nodes_refills_its_slots_and_records_where_each_trial_ran(cluster, database, tmp_path):
    from mlflow.tracking import MlflowClient

    # a loaded machine: the server imports MLflow and creates its tables in a new database (minutes at worst)
    server_log = tmp_path / "server.log"
    with services.mlflow_server(database, server_log, tmp_path / "served", start_timeout=300) as server:
        sweep = tmp_path / "sweep"
        args = [
            "-m",
            "tuner=lightgbm",
            "hydra/launcher=qframe_ray",
            f"hydra.launcher.address={cluster.address}",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=6",
            f"tracking_uri={server.url}",
            f"hydra.sweep.dir={sweep}",
            f"workdir={tmp_path / '.qframe'}",
            *SMALL,
        ]
        proc = subprocess.run(
            [sys.executable, "-m", "qframe", *args],
            cwd=tmp_path,
            env=driver_env(cluster.env),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert "sweep done: 6 complete, 0 failed" in proc.stdout, proc.stdout[-2000:]
        client = MlflowClient(server.url)
        experiment = client.get_experiment_by_name("qframe")
        runs = client.search_runs([experiment.experiment_id], "tags.qframe.trial LIKE '%'", max_results=50)
    alive = alive_node_ids(cluster)
    output = proc.stdout + proc.stderr
    # the inputs were loaded and put into the object store once, for all six trials
    assert output.count("put the jobs' shared inputs into Ray's object store") == 1, output[-3000:]
    assert sorted(int(r.data.tags["qframe.trial"]) for r in runs) == list(range(6))
    nodes = {r.data.tags["qframe.node"] for r in runs}
    assert nodes == alive and len(nodes) == 2, (nodes, alive)
    # one long-lived worker per slot ran job after job (none died here)
    assert len({(r.data.tags["qframe.node"], r.data.tags["qframe.pid"]) for r in runs}) == 2
    # asynchronous slots: never more than 2 at once; each trial after the first two started once a slot was free
    # (within seconds: the sweeper records the result first), and refills began while the other slot's trial still
    # ran, which a batch launcher (start two, wait for both) never does
    spans = sorted((t["started"], t["ended"]) for t in trials(sweep))
    ends = sorted(end for _, end in spans)
    refills_beside_a_running_trial = 0
    for k, (start, _) in enumerate(spans[2:], start=2):
        assert sum(1 for s, e in spans if s <= start < e) <= 2, spans
        freed = ends[k - 2]  # the moment the k-th trial's slot was free
        assert freed - 0.05 <= start <= freed + 5.0, (k, spans)
        refills_beside_a_running_trial += any(s < start < e for s, e in spans)
    assert refills_beside_a_running_trial >= 2, spans


def test_killing_a_node_mid_sweep_costs_only_its_trial_which_is_retried(cluster, tmp_path):
    """Last of the cluster tests: the worker node stays dead."""
    log, sweep = tmp_path / "jobs.log", tmp_path / "sweep"
    log.touch()
    args = [
        "-m",
        "hydra/launcher=qframe_ray",
        f"hydra.launcher.address={cluster.address}",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.max_retries=1",
        "sleep=3",
        f"log={log}",
        f"hydra.sweep.dir={sweep}",
    ]
    worker = worker_node_id(cluster)
    # files, not pipes: Ray forwards its workers' output to the driver, which must never block on a full pipe
    stdout, stderr = tmp_path / "sweep.out", tmp_path / "sweep.err"
    with stdout.open("w") as out, stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(TOY), *args], cwd=tmp_path, env=driver_env(cluster.env), stdout=out, stderr=err
        )
    try:
        killed_job = _job_on_worker_node(log, worker, deadline=time.monotonic() + 300, proc=proc, stderr=stderr)
        cluster.kill_worker()
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out, err = stdout.read_text(), stderr.read_text()
    assert proc.returncode == 0, err[-4000:]
    assert "sweep done: 6 complete, 0 failed" in out, out[-2000:]
    state = trials(sweep)
    retried = [t for t in state if t["history"]]
    assert len(retried) == 1, state
    (attempt,) = retried[0]["history"]
    assert attempt["job"] == killed_job and attempt["status"] == "retried", attempt
    assert attempt["error"].startswith(f"RayActorError: the Ray worker running job {killed_job} died"), attempt
    assert retried[0]["status"] == "complete" and retried[0]["job"] != killed_job


def worker_node_id(cluster) -> str:
    """The Ray node id of the cluster's worker node (the one whose raylet listens on the port chosen for it)."""
    (port,) = [int(a.split("=", 1)[1]) for a in cluster.worker.args if str(a).startswith("--node-manager-port=")]
    probe = (
        f"import ray; ray.init(address={cluster.address!r}, logging_level='ERROR');"
        f"print([n['NodeID'] for n in ray.nodes() if n['Alive'] and n['NodeManagerPort'] == {port}][0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=cluster.env, capture_output=True, text=True, timeout=180, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def _job_on_worker_node(log: Path, worker: str, deadline: float, proc: subprocess.Popen, stderr: Path) -> int:
    """The number of a job running now on the node ``worker`` (the toy's ``node`` lines), once there is one."""
    while time.monotonic() < deadline:
        started: dict[int, str] = {}
        done: set[int] = set()
        for words in (line.split() for line in log.read_text().splitlines()):
            if words and words[0] == "node":
                started[int(words[1])] = words[2]
            elif words and words[0] == "done":
                done.add(int(words[1]))
        for job, node in started.items():
            if job not in done and node == worker:
                return job
        time.sleep(0.2)
    raise AssertionError(f"no job ran on the worker node:\n{log.read_text()}")
