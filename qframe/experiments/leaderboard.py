"""Qlib's ``run_all_model`` table: per group of runs, the count and each benchmark metric's mean and std.

The std is the population std (``numpy.std``, ddof 0), as ``run_all_model.py`` computes it. Only FINISHED runs
count; a run without a metric is left out of that metric's mean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qframe.core.errors import ConfigError

#: the metrics of Qlib's benchmark table (excess return with cost for the risk ones)
BOARD_METRICS = (
    "IC",
    "ICIR",
    "Rank IC",
    "Rank ICIR",
    "excess_return_with_cost.annualized_return",
    "excess_return_with_cost.information_ratio",
    "excess_return_with_cost.max_drawdown",
)


def group_key(run: Any, by: str) -> str | None:
    """The value of ``by`` for ``run``: ``tags.KEY``, ``params.KEY`` or a bare param key."""
    if by.startswith("tags."):
        return run.data.tags.get(by[5:])
    return run.data.params.get(by.removeprefix("params."))


def leaderboard(runs: list[Any], by: str) -> Any:
    """A DataFrame: ``by``, ``count``, then ``<metric> mean`` and ``<metric> std`` for :data:`BOARD_METRICS`,
    best mean IC first."""
    import numpy as np
    import pandas as pd

    groups: dict[str, list[Any]] = {}
    for run in runs:
        if run.info.status != "FINISHED":
            continue
        key = group_key(run, by)
        if key is not None:
            groups.setdefault(key, []).append(run)
    if not groups:
        raise ConfigError(
            f"no finished run has {by!r} to group by (a param such as model.name, or tags.KEY); "
            "list the runs with: qframe runs"
        )
    rows = []
    for key, members in groups.items():
        row: dict[str, Any] = {by: key, "count": len(members)}
        for metric in BOARD_METRICS:
            values = np.array([r.data.metrics[metric] for r in members if metric in r.data.metrics], dtype=float)
            row[f"{metric} mean"] = float(values.mean()) if len(values) else float("nan")
            row[f"{metric} std"] = float(values.std()) if len(values) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).sort_values("IC mean", ascending=False, na_position="last").reset_index(drop=True)


def markdown(board: Any, by: str) -> str:
    """The table as Markdown, ``mean ± std`` cells."""
    header = [by, "runs", *BOARD_METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in board.iterrows():
        cells = [str(row[by]), str(row["count"])]
        cells += [f"{row[f'{m} mean']:.4f} ± {row[f'{m} std']:.4f}" for m in BOARD_METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(board: Any, path: Path) -> Path:
    """One panel a metric: a bar per group at its mean, the std as error bar (matplotlib, Agg)."""
    from qframe.core.plots import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(BOARD_METRICS), figsize=(3 * len(BOARD_METRICS), 3.6), squeeze=False)
    names = board.iloc[:, 0].astype(str).tolist()
    for ax, metric in zip(axes[0], BOARD_METRICS, strict=True):
        ax.bar(names, board[f"{metric} mean"], yerr=board[f"{metric} std"], capsize=3, color="tab:blue", alpha=0.8)
        ax.set_title(metric.split(".")[-1], fontsize=9)
        ax.axhline(0, color="grey", lw=0.6)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
