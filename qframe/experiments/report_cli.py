"""``qframe runs report RUN [RUN...]``: the report page of recorded runs, and a comparison page for several.

Each run's page is drawn from its artifacts (``pred.parquet``, ``ic.parquet``, ``backtest_report.parquet``,
``controls.parquet``, ``config.yaml``, ``data_report.json``) and recorded metrics; the closes for IC decay and the
quantile analysis come from its dataset, loaded as the run loaded it (from the work directory's cache when there).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qframe.core.errors import DataError, QFrameError

if TYPE_CHECKING:  # `qframe runs list` imports this module: pandas and the report load when a report is asked for
    import pandas as pd

    from qframe.core.tearsheet import ReportInputs
    from qframe.experiments.store import RunStore

#: artifacts a run's report cannot do without
NEEDED = ("pred.parquet", "ic.parquet", "backtest_report.parquet")


def add_parser(sub: Any, store_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``report`` action of ``qframe runs``."""
    report = sub.add_parser(
        "report", help="write the report page (report.html and figures) of runs, and a comparison page for several"
    )
    report.add_argument("runs", metavar="RUN", nargs="+")
    report.add_argument(
        "--out", type=Path, default=Path("qframe-reports"), help="directory to write to (default ./qframe-reports)"
    )
    store_args(report)


def _load(store: RunStore, run: Any, name: str) -> Any:
    """One artifact of ``run``: read where it lies for a local artifact store (MLflow's client costs seconds)."""
    from qframe.core.reuse import _artifact, _local_artifact
    from qframe.experiments.store import read_artifact

    local = _local_artifact(run.info.artifact_uri, name)  # before _artifact, which imports MLflow (2-3 s) first
    return read_artifact(local) if local is not None else _artifact(store, run, name, f"run {run.info.run_id[:8]}")


def _frame(store: RunStore, run: Any, name: str) -> pd.DataFrame:
    import pandas as pd

    frame = _load(store, run, name)
    return frame.set_index(pd.DatetimeIndex(frame[frame.columns[0]], name="datetime")).drop(columns=frame.columns[0])


def _closes(cfg: dict[str, Any], store: RunStore, dates: Any) -> tuple[pd.DataFrame | None, str | None]:
    """The closes of the run's dataset, or (None, why not)."""
    from qframe.core.components import build_component
    from qframe.core.registry import get_registry
    from qframe.core.tearsheet.inputs import closes

    try:
        _, dataset = build_component(get_registry(), "dataset", cfg.get("dataset"), "dataset")
        market = dataset.load(cache_dir=Path(store.workdir) / "cache")
    except (QFrameError, OSError) as exc:
        return None, f"IC decay and quantile returns left out: the run's dataset did not load ({exc})"
    return closes(market, dates), None


def recorded_inputs(store: RunStore, run: Any) -> ReportInputs:
    """The report inputs of a recorded run, from its artifacts and metrics."""
    from qframe.core.controls import ControlResult
    from qframe.core.data_report import report_lines
    from qframe.core.reuse import _scores
    from qframe.core.tearsheet import ReportInputs
    from qframe.core.tearsheet.inputs import header
    from qframe.experiments.store import RecordedRun

    rec = RecordedRun(store, run)
    files = {a.path for a in rec.artifacts()}
    missing = [n for n in NEEDED if n not in files]
    if missing:
        raise DataError(
            f"run {rec.id[:8]} ({rec.name}, {rec.status}) has no {', '.join(missing)}: only a finished run with a "
            "backtest has a report"
        )
    import pandas as pd

    what = f"run {rec.id[:8]}"
    scores = _scores(_load(store, run, "pred.parquet"), what)
    daily_ic, report = _frame(store, run, "ic.parquet"), _frame(store, run, "backtest_report.parquet")
    cfg = _load(store, run, "config.yaml") if "config.yaml" in files else {}
    data = _load(store, run, "data_report.json") if "data_report.json" in files else None
    params = rec.params
    mode = params.get("evaluation.accumulation", "sum")
    try:
        periods = int(float(params.get("market_rules.annualization", 252)))
    except ValueError:
        periods = 252
    checks = ControlResult(daily=_frame(store, run, "controls.parquet")) if "controls.parquet" in files else None
    close, why = _closes(cfg, store, pd.DatetimeIndex(scores.index.get_level_values("datetime")))
    metrics = rec.metrics
    return ReportInputs(
        run_id=rec.id,
        name=rec.name or "",
        scores=scores,
        daily_ic=daily_ic,
        report=report,
        metrics=metrics,
        mode=mode,
        periods=periods,
        close=close,
        band=checks.band(mode) if checks else None,
        buy_and_hold=checks.buy_and_hold_curve(mode) if checks else None,
        header=header(cfg, report, mode, periods, data),
        data_lines=report_lines(data) if data else [],
        control_lines=[
            f"{k} = {v:.4f}" for k, v in sorted(metrics.items()) if k.startswith("controls.") and math.isfinite(v)
        ],
        notes=[why] if why else [],
    )


def main(store: RunStore, args: argparse.Namespace) -> int:
    """Write ``<out>/<run id>/report.html`` (and figures) for each run, and ``<out>/comparison.html`` for several."""
    from qframe.core.tearsheet import FIGURE_DIR, PAGE, write_comparison, write_report

    runs = [store.resolve(r) for r in args.runs]
    inputs = [recorded_inputs(store, run) for run in runs]
    for i in inputs:
        directory = args.out / i.run_id[:8]
        directory.mkdir(parents=True, exist_ok=True)
        write_report(i, directory)
        print(f"{i.run_id[:8]} {i.name}: {directory / PAGE} (figures: {directory}/*.png, {directory / FIGURE_DIR})")
    if len(inputs) > 1:
        path = args.out / "comparison.html"
        write_comparison(inputs, path)
        print(f"comparison of {len(inputs)} runs: {path}")
    return 0
