"""Hydra's own Ray launcher (``hydra/launcher=ray``) on a cluster, and what qframe settles before a multirun starts
(qframe/launch/callbacks.py, qframe/launch/placement.py): the Ray connection defaults, a store every job reaches,
and where each trial ran (``qframe.host``, ``qframe.pid``, ``qframe.node``).

The cluster test starts two Ray nodes bound to 127.0.0.1 (a directory of its own, RAY_AUTH_MODE=disabled) and an
``mlflow server`` on a fresh PostgreSQL database, and stops them all.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

try:
    import tracking_services as services  # tests/ is on sys.path under pytest's default import mode
except ImportError:
    sys.path.insert(0, str(Path(__file__).parent))
    import tracking_services as services
from ray_cluster import ray_cluster  # noqa: E402 - found on the path set above
from test_sweep import SMALL  # the tiny LightGBM sweep of the end-to-end tests

from qframe.app import conf_dir
from qframe.core.tracking import location_tags
from qframe.launch.callbacks import check_tracking_reach, ray_connect_defaults
from qframe.launch.placement import launcher_of, tracking_reach_error

ROOT = Path(__file__).resolve().parents[1]


def composed(overrides: list[str]):
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return compose("config", overrides, return_hydra_config=True)


# -- the error line: a pure function of (launcher kind, address, tracking URI) --------------------------------------


@pytest.mark.parametrize(
    ("kind", "address", "uri"),
    [
        ("ray", "127.0.0.1:6379", "sqlite:////tmp/x/mlflow.db"),
        ("ray", "ray://head:10001", "file:///tmp/mlruns"),
        ("qframe_ray", "10.0.0.1:6379", "/tmp/mlruns"),
        ("submitit_slurm", None, "sqlite:////tmp/x/mlflow.db"),
        ("ray_aws", None, "sqlite:////tmp/x/mlflow.db"),
    ],
)
def test_jobs_elsewhere_with_a_local_store_are_one_line_naming_a_tracking_server(kind, address, uri):
    message = tracking_reach_error(kind, address, uri)
    assert message is not None and "\n" not in message
    assert f"hydra/launcher={kind}" in message and uri in message
    assert "mlflow server --backend-store-uri postgresql://" in message and "tracking_uri=http://" in message


@pytest.mark.parametrize(
    ("kind", "address", "uri"),
    [
        ("ray", None, "sqlite:////tmp/x/mlflow.db"),  # a local Ray instance: the same machine
        ("ray", "local", "sqlite:////tmp/x/mlflow.db"),
        ("qframe_ray", None, "sqlite:////tmp/x/mlflow.db"),
        ("qframe", None, "sqlite:////tmp/x/mlflow.db"),
        ("joblib", None, "sqlite:////tmp/x/mlflow.db"),
        ("submitit_local", None, "sqlite:////tmp/x/mlflow.db"),
        ("ray", "127.0.0.1:6379", "http://127.0.0.1:5000"),
        ("submitit_slurm", None, "postgresql://db-host/mlflow"),
    ],
)
def test_local_jobs_or_a_shared_store_pass(kind, address, uri):
    assert tracking_reach_error(kind, address, uri) is None


def test_the_launcher_and_its_address_are_read_from_the_composed_config():
    assert launcher_of(composed([]), {}).kind == "qframe"
    ray = composed(["hydra/launcher=ray", "hydra.launcher.ray.init.address=127.0.0.1:1"])
    assert launcher_of(ray, {}) == launcher_of(ray, {"RAY_ADDRESS": "other:2"})
    assert launcher_of(ray, {}).address == "127.0.0.1:1"
    # ray.init() reads RAY_ADDRESS when given no address: so does the check
    assert launcher_of(composed(["hydra/launcher=ray"]), {"RAY_ADDRESS": "h:3"}).address == "h:3"


def test_qframes_ray_launcher_is_read_by_its_own_address_key():
    cfg = OmegaConf.create(
        {"hydra": {"launcher": {"_target_": "hydra_plugins.qframe_ray_launcher.qframe_ray_launcher.QFrameRayLauncher"}}}
    )
    assert launcher_of(cfg, {}) == launcher_of(cfg, {"RAY_ADDRESS": ""})
    assert launcher_of(cfg, {}).kind == "qframe_ray" and launcher_of(cfg, {}).address is None
    cfg.hydra.launcher.address = "ray://head:10001"
    place = launcher_of(cfg, {})
    assert tracking_reach_error(place.kind, place.address, "sqlite:////x.db") is not None


def test_a_sweep_on_a_cluster_with_the_default_store_is_refused_before_any_trial(tmp_path):
    """The command line, end to end: one error line, exit 2, no trial (no Ray is even started)."""
    args = ["-m", "tuner=lightgbm", "hydra/launcher=ray", "hydra.launcher.ray.init.address=127.0.0.1:9"]
    proc = services.run_qframe([*args, f"workdir={tmp_path / '.qframe'}"], tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qframe: error: hydra/launcher=ray runs trials on"), proc.stderr
    assert "mlflow server --backend-store-uri" in lines[0]
    assert not list((tmp_path / ".qframe").rglob("sweep_state.json"))


def test_the_check_reads_the_store_the_runs_would_use(tmp_path):
    ray = ["hydra/launcher=ray", "hydra.launcher.ray.init.address=127.0.0.1:1", f"workdir={tmp_path}"]
    with pytest.raises(Exception, match=f"sqlite:///{tmp_path}/mlflow.db"):
        check_tracking_reach(composed(ray), {})
    check_tracking_reach(composed([*ray, "tracking_uri=http://127.0.0.1:5000"]), {})
    check_tracking_reach(composed(ray), {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    check_tracking_reach(composed(ray[:1] + ray[2:]), {})  # a local Ray instance


# -- Hydra Ray's object_store_memory: null when connecting, the launcher's own default otherwise ------------------


def test_connecting_to_a_cluster_drops_the_launchers_object_store_default():
    cfg = composed(["hydra/launcher=ray", "hydra.launcher.ray.init.address=127.0.0.1:1"])
    assert ray_connect_defaults(cfg, {})
    init = cfg.hydra.launcher.ray.init
    # what hydra-ray-launcher's _core.launch does next: a key already there (null) is kept
    assert init.setdefault("object_store_memory", 78643200) is None
    assert OmegaConf.to_container(init) == {"address": "127.0.0.1:1", "object_store_memory": None}


def test_ray_address_in_the_environment_connects_too():
    """``ray.init()`` without an address connects to ``RAY_ADDRESS``: the launcher's default must go then too."""
    cfg = composed(["hydra/launcher=ray"])
    assert ray_connect_defaults(cfg, {"RAY_ADDRESS": "127.0.0.1:1"})
    assert cfg.hydra.launcher.ray.init.object_store_memory is None


