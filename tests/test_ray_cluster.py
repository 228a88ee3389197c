"""The sweeps that need a real two-node Ray cluster, all on one cluster started once for this module
(tests/ray_cluster.py: two ``ray start`` nodes of 2 CPUs on 127.0.0.1, their own temp dir, RAY_AUTH_MODE=disabled),
in this order:

- docs/tracking.md's "A sweep on a Ray cluster" through Hydra's own Ray launcher (``hydra/launcher=ray``): the
  documented ``mlflow server`` on a fresh PostgreSQL database, then the documented sweep given only the cluster's
  address; every trial recorded, with the node it ran on (both nodes seen);
- qframe's own Ray launcher (``hydra/launcher=qframe_ray``): 6 tiny LightGBM trials, 2 slots, recording to an
  ``mlflow server`` on a fresh PostgreSQL database (both nodes ran trials; slots refill the moment a trial ends;
  workers are reused);
- a toy sweep during which the worker node is killed (SIGKILL of its raylet and workers: a lost machine), which
  finishes with the lost trial retried. Last: the worker node stays dead.

One cluster, not one per test: starting two nodes is the slowest part of each test on a loaded 2-core machine.
The module's tests are one xdist group with tests/test_ray_launcher.py's local Ray instance, so no two Rays start
at once.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    import tracking_services as services  # tests/ is on sys.path under pytest's default import mode
except ImportError:
    sys.path.insert(0, str(Path(__file__).parent))
    import tracking_services as services
from ray_cluster import ray_cluster  # noqa: E402 - found on the path set above
from test_ray_launcher import TOY, driver_env, trials  # noqa: E402 - the qframe_ray launcher's toy sweep
from test_sweep import SMALL  # noqa: E402 - the tiny LightGBM sweep of the end-to-end tests

from qframe.core.tracking import location_tags

pytest.importorskip("ray", reason="the `scale` extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.xdist_group("ray_cluster")


@pytest.fixture(scope="module")
def cluster():
    """Two nodes of 2 CPUs: a qframe_ray worker (1 CPU) per slot spread over both, and room for a replacement on
    the head; a Hydra Ray job asks for 2 CPUs (a whole node), so two at a time run one on each node."""
    with ray_cluster(nodes=2, num_cpus=2) as running:
        yield running


@pytest.fixture
def database():
    services.require_postgres()
    with services.fresh_database() as uri:
        yield uri


@pytest.fixture(scope="module")
def node_ids(cluster) -> dict[str, str]:
    """The Ray node id of each node, ``{"head": ..., "worker": ...}``: a fresh driver asks the cluster's GCS once
    (the worker node is the one whose raylet listens on the port chosen for it; the nodes stay until the last test
    kills the worker)."""
    (port,) = [int(a.split("=", 1)[1]) for a in cluster.worker.args if str(a).startswith("--node-manager-port=")]
    probe = (
        f"import json, ray; ray.init(address={cluster.address!r}, logging_level='ERROR');"
        "print(json.dumps({n['NodeID']: n['NodeManagerPort'] for n in ray.nodes() if n['Alive']}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=cluster.env, capture_output=True, text=True, timeout=180, check=True
    )
    ports = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(ports) == 2 and port in ports.values(), ports
    return {("worker" if p == port else "head"): node for node, p in ports.items()}


# -- docs/tracking.md's recipe: Hydra's Ray launcher, a tracking server on PostgreSQL ---------------------------------


def documented_recipe() -> tuple[str, str]:
    """The two commands of docs/tracking.md's "A sweep on a Ray cluster": (the server's, the sweep's)."""
    text = (ROOT / "docs" / "tracking.md").read_text()
    section = text.split("### A sweep on a Ray cluster", 1)[1]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    server, sweep = block.strip().splitlines()
    assert server.startswith("mlflow server ") and sweep.startswith("qframe -m "), block
    return server, sweep


def made_local(command: str, replacements: dict[str, str]) -> list[str]:
    """``command``'s words with each placeholder of ``replacements`` (a host, a port, a database) replaced; every
    placeholder must be there: the printed command is the one run."""
    for old, new in replacements.items():
        assert old in command, (old, command)
        command = command.replace(old, new)
    return shlex.split(command)


