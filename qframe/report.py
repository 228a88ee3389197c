"""The compact end-of-run summary printed to the terminal (rich)."""

from __future__ import annotations

import math
import sys

from rich.console import Console
from rich.table import Table

from qframe.core.markets import market_summary
from qframe.core.workflow import RISK_BLOCKS, RISK_STATS, SIGNAL_METRICS, RunResult


def _fmt(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.4f}"


def print_result(result: RunResult, console: Console | None = None) -> None:
    # a pipe or log file gets a width that fits the table instead of rich's 80-column default
    console = console or Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    s = result.settings
    seg = {k: v for k, v in s.get("segments", {}).items() if k in s["samples"]}
    console.print(
        "segments: " + ", ".join(f"{k} {lo}..{hi} ({s['samples'].get(k, 0)} rows)" for k, (lo, hi) in seg.items())
    )
    if s.get("from_run"):
        source = s["from_run"]
        console.print(
            f"predictions: of run {source['run_id'][:8]} ({source['name']}), model {source['model']}, re-evaluated "
            "(no fit)"
        )
    if s.get("market"):
        console.print(f"market rules: {market_summary(s['market'])}")
    if s.get("data_report"):
        from qframe.core.data_report import report_lines

        for line in report_lines(s["data_report"]):
            console.print(line)
    signal = Table(title="Signal (test segment)", title_justify="left")
    for name in SIGNAL_METRICS:
        signal.add_column(name, justify="right")
    signal.add_row(*(_fmt(result.metrics[n]) for n in SIGNAL_METRICS))
    console.print(signal)

    risk = Table(
        title=f"Risk (daily returns, {s['accumulation']} accumulation, annualised with {s['annualization']} periods)",
        title_justify="left",
    )
    risk.add_column("series")
    for stat in RISK_STATS:
        risk.add_column(stat, justify="right")
    for block in RISK_BLOCKS:
        risk.add_row(block, *(_fmt(result.metrics[f"{block}.{stat}"]) for stat in RISK_STATS))
    console.print(risk)
    for line in s.get("controls", []):
        console.print(line)
    for note in result.notes:
        console.print(f"note: {note}")
    if s.get("stages"):
        console.print(f"stages: {s['stages']}")
    console.print(f"objective {result.objective_name} = {_fmt(result.objective)}")
    # paths and commands stay whole lines, however long: they are copied and pasted
    where = f"MLflow run {result.run_id} (experiment {result.experiment_id}) in {result.tracking_uri}"
    console.print(where, soft_wrap=True)
    console.print(f"artifacts: {result.artifact_uri}", soft_wrap=True)
    if result.tracking_uri.startswith(("sqlite:", "file:", "postgresql:", "mysql:")):
        console.print(f"open it: mlflow ui --backend-store-uri {result.tracking_uri}", soft_wrap=True)
    else:
        console.print(f"open it: {result.tracking_uri}", soft_wrap=True)
