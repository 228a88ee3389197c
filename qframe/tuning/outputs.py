"""What a sweep leaves in its directory: optimization_results.yaml, the trials table, the history plot; and what it
prints: the live progress line per trial, the report at its end."""

from __future__ import annotations

import math
import shlex
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from qframe.tuning.settings import SweepSettings
from qframe.tuning.space import Space, format_value
from qframe.tuning.state import SweepState, Trial

RESULTS_FILE = "optimization_results.yaml"
TRIALS_PARQUET = "trials.parquet"
TRIALS_CSV = "trials.csv"
HISTORY_PNG = "optimization_history.png"


def best_trial(state: SweepState, direction: str) -> Trial | None:
    done = [t for t in state.trials if t.status == "complete" and t.value is not None]
    if not done:
        return None
    pick = max if direction == "maximize" else min
    return pick(done, key=lambda t: t.value)


# what to change after a stop for failures (the sweep's last line, and a resume's or re-run's refusal)
FAILURE_FIX = (
    "fix the setting that fails, or raise hydra.sweeper.max_failure_rate and add hydra.sweeper.resume=true "
    "to continue it"
)


def stop_report(state: SweepState, settings: SweepSettings, sweep_dir: Path | None = None) -> str | None:
    """Why the sweep of ``state`` is stopped under ``settings`` (its counts and most common error), or None.

    The one place the stop's counts are put into words: the line a sweep stops with and the one a resume or re-run
    of it refuses with.
    """
    counts = state.counts()
    if not settings.too_many_failures(counts["failed"]):
        return None
    errors = Counter(t.error or "unknown error" for t in state.trials if t.status == "failed")
    error, times = errors.most_common(1)[0]
    where = f" {sweep_dir}" if sweep_dir is not None else ""
    return (
        f"sweep{where} stopped: {counts['failed']} of {int(settings.n_trials)} trials failed ({counts['complete']} "
        f"complete), more than max_failure_rate={settings.max_failure_rate} allows; most common error ({times} of "
        f"{counts['failed']}): {error}"
    )


def best_command(space: Space, trial: Trial, program: str = "qframe") -> str:
    """The one-line command that re-runs ``trial`` as a single run."""
    args = [f"{k}={format_value(v)}" for k, v in trial.params.items()] + list(space.fixed)
    return " ".join([program, *(shlex.quote(a) for a in args)])


def trials_frame(state: SweepState) -> Any:
    """A row per attempt of each trial: its earlier attempts (status ``retried`` or ``interrupted``), then its last
    (the trial's status); a trial never retried has one row."""
    import pandas as pd

    rows = []
    for t in state.trials:
        params = {f"params.{k}": v for k, v in t.params.items()}
        for a in t.history:
            started, ended = a.get("started"), a.get("ended")
            duration = None if started is None or ended is None else ended - started
            row = {"trial": t.number, "attempt": a["attempt"], "job": a["job"], "status": a["status"]}
            row.update({"objective": None, **params, "duration_s": duration, "started": started, "ended": ended})
            rows.append({**row, "error": a.get("error")})
        row = {"trial": t.number, "attempt": t.attempts, "job": t.job, "status": t.status, "objective": t.value}
        row.update(params)
        row.update({"duration_s": t.duration, "started": t.started, "ended": t.ended, "error": t.error})
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col in frame.columns:
        # mixed-type choices (1, "x") would not fit one Parquet type
        if col.startswith("params.") and frame[col].map(type).nunique() > 1:
            frame[col] = frame[col].astype(str)
    return frame