@contextlib.contextmanager
def documented_server(command: str, database: str, tmp: Path) -> Iterator[str]:
    """docs' ``mlflow server`` command on ``database``, 127.0.0.1 and a free port (one worker: a test's writers
    are a handful); its URL once ``/health`` answers; stopped with its workers afterwards."""
    port = services.free_port()
    words = made_local(
        command,
        {
            "postgresql://postgres@127.0.0.1:5432/mlflow": database,
            "/srv/mlflow-artifacts": str(tmp / "served"),
            "--host 0.0.0.0": "--host 127.0.0.1",  # this machine only: nothing reaches it from outside
            "--port 5000": f"--port {port}",
        },
    )
    words[0] = str(Path(sys.executable).parent / words[0])
    log = tmp / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*words, "--workers", "1"], stdout=out, stderr=out, env=services.qframe_env(), start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + services.SERVER_START_TIMEOUT
        while not services._healthy(url):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        yield url
    finally:
        services.stop_group(proc)


def six_trial_sweep(
    args: list[str], env: dict[str, str], cwd: Path, url: str
) -> tuple[subprocess.CompletedProcess, list]:
    """``qframe ARGS`` (a 6-trial sweep) with ``env``; asserts it completed every trial; its output and the trial
    runs recorded at ``url``."""
    from mlflow.tracking import MlflowClient

    proc = subprocess.run(
        [sys.executable, "-m", "qframe", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "sweep done: 6 complete, 0 failed" in proc.stdout, proc.stdout[-2000:]
    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("qframe")
    runs = client.search_runs([experiment.experiment_id], "tags.qframe.trial LIKE '%'", max_results=50)
    return proc, runs


def test_the_documented_ray_cluster_recipe_runs_and_records_where_each_trial_ran(cluster, node_ids, tmp_path, database):
    """docs/tracking.md's two commands, as printed but for the test's own ports, host and database: an ``mlflow
    server`` on PostgreSQL, then a sweep of 6 trials, 2 at a time, through Hydra's Ray launcher given only the
    address of a two-node cluster. Every trial finishes, recorded on the server; their location tags show both
    nodes."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher.ray_launcher", reason="the `scale` extra is not installed")

    server_command, sweep_command = documented_recipe()
    with documented_server(server_command, database, tmp_path) as url:
        sweep = tmp_path / "sweep"
        words = made_local(sweep_command, {"http://tracking-host:5000": url, "ray-head:6379": cluster.address})
        size = [*SMALL, "hydra.sweeper.n_trials=6", f"hydra.sweep.dir={sweep}", f"workdir={tmp_path / '.qframe'}"]
        # a job takes a whole node (2 CPUs): the two jobs of a batch run one on each node, as on nodes of 1 CPU
        size.append("++hydra.launcher.ray.remote.num_cpus=2")
        _, runs = six_trial_sweep([*words[1:], *size], driver_env(cluster.env), tmp_path, url)
    alive = set(node_ids.values())
    assert sorted(int(r.data.tags["qframe.trial"]) for r in runs) == list(range(6))
    assert {r.info.status for r in runs} == {"FINISHED"}
    nodes = {r.data.tags["qframe.node"] for r in runs}
    assert nodes == alive and len(nodes) == 2, (nodes, alive)
    assert len({r.data.tags["qframe.pid"] for r in runs}) >= 2  # Ray's worker processes, one node's each at least
    assert {r.data.tags["qframe.host"] for r in runs} == {location_tags()["qframe.host"]}


# -- qframe's own Ray launcher -------------------------------------------------------------------------------------


def test_a_sweep_on_two_nodes_refills_its_slots_and_records_where_each_trial_ran(cluster, node_ids, database, tmp_path):

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
        proc, runs = six_trial_sweep(args, driver_env(cluster.env), tmp_path, server.url)
    alive = set(node_ids.values())
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


def test_killing_a_node_mid_sweep_costs_only_its_trial_which_is_retried(cluster, node_ids, tmp_path):
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
    worker = node_ids["worker"]
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
