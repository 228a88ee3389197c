"""Who runs a trial, and making sure nobody does any more before a resumed sweep runs it again.

While a trial runs, the state records its owner: this sweep's PID and host, and the PID and kernel start time of the
trial's process (the leader of its process group). A resumed sweep retries a trial that was running only once that
process is gone: one left alive (a platform without the parent-death signal, a process stuck in the kernel) has its
group killed, and the sweep waits for it to end. So an interrupted attempt can never finish after its retry started,
and never logs a second result for the trial.
"""

from __future__ import annotations

import os
import time
from typing import Any

from qframe.core.errors import ConfigError
from qframe.launch import lifecycle
from qframe.tuning.state import SweepState

#: seconds a resumed sweep waits for a killed leftover trial process to end
LEFTOVER_GRACE = 10.0


def trial_owner(submitter: Any, job: int) -> dict[str, Any] | None:
    """The owner record of job ``job`` just submitted to ``submitter`` (None: its process is not known here)."""
    pid = submitter.pid(job)
    if pid is None:
        return None
    return {
        "host": lifecycle.host(),
        "sweep_pid": os.getpid(),
        "pid": pid,
        "pid_started": lifecycle.start_time(pid),
        "since": time.time(),
    }


def stop_leftovers(state: SweepState) -> None:
    """End every process of this host that still runs a trial the state says is running; a ConfigError when one
    does not end (it must not go on while its trial is retried)."""
    here = lifecycle.host()
    left = []
    for trial in state.trials:
        owner = trial.owner
        if trial.status != "running" or not owner or owner.get("host") != here:
            continue  # another host's trial processes died with their sweep (parent-death signal)
        if lifecycle.is_alive(int(owner["pid"]), owner.get("pid_started")):
            lifecycle.kill_group(int(owner["pid"]))
            left.append((trial, owner))
        # what the trial started, left in its group when the trial's process died with its sweep
        lifecycle.kill_marked_group(
            int(owner["pid"]), lifecycle.group_marker(int(owner["pid"]), owner.get("pid_started"))
        )
    deadline = time.time() + LEFTOVER_GRACE
    for trial, owner in left:
        while lifecycle.is_alive(int(owner["pid"]), owner.get("pid_started")):
            if time.time() > deadline:
                raise ConfigError(
                    f"trial {trial.number}'s process {owner['pid']} from an earlier run of this sweep is still "
                    f"running after SIGKILL; end it (kill -9 -{owner['pid']}) and run the command again"
                )
            time.sleep(0.05)
