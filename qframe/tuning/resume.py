"""Which sweep state a command runs: the one in its sweep dir, the newest unfinished one ``resume=true`` finds, or a
new one; whether a resumed sweep has anything left to do; and what it continues with.

A sweep is *of this command* when its search space, fixed overrides and direction are this command's. It has nothing
left to do when it is *stopped* (more trials failed than ``max_failure_rate * n_trials`` allows) or *finished* (its
complete and failed trials reach ``n_trials`` and it wrote its results). A new sweep of a command whose newest sweep
stopped is refused: it would fail the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qframe.core.errors import ConfigError, QFrameError
from qframe.tuning.settings import SweepSettings
from qframe.tuning.space import Space
from qframe.tuning.state import STATE_FILE, SweepState, Trial, is_running, running_elsewhere


@dataclass
class ChosenState:
    """The state a command runs, the file it lives in, and whether it continues an earlier sweep."""

    state: SweepState
    path: Path
    resumed: bool


@dataclass
class _Candidate:
    """A sweep of this command found under the sweeps root, not running now."""

    mtime: float
    path: Path
    state: SweepState
    outcome: str | None


class StateChooser:
    """Chooses the state of a sweep of ``space`` under ``settings`` (``config``: the sweep's Hydra config)."""

    def __init__(self, config: Any, settings: SweepSettings, space: Space) -> None:
        self.config = config
        self.settings = settings
        self.space = space

    def choose(self, sweep_dir: Path) -> ChosenState:
        """The state in ``sweep_dir``, the one ``resume=true`` found, or a new one."""
        path = sweep_dir / STATE_FILE
        if path.is_file():
            if is_running(sweep_dir):
                raise ConfigError(running_elsewhere(sweep_dir))
            return ChosenState(self._load(path), path, True)
        if self.settings.resume:
            found = self._find_resumable(sweep_dir)
            return ChosenState(found.state, found.path, True)
        self._refuse_or_hint(sweep_dir)
        s = self.settings
        recorded = {"algo": s.algo, "direction": s.direction, "seed": s.seed}
        new = SweepState(self.space.signature(), self.space.describe(), list(self.space.fixed), recorded)
        return ChosenState(new, path, False)

    def reread(self, chosen: ChosenState) -> ChosenState:
        """``chosen`` read again now that this process holds the sweep's lock: the state another process wrote since
        the first read (two sweeps of one dir started at once) is continued, not overwritten."""
        if not chosen.path.is_file():
            return chosen
        return ChosenState(self._load(chosen.path), chosen.path, True)

    def _load(self, path: Path) -> SweepState:
        state = SweepState.load(path)
        why = self.mismatch(state)
        if why:
            raise ConfigError(
                f"cannot resume the sweep in {path.parent}: {why}; use a new hydra.sweep.dir or the same command"
            )
        return state

    def mismatch(self, state: SweepState) -> str | None:
        """Why ``state`` is not a sweep of this command (search space, fixed overrides, direction), or None."""
        space, direction = self.space, self.settings.direction
        if state.signature != space.signature():
            return (
                f"it was made with a different search space ({state.space} fixed {state.fixed}) than this one "
                f"({space.describe()} fixed {space.fixed})"
            )
        made_with = state.settings.get("direction", direction)
        if made_with != direction:
            return f"it was made with direction={made_with}, this command has direction={direction}"
        return None

    def outcome(self, state: SweepState, sweep_dir: Path) -> str | None:
        """``"stopped"`` or ``"finished"`` when the sweep has nothing left to do under the current settings, else None.

        Stopped: more trials failed than ``max_failure_rate * n_trials`` allows (resuming would stop again at once).
        Finished: its complete and failed trials reach ``n_trials`` and it wrote its results (a sweep killed before
        writing them is resumed, which writes them).
        """
        from qframe.tuning.outputs import RESULTS_FILE

        counts = state.counts()
        if self.settings.too_many_failures(counts["failed"]):
            return "stopped"
        done = counts["complete"] + counts["failed"]
        if done >= int(self.settings.n_trials) and (sweep_dir / RESULTS_FILE).is_file():
            return "finished"
        return None

    def report_nothing_to_do(self, state: SweepState, sweep_dir: Path, objective: str | None, outcome: str) -> None:
        """Report a finished sweep (a stopped one as a QFrameError, exit status 2 as when it stopped), changing
        nothing: no trial, no file, no MLflow write."""
        from rich.console import Console

        from qframe.tuning.outputs import FAILURE_FIX, best_trial, print_rerun, stop_report

        s = self.settings
        counts = state.counts()
        done, n = counts["complete"] + counts["failed"], int(s.n_trials)
        best = best_trial(state, s.direction)
        best_txt = (
            f"best {objective or 'objective'} = {best.value:.6g} (trial {best.number})"
            if best is not None
            else "no trial completed"
        )
        if outcome == "stopped":
            raise QFrameError(f"{stop_report(state, s, sweep_dir)}; {best_txt}; nothing to do ({FAILURE_FIX})")
        trials = f"{done} of {n} trials" if done == n else f"{done} trials, n_trials={n}"
        console = Console(highlight=False)
        console.print(
            f"sweep {sweep_dir} is already finished: {trials} ({counts['complete']} complete, {counts['failed']} "
            f"failed); {best_txt}; nothing to do (raise hydra.sweeper.n_trials to continue it)",
            soft_wrap=True,
        )
        if best is not None:
            print_rerun(console, self.space, best)

    def _candidates(self, sweep_dir: Path) -> tuple[Path, list[_Candidate], int, int]:
        """(the sweeps root, this command's idle sweeps there, newest first, how many sweeps of other commands, how
        many of this command running now)."""
        root, pattern = sweeps_root(self.config, sweep_dir)
        mine, others, running = [], 0, 0
        for path in root.glob(pattern):
            try:
                state = SweepState.load(path)
                mtime = path.stat().st_mtime
            except (ConfigError, OSError):
                others += 1
                continue
            if self.mismatch(state):
                others += 1
            elif is_running(path.parent):
                running += 1
            else:
                mine.append(_Candidate(mtime, path, state, self.outcome(state, path.parent)))
        mine.sort(key=lambda candidate: candidate.mtime, reverse=True)
        return root, mine, others, running

    def _find_resumable(self, sweep_dir: Path) -> _Candidate:
        """``resume=true``: the newest unfinished sweep of this command under the sweeps root; when every one of them
        is finished, the newest finished one (reported as such); none: a ConfigError naming where it looked."""
        root, mine, others, running = self._candidates(sweep_dir)
        unfinished = [candidate for candidate in mine if candidate.outcome is None]
        if unfinished or mine:
            return (unfinished or mine)[0]
        seen = []
        if others:
            seen.append(f"{others} sweep(s) of other commands (search space, fixed overrides or direction)")
        if running:
            seen.append(f"{running} of this command running in another process")
        found = f"found {' and '.join(seen)}" if seen else "no sweep there at all"
        raise ConfigError(
            f"hydra.sweeper.resume=true but no sweep of this command to continue under {root} ({found}); "
            "run it without hydra.sweeper.resume=true to start a new sweep, or give a sweep's directory with "
            "hydra.sweep.dir=<dir>"
        )

    def _refuse_or_hint(self, sweep_dir: Path) -> None:
        """Before a new sweep of this command: refuse when its newest sweep stopped for failures (the same trials
        would fail again); else, when it has an unfinished one, say how to continue that one instead."""
        from qframe.tuning.outputs import FAILURE_FIX, stop_report

        try:
            _, mine, _, _ = self._candidates(sweep_dir)
        except OSError:
            return
        if mine and mine[0].outcome == "stopped":
            newest = mine[0]
            why = stop_report(newest.state, self.settings, newest.path.parent)
            raise QFrameError(
                f"{why}; not starting another sweep of this command: {FAILURE_FIX} (a new hydra.sweep.dir=<dir> "
                "starts a new sweep anyway)"
            )
        for candidate in mine:
            if candidate.outcome is None:
                counts = candidate.state.counts()
                print(
                    f"note: starting a new sweep in {sweep_dir}; an unfinished sweep of this command is in "
                    f"{candidate.path.parent} ({counts['complete'] + counts['failed']} of "
                    f"{int(self.settings.n_trials)} trials done): add hydra.sweeper.resume=true to continue it instead",
                    flush=True,
                )
                return


def restore_history(state: SweepState, optimizer: Any, settings: SweepSettings) -> list[Trial]:
    """Tell ``optimizer`` every trial of ``state``; return the trials to run again.

    A trial that was running when the sweep died is run again once (pending for the algorithm meanwhile; its
    interrupted attempt kept in its history); one that was interrupted twice is failed. A trial that waited for a
    retry of a transient failure (:mod:`qframe.tuning.retries`) is run again too.
    """
    from qframe.tuning.retries import attempt_record

    retry: list[Trial] = []
    for trial in state.trials:
        if trial.status == "running":
            queued = bool(trial.history) and trial.history[-1]["attempt"] == trial.attempts  # waited for a retry
            if queued or not any(a["status"] == "interrupted" for a in trial.history):
                if not queued:
                    why = "interrupted: the sweep died while it ran"
                    trial.history.append(attempt_record(trial, why, None, trial.working_dir, "interrupted"))
                retry.append(trial)
                optimizer.restore(trial.number, trial.vals, None, running=True)
                continue
            trial.status, trial.error = "failed", "interrupted twice (the sweep died while it ran)"
        done = trial.status == "complete" and trial.value is not None
        optimizer.restore(trial.number, trial.vals, settings.loss(trial.value) if done else None)
    return retry


def resuming_line(state: SweepState, sweep_dir: Path, n_trials: int, retried: int) -> str:
    """What a resumed sweep says at its start."""
    counts = state.counts()
    done = counts["complete"] + counts["failed"]
    return (
        f"resuming the sweep in {sweep_dir}: {done} of {n_trials} trials done ({counts['complete']} "
        f"complete, {counts['failed']} failed), {retried} interrupted (retried); {max(n_trials - done, 0)} to go"
    )


def sweeps_root(config: Any, sweep_dir: Path) -> tuple[Path, str]:
    """(the sweeps root, the glob of the sweep states under it) for ``resume=true``.

    The root is the part of the configured ``hydra.sweep.dir`` before its first ``${now:...}`` component (qframe's
    ``${workdir}/multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}`` -> ``<workdir>/multirun``, glob ``*/*/sweep_state.json``).
    A sweep dir without a time stamp is its own root: only it is looked at.
    """
    from omegaconf import OmegaConf

    raw = str(OmegaConf.to_container(config.hydra.sweep, resolve=False).get("dir", ""))
    at = raw.find("${now:")
    if at < 0:
        return sweep_dir, STATE_FILE
    rest = raw[raw.rfind("/", 0, at) + 1 :]
    levels = len([part for part in rest.split("/") if part])
    root = sweep_dir
    for _ in range(levels):
        root = root.parent
    return root, "/".join(["*"] * levels + [STATE_FILE])
