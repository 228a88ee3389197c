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
from pathlib import Path
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


def stop_leftovers(state: SweepState, sweep_dir: Path) -> None:
    """Settle every trial the state says is running before the sweep resumes: end the processes of this host that
    still run one (a ConfigError when one does not end: it must not go on while its trial is retried); adopt the
    result a trial known only by its lease (:mod:`~qframe.tuning.lease`) recorded; refuse to resume while such a
    trial's lease is fresh (it runs elsewhere)."""
    here = lifecycle.host()
    _settle_by_lease(state, sweep_dir, here)
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


def _settle_by_lease(state: SweepState, sweep_dir: Path, here: str) -> None:
    """The running trials whose process this host does not know, by what their leases say."""
    from qframe.tuning.lease import is_fresh, read_leases
    from qframe.tuning.trials import _objective_value

    unknown = [t for t in state.trials if t.status == "running" and not (t.owner and t.owner.get("host") == here)]
    if not unknown:
        return
    leases = read_leases(sweep_dir)
    for trial in unknown:
        lease = leases.get(trial.job)
        if lease is None or int(lease.get("trial", -1)) != trial.number:
            continue  # it never started, or wrote no lease: retried
        if lease.get("done"):
            # the attempt ended after its sweep died: its result (and its MLflow run) stands, nothing runs again
            value, why = _objective_value(lease.get("value")) if lease.get("error") is None else (None, None)
            trial.ended, trial.owner = float(lease.get("beat", time.time())), None
            if value is None:
                trial.status, trial.value = "failed", None
                trial.error = str(lease.get("error") or why)[:300]
            else:
                trial.status, trial.value, trial.error = "complete", value, None
        elif is_fresh(lease):
            age = time.time() - float(lease["beat"])
            raise ConfigError(
                f"trial {trial.number} of this sweep is still running on {lease.get('host')} (PID {lease.get('pid')}, "
                f"alive {age:.0f} s ago) from before the sweep's process died; wait for it to end (its result is then "
                "kept) or stop it, and run the command again"
            )
