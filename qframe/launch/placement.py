"""Where a multirun's jobs run, and whether they can all reach its tracking store.

A launcher that runs jobs on other machines (a Ray cluster, Slurm) needs a store every machine reaches: a tracking
server (``http(s)://``) or a database server. A sqlite file or a ``file:`` store is this machine's only; jobs
elsewhere would each write a store of their own, or fail. :func:`tracking_reach_error` says so in one line,
with the fix, before any job starts; a local launcher (fork, basic, joblib, a Ray instance it starts itself) is
on this machine and keeps the local store. Light on purpose: it is imported by the Hydra callback in every run.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: launcher kinds (:func:`launcher_of`) whose jobs always run elsewhere, address or not
ALWAYS_REMOTE = ("submitit_slurm", "ray_aws")
#: launcher kinds whose jobs run elsewhere when they are given a cluster's address
CLUSTER_KINDS = ("ray", "qframe_ray")
#: Ray addresses that start a new local instance rather than connect to a cluster
LOCAL_RAY_ADDRESSES = ("", "local")
#: store kinds that live in this machine's files
FILE_SCHEMES = ("sqlite", "file")

#: the tracking server to start instead (docs/tracking.md, "Several machines")
SERVER_COMMAND = (
    "mlflow server --backend-store-uri postgresql://postgres@127.0.0.1:5432/mlflow --serve-artifacts "
    "--artifacts-destination ./mlflow-artifacts --host 0.0.0.0 --port 5000"
)


@dataclass(frozen=True)
class LauncherPlace:
    """A configured launcher: its kind (``ray``, ``qframe_ray``, ``submitit_slurm``, ``qframe``...) and the
    address of the cluster it connects to (None: none)."""

    kind: str
    address: str | None = None


#: the end of a Hydra launcher's ``_target_`` -> its kind
_TARGET_KINDS = {
    "RayLauncher": "ray",
    "RayAWSLauncher": "ray_aws",
    "QFrameRayLauncher": "qframe_ray",
    "SlurmLauncher": "submitit_slurm",
    "LocalLauncher": "submitit_local",
    "JoblibLauncher": "joblib",
    "BasicLauncher": "basic",
    "QFrameLauncher": "qframe",
}


def launcher_of(config: Any, environ: Mapping[str, str] | None = None) -> LauncherPlace:
    """The launcher of a composed Hydra ``config`` (its ``hydra.launcher`` node).

    A Ray launcher's address is Hydra Ray's ``ray.init.address``, or qframe's ``address``, else ``RAY_ADDRESS``
    of ``environ`` (what ``ray.init()`` reads when given none).
    """
    from omegaconf import OmegaConf

    target = str(OmegaConf.select(config, "hydra.launcher._target_", default="") or "")
    kind = _TARGET_KINDS.get(target.rsplit(".", 1)[-1], target.rsplit(".", 1)[-1].lower() or "basic")
    address = None
    if kind == "ray":
        address = OmegaConf.select(config, "hydra.launcher.ray.init.address", default=None)
    elif kind == "qframe_ray":
        address = OmegaConf.select(config, "hydra.launcher.address", default=None)
    if kind in CLUSTER_KINDS and address is None:
        address = (environ or {}).get("RAY_ADDRESS") or None
    return LauncherPlace(kind, None if address is None else str(address))


def runs_elsewhere(kind: str, address: str | None) -> bool:
    """Whether a launcher of ``kind`` given ``address`` may run jobs on other machines."""
    if kind in ALWAYS_REMOTE:
        return True
    return kind in CLUSTER_KINDS and (address or "").strip() not in LOCAL_RAY_ADDRESSES


def tracking_reach_error(kind: str, address: str | None, tracking_uri: str) -> str | None:
    """The one-line error for jobs on other machines recording to this machine's files, else None.

    ``kind`` and ``address``: the launcher (:func:`launcher_of`); ``tracking_uri``: the runs' store
    (:func:`qframe.core.context.locate`).
    """
    from qframe.core.stores import scheme

    if not runs_elsewhere(kind, address) or scheme(tracking_uri) not in FILE_SCHEMES:
        return None
    elsewhere = {"submitit_slurm": "Slurm's nodes", "ray_aws": "a Ray cluster on AWS"}
    where = elsewhere.get(kind, f"the Ray cluster at {address}")
    option = "hydra/launcher=" + kind
    return (
        f"{option} runs trials on {where}, which cannot all reach this machine's store {tracking_uri}: "
        f"start a tracking server they reach (`{SERVER_COMMAND}`) and add tracking_uri=http://"
        f"{socket.gethostname()}:5000 (docs/tracking.md, several machines)"
    )
