"""What a pipeline leaves in its sweep dir besides its stages' own outputs: ``pipeline_results.yaml`` (every stage's
best and the global best, each with the command that re-runs it) and ``pipeline_history.png`` (each stage's best so
far against its trials); and the lines it ends with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qframe.tuning.pipeline import Pipeline
from qframe.tuning.space import Space, format_value
from qframe.tuning.state import STATE_FILE, SweepState, Trial

PIPELINE_RESULTS = "pipeline_results.yaml"
PIPELINE_PNG = "pipeline_history.png"


@dataclass
class StageBest:
    """A finished stage's best trial and what re-creates it."""

    stage: str
    trial: Trial
    space: Space
    fixed: list[str]  # the stage's own fixed overrides (not the command line's)
    run_id: str | None  # the stage's MLflow run
    adopted: list[str] = field(default_factory=list)  # a re-evaluating stage's: the model settings of its predictions

    @property
    def overrides(self) -> list[str]:
        """The trial's settings as overrides: the stage's own fixed ones and its searched values."""
        return [*self.fixed, *(f"{k}={format_value(v)}" for k, v in self.trial.params.items())]


def write_results(
    sweep_dir: Path,
    pipeline: Pipeline,
    records: dict[str, dict[str, Any]],
    bests: dict[str, StageBest],
    best: StageBest | None,
    failed: str | None,
) -> None:
    """``pipeline_results.yaml`` (``records``: each stage's status; ``best``: the global best) and the plot."""
    from qframe.tuning.outputs import RESULTS_FILE, best_command

    doc: dict[str, Any] = {
        "name": "qframe-pipeline",
        "objective": pipeline.objective,
        "direction": pipeline.direction,
        "order": pipeline.order(),
        "stages": {},
        "global_best": None,
    }
    for name, stage in pipeline.stages.items():
        entry: dict[str, Any] = {
            "status": records.get(name, {}).get("status", "pending"),
            "from": stage.source,
            "reevaluates": stage.reevaluates,
            "objective": stage.objective,
            "direction": stage.direction,
            "n_trials": int(stage.n_trials),
            "results": str(sweep_dir / name / RESULTS_FILE),
        }
        found = bests.get(name)
        if found is not None:
            entry |= {
                "best_value": float(found.trial.value),
                "best_trial": found.trial.number,
                "best_params": found.overrides,
                "best_command": best_command(found.space, found.trial),
            }
        doc["stages"][name] = entry
    if best is not None:
        doc["global_best"] = {
            "value": float(best.trial.value),
            "stage": best.stage,
            "trial": best.trial.number,
            "params": best.overrides,
            "command": best_command(best.space, best.trial),
        }
    if failed:
        doc["stopped"] = failed
    (sweep_dir / PIPELINE_RESULTS).write_text(yaml.safe_dump(doc, sort_keys=False))
    plot(sweep_dir / PIPELINE_PNG, pipeline, best)


def plot(path: Path, pipeline: Pipeline, best: StageBest | None) -> None:
    """Each stage's best so far against its trial numbers, the global best as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, stage in pipeline.stages.items():
        state_path = path.parent / name / STATE_FILE
        if not state_path.is_file():
            continue
        done = sorted(
            (t for t in SweepState.load(state_path).trials if t.status == "complete" and t.value is not None),
            key=lambda t: t.number,
        )
        xs, ys, running = [], [], None
        for t in done:
            if running is None or (t.value > running if stage.direction == "maximize" else t.value < running):
                running = t.value
            xs.append(t.number)
            ys.append(running)
        if xs:
            ax.step(xs, ys, where="post", marker="o", markersize=3, label=name)
    if best is not None:
        ax.axhline(best.trial.value, color="grey", linestyle="--", label=f"global best ({best.stage})")
    ax.set_xlabel("trial of the stage")
    ax.set_ylabel(pipeline.objective or "objective")
    ax.set_title(f"pipeline: best so far per stage ({pipeline.direction})")
    if ax.lines:
        ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(
    console: Any,
    sweep_dir: Path,
    pipeline: Pipeline,
    bests: dict[str, StageBest],
    best: StageBest | None,
    failed: str | None,
) -> None:
    """The pipeline's last lines: where its results are, each stage's best, the global best and its re-run command."""
    from rich.markup import escape

    from qframe.tuning.outputs import best_command

    ended = "pipeline stopped" if failed else "pipeline done"
    console.print(f"[bold]{ended}[/] -> {sweep_dir / PIPELINE_RESULTS}", soft_wrap=True)
    for name in pipeline.order():
        found = bests.get(name)
        if found is not None:
            console.print(f"  {name}: best {found.trial.value:.6g} (trial {found.trial.number})", soft_wrap=True)
    if best is not None:
        console.print(
            f"global best {pipeline.objective or 'objective'} = {best.trial.value:.6g} (stage {best.stage}, "
            f"trial {best.trial.number})",
            soft_wrap=True,
        )
        console.print(f"re-run: {escape(best_command(best.space, best.trial))}", soft_wrap=True)