def write_outputs(
    sweep_dir: Path,
    state: SweepState,
    space: Space,
    direction: str,
    objective: str | None,
    program: str,
    stopped: str | None = None,
) -> dict[str, Path]:
    """Write every output file; returns their paths by kind."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    counts = state.counts()
    best = best_trial(state, direction)
    doc: dict[str, Any] = {
        "name": "qframe-hyperopt",
        "objective": objective,
        "direction": direction,
        "algo": state.settings.get("algo"),
        "n_trials": len(state.trials),
        "completed": counts["complete"],
        "failed": counts["failed"],
        "best_value": None,
        "best_params": None,
        "best_trial": None,
        "best_job_dir": None,
        "best_command": None,
    }
    if best is not None:
        doc.update(
            best_value=float(best.value),
            best_params=[f"{k}={format_value(v)}" for k, v in best.params.items()],
            best_trial=best.number,
            best_job_dir=best.working_dir or str(sweep_dir / str(best.job)),
            best_command=best_command(space, best, program),
        )
    if stopped:
        doc["stopped"] = stopped
    paths = {"results": sweep_dir / RESULTS_FILE}
    paths["results"].write_text(yaml.safe_dump(doc, sort_keys=False))
    frame = trials_frame(state)
    paths["csv"] = sweep_dir / TRIALS_CSV
    frame.to_csv(paths["csv"], index=False)
    paths["parquet"] = sweep_dir / TRIALS_PARQUET
    frame.to_parquet(paths["parquet"], index=False)
    paths["history"] = sweep_dir / HISTORY_PNG
    plot_history(state, direction, objective, paths["history"])
    return paths


def plot_history(state: SweepState, direction: str, objective: str | None, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = history_figure(state, direction, objective)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def history_figure(state: SweepState, direction: str, objective: str | None) -> Any:
    """The optimization history: each trial's objective by trial number, the best so far, the failed trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4.5))
    done = [t for t in state.trials if t.status == "complete" and t.value is not None]
    failed = [t for t in state.trials if t.status == "failed"]
    if done:
        ax.scatter([t.number for t in done], [t.value for t in done], s=18, label="trial", color="tab:blue")
        running, xs, ys = None, [], []
        for t in sorted(done, key=lambda t: t.number):
            if running is None or (t.value > running if direction == "maximize" else t.value < running):
                running = t.value
            xs.append(t.number)
            ys.append(running)
        ax.step(xs, ys, where="post", color="tab:red", label="best so far")
    if failed:
        ax.scatter([t.number for t in failed], [0.0] * len(failed), marker="x", color="grey", label="failed (at 0)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are numbered: no tick at trial 0.5
    ax.set_xlabel("trial")
    ax.set_ylabel(objective or "objective")
    ax.set_title(f"optimization history ({direction})")
    if done or failed:
        ax.legend(loc="best")
    fig.tight_layout()
    return fig


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


class Progress:
    """One rich line per finished trial: number, params, objective, best so far, failures, ETA."""

    def __init__(self, n_trials: int, direction: str, label: str = "", extra: Any = None) -> None:
        from rich.console import Console

        self.console = Console(highlight=False)
        self.n_trials = n_trials
        self.direction = direction
        self.label = label  # a pipeline's stage: "[stage] " before each line
        self.extra = extra  # a callable: text after each line (a pipeline's global best)
        self.t0 = time.time()
        self.finished_here = 0

    def trial(self, state: SweepState, trial: Trial) -> None:
        self.finished_here += 1
        counts = state.counts()
        done = counts["complete"] + counts["failed"]
        best = best_trial(state, self.direction)
        left = max(self.n_trials - done, 0)
        # wall time per trial finished in this run: the slots' parallelism is already in it
        eta = left * (time.time() - self.t0) / self.finished_here
        from rich.markup import escape

        params = escape(" ".join(f"{k.split('.')[-1]}={_fmt(v)}" for k, v in trial.params.items()))
        if trial.status == "complete":
            result = f"[green]{_fmt(trial.value)}[/]"
        else:
            result = f"[red]failed[/] ({escape((trial.error or '').splitlines()[0][:80])})"
        best_txt = _fmt(best.value) if best else "-"
        label = f"[cyan]{escape(self.label)}[/] " if self.label else ""
        extra = f" | {escape(self.extra())}" if self.extra is not None else ""
        attempt = f" attempt {trial.attempts}" if trial.attempts > 1 else ""  # a retried trial
        self.console.print(
            f"{label}[bold]trial {trial.number}[/] [{done}/{self.n_trials}] job {trial.job}{attempt} {result} | best "
            f"{best_txt}{extra} | failed {counts['failed']} | eta {eta:.0f}s | {params}",
            soft_wrap=True,
        )


def report_done(
    state: SweepState, space: Space, direction: str, objective: str | None, results: Path, stopped: bool = False
) -> None:
    """The sweep's last lines: its counts and results file, the best trial and the command that re-runs it."""
    from rich.console import Console

    console = Console(highlight=False)
    counts = state.counts()
    best = best_trial(state, direction)
    ended = "sweep stopped" if stopped else "sweep done"
    console.print(
        f"[bold]{ended}[/]: {counts['complete']} complete, {counts['failed']} failed -> {results}", soft_wrap=True
    )
    if best is not None:
        console.print(f"best {objective or 'objective'} = {best.value:.6g} (trial {best.number}, job {best.job})")
        print_rerun(console, space, best)


def print_rerun(console: Any, space: Space, best: Trial) -> None:
    """The line with the command that re-runs ``best`` as a single run."""
    from rich.markup import escape

    console.print(f"re-run: {escape(best_command(space, best))}", soft_wrap=True)
