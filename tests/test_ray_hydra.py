"""Hydra's own Ray launcher (``hydra/launcher=ray``) and what qframe settles before a multirun starts
(qframe/launch/callbacks.py, qframe/launch/placement.py): the Ray connection defaults, a store every job reaches,
and where each trial ran (``qframe.host``, ``qframe.pid``, ``qframe.node``).

docs/tracking.md's recipe on a two-node Ray cluster (an ``mlflow server`` on a fresh PostgreSQL database, the sweep
given the cluster's address) is in tests/test_ray_cluster.py, on the cluster that module shares.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

try:
    import tracking_services as services  # tests/ is on sys.path under pytest's default import mode
except ImportError:
    sys.path.insert(0, str(Path(__file__).parent))
    import tracking_services as services

from qframe.app import conf_dir
from qframe.core.tracking import location_tags
from qframe.launch.callbacks import check_tracking_reach, ray_connect_defaults
from qframe.launch.placement import launcher_of, tracking_reach_error


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
