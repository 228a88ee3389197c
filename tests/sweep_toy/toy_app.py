"""A tiny Hydra app for sweeper tests: a known objective, and a failure of a chosen kind by job number."""

import os
import signal
import subprocess
import sys
import time

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


# conf/toy.yaml: a hyperopt sweep; --config-name grid: Hydra's basic sweeper (a plain grid) on the fork launcher
@hydra.main(config_path="conf", config_name="toy", version_base="1.3")
def main(cfg: DictConfig):
    if not cfg.lease:
        return run(cfg)
    from qframe.tuning.lease import job_lease

    # as qframe's own task holds it: the lease that tells a resumed sweep this trial runs, then how it ended
    with job_lease(os.environ, multirun=True) as lease:
        value = run(cfg)
        if lease is not None:
            lease.finish(value)
        return value


def run(cfg: DictConfig):
    job = HydraConfig.get().job.num
    if cfg.log:
        with open(cfg.log, "a") as fh:
            fh.write(f"start {job} {cfg.x!r} {cfg.y!r} {time.time()}\n")
            # the thread count the sweeper/launcher passed to the job ("-": none)
            fh.write(f"threads {job} {os.environ.get('QFRAME_THREADS', '-')}\n")
            # the job's process (a test kills it from outside) and its GPUs ("-": none given)
            fh.write(f"pid {job} {os.getpid()} {os.environ.get('CUDA_VISIBLE_DEVICES', '-')}\n")
            ray = sys.modules.get("ray")  # on a Ray worker (hydra/launcher=qframe_ray): the node it runs on
            if ray is not None and ray.is_initialized():
                fh.write(f"node {job} {ray.get_runtime_context().get_node_id()}\n")
    time.sleep(cfg.sleep)
    mode = cfg.failures[job] if job < len(cfg.failures) else cfg.mode
    if mode == "raise":
        raise RuntimeError(f"planted failure in job {job}")
    if mode == "nan_value":
        return float("nan")
    if mode == "string":
        return "not a number"
    if mode == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "alloc":  # cfg.alloc_mb of memory, written (resident), held while the job sleeps
        held = b"\x01" * (int(cfg.alloc_mb) * 1024 * 1024)
        time.sleep(cfg.sleep)
        del held
    if mode == "hang":
        time.sleep(60)
    if mode == "spawn_hang":  # a process of its own (the job's group), then a hang
        child = subprocess.Popen(["sleep", "60"])
        if cfg.log:
            with open(cfg.log, "a") as fh:
                fh.write(f"spawned {job} {child.pid}\n")
        time.sleep(60)
    value = (cfg.x - 0.3) ** 2 + (cfg.y + 0.2) ** 2 + (0.0 if cfg.c == "b" else 0.5)
    if cfg.log:
        with open(cfg.log, "a") as fh:
            fh.write(f"done {job} {cfg.x!r} {cfg.y!r} {time.time()}\n")
    return value


if __name__ == "__main__":
    main()