def test_a_local_ray_and_the_users_own_value_are_left_alone():
    local = composed(["hydra/launcher=ray"])
    assert not ray_connect_defaults(local, {})
    assert "object_store_memory" not in local.hydra.launcher.ray.init  # the launcher's 78 MB default applies
    own = composed(
        ["hydra/launcher=ray", "hydra.launcher.ray.init.address=h:1", "+hydra.launcher.ray.init.object_store_memory=5"]
    )
    assert not ray_connect_defaults(own, {}) and own.hydra.launcher.ray.init.object_store_memory == 5


def test_location_tags_outside_ray_name_this_host_and_process():
    tags = location_tags()
    assert tags["qframe.pid"] == str(os.getpid())
    assert tags["qframe.node"] == tags["qframe.host"] != ""


def node_ids(cluster) -> set[str]:
    """The ids of the cluster's alive nodes (a fresh driver asks its GCS)."""
    probe = (
        f"import ray; ray.init(address={cluster.address!r}, logging_level='ERROR');"
        "print(' '.join(n['NodeID'] for n in ray.nodes() if n['Alive']))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=cluster.env, capture_output=True, text=True, timeout=120, check=True
    )
    return set(out.stdout.strip().splitlines()[-1].split())


# -- the whole thing: a sweep through Hydra's Ray launcher on a two-node cluster, a tracking server on PostgreSQL --


@pytest.fixture
def database():
    services.require_postgres()
    with services.fresh_database() as uri:
        yield uri


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


@pytest.mark.xdist_group("ray_cluster")
def test_the_documented_ray_cluster_recipe_runs_and_records_where_each_trial_ran(tmp_path, database):
    """docs/tracking.md's two commands, as printed but for the test's own ports, host and database: an ``mlflow
    server`` on PostgreSQL, then a sweep of 6 trials, 2 at a time, through Hydra's Ray launcher given only the
    address of a two-node cluster. Every trial finishes, recorded on the server; their location tags show both
    nodes."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher.ray_launcher", reason="the `scale` extra is not installed")
    from mlflow.tracking import MlflowClient

    server_command, sweep_command = documented_recipe()
    with documented_server(server_command, database, tmp_path) as url, ray_cluster(nodes=2, num_cpus=1) as cluster:
        sweep = tmp_path / "sweep"
        words = made_local(sweep_command, {"http://tracking-host:5000": url, "ray-head:6379": cluster.address})
        size = [*SMALL, "hydra.sweeper.n_trials=6", f"hydra.sweep.dir={sweep}", f"workdir={tmp_path / '.qframe'}"]
        proc = subprocess.run(
            [sys.executable, "-m", "qframe", *words[1:], *size],
            cwd=tmp_path,
            env={k: v for k, v in cluster.env.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert "sweep done: 6 complete, 0 failed" in proc.stdout, proc.stdout[-2000:]
        client = MlflowClient(url)
        experiment = client.get_experiment_by_name("qframe")
        runs = client.search_runs([experiment.experiment_id], "tags.qframe.trial LIKE '%'", max_results=50)
        alive = node_ids(cluster)
    assert sorted(int(r.data.tags["qframe.trial"]) for r in runs) == list(range(6))
    assert {r.info.status for r in runs} == {"FINISHED"}
    nodes = {r.data.tags["qframe.node"] for r in runs}
    assert nodes == alive and len(nodes) == 2, (nodes, alive)
    assert len({r.data.tags["qframe.pid"] for r in runs}) >= 2  # Ray's worker processes, one node's each at least
    assert {r.data.tags["qframe.host"] for r in runs} == {location_tags()["qframe.host"]}
