"""A real two-node Ray cluster on 127.0.0.1 for tests and ``benchmarks/bench_ray.py``.

Both nodes are ``ray start --block`` processes on this machine, each the leader of its own process group (its
raylet, workers and, for the head, GCS), every port chosen free, the session files in the cluster's own temp dir
(short: Ray's socket paths must stay under the UNIX limit). Stopping is by process group, never ``ray stop``
(which stops every Ray on the machine, other people's included). :meth:`Cluster.kill_worker` SIGKILLs the worker
node's whole group: the node dies as a lost machine does.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

try:
    from tracking_services import free_port, group_alive
except ImportError:
    sys.path.insert(0, str(Path(__file__).parent))
    from tracking_services import free_port, group_alive

NODE_START_TIMEOUT = 300  # a cap, not a wait: a loaded 2-core machine has taken over 120 s
#: tries at starting the worker node, and what `ray start` says when its raylet missed Ray's own start-up deadline
START_ATTEMPTS = 3
RAY_START_TIMED_OUT = "timed out during startup"


def ray_env(temp_dir: str | Path) -> dict[str, str]:
    """This environment plus what a Ray process of the test cluster (or its driver) needs."""
    return {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "RAY_TMPDIR": str(temp_dir),
        "RAY_USAGE_STATS_ENABLED": "0",
        # a test node has nothing to drain: SIGTERM stops it at once (Ray drains a SIGTERMed `ray start` node first,
        # up to 30 s, through a GCS that the same signal to the group is stopping)
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
        # a killed node is seen dead after 5 failed health checks: 1 s apart (Ray's default 3 s) that is ~5 s, not
        # ~15 s; a live node still needs 5 checks in a row unanswered for 10 s each (the timeout) to be called dead
        "RAY_health_check_period_ms": "1000",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def _ray() -> str:
    return str(Path(sys.executable).parent / "ray")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: all held open while chosen (one at a time, the OS may hand one out twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def _node_ports() -> list[str]:
    """Free ports for one node's services, so two nodes (and other Rays on the machine) never collide."""
    ports = _free_ports(14)
    named = [
        "--node-manager-port",
        "--object-manager-port",
        "--metrics-export-port",
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--runtime-env-agent-port",
    ]
    return [f"{name}={port}" for name, port in zip(named, ports, strict=False)] + [
        f"--worker-port-list={','.join(str(p) for p in ports[len(named) :])}"
    ]


@dataclass
class Cluster:
    address: str  # "127.0.0.1:PORT", for ray.init / hydra.launcher.address
    temp_dir: Path
    env: dict[str, str]
    head: subprocess.Popen
    worker: subprocess.Popen | None
    logs: list[Path] = field(default_factory=list)

    def kill_worker(self) -> None:
        """SIGKILL the worker node's raylet and every process it started (its Ray workers): a lost node."""
        if self.worker is not None:
            _kill_group(self.worker, signal.SIGKILL)

    def alive_nodes(self) -> int:
        """Nodes the cluster's GCS counts as alive (a fresh driver asks it)."""
        code = (
            f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR');"
            "print(json.dumps(sum(n['Alive'] for n in ray.nodes())))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=120, check=True
        )
        return int(json.loads(out.stdout.strip().splitlines()[-1]))


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [_ray(), "start", "--block", "--disable-usage-stats", *args],
            stdout=out,
            stderr=out,
            env=env,
            start_new_session=True,
        )


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=20)
    deadline = time.monotonic() + 20
    while group_alive(proc.pid) and time.monotonic() < deadline:  # the raylet's children may outlive it a moment
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.2)


def _wait_started(proc: subprocess.Popen, log: Path) -> None:
    """Until ``ray start`` says the node is up (its raylet registered with the GCS): cheaper than asking a driver."""
    deadline = time.monotonic() + NODE_START_TIMEOUT
    while "Ray runtime started" not in log.read_text():
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Ray node not up in {NODE_START_TIMEOUT} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@contextlib.contextmanager
def ray_cluster(nodes: int = 2, num_cpus: int = 1) -> Iterator[Cluster]:
    """A head (and with ``nodes=2`` a worker node) of ``num_cpus`` CPUs each on 127.0.0.1, in a fresh temp dir;
    yields once every node is alive; afterwards stops both process groups and removes the temp dir."""
    temp_dir = Path(tempfile.mkdtemp(prefix="qfrc", dir="/tmp"))
    env = ray_env(temp_dir)
    port = free_port()
    address = f"127.0.0.1:{port}"
    head_args = [
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        f"--num-cpus={num_cpus}",
        f"--temp-dir={temp_dir}",
        "--include-dashboard=false",
        f"--ray-client-server-port={free_port()}",
        *_node_ports(),
    ]
    logs = [temp_dir / "head.log"]
    head = _start(head_args, env, logs[0])
    cluster = Cluster(address, temp_dir, env, head, None, logs)
    try:
        _wait_started(head, logs[0])
        if nodes >= 2:
            logs.append(temp_dir / "worker.log")
            # one log monitor a host (Ray's advice): the head's reads the session's logs, the worker node's too
            worker_args = [f"--address={address}", "--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}"]
            worker_args.append("--include-log-monitor=false")
            for attempt in range(START_ATTEMPTS):
                cluster.worker = _start([*worker_args, *_node_ports()], env, logs[1])
                try:
                    _wait_started(cluster.worker, logs[1])
                    break
                except RuntimeError:
                    # Ray gives a raylet 30 s to register (hard-coded): a loaded machine misses it now and then
                    if attempt + 1 == START_ATTEMPTS or RAY_START_TIMED_OUT not in logs[1].read_text():
                        raise
                    _kill_group(cluster.worker, signal.SIGKILL)
        yield cluster
    finally:
        if cluster.worker is not None:
            _kill_group(cluster.worker, signal.SIGTERM)
        _kill_group(head, signal.SIGTERM)
        shutil.rmtree(temp_dir, ignore_errors=True)
