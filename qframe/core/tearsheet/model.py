"""What a run report is drawn from (:class:`ReportInputs`) and the analysis computed from it (:class:`Analysis`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from qframe.core.tearsheet import analysis as an


@dataclass
class ReportInputs:
    """One run's series and settings, as a finished run holds them or as its artifacts record them.

    ``close``: the market's closes (calendar x instruments) over at least the test segment and the 21 days after it,
    for forward returns; None leaves out IC decay and the quantile analysis. ``band`` / ``buy_and_hold``: the
    random-score controls' 5-95 % band (columns ``p05``, ``p95``) and the buy-and-hold curve, cumulative excess with
    cost (:class:`qframe.core.controls.ControlResult`). ``header``: (label, value) pairs shown at the top.
    """

    run_id: str
    name: str
    scores: pd.Series
    daily_ic: pd.DataFrame
    report: pd.DataFrame
    metrics: dict[str, float]
    mode: str = "sum"
    periods: int = 252
    close: pd.DataFrame | None = None
    band: pd.DataFrame | None = None
    buy_and_hold: pd.Series | None = None
    header: list[tuple[str, str]] = field(default_factory=list)
    data_lines: list[str] = field(default_factory=list)
    control_lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Analysis:
    """Every number the report shows for one run."""

    inputs: ReportInputs
    excess: pd.Series
    excess_no_cost: pd.Series
    drawdown: pd.Series
    monthly_excess: pd.DataFrame
    ic_by_month: pd.Series
    rolling_ir: pd.Series
    autocorrelation: pd.Series
    decay: pd.DataFrame | None
    quantiles: pd.DataFrame | None
    quantile_summary: pd.DataFrame | None

    @property
    def label(self) -> str:
        return f"{self.inputs.run_id[:8]} {self.inputs.name}".strip()


def analyse(inputs: ReportInputs) -> Analysis:
    """Compute the report's numbers from ``inputs``."""
    report, mode = inputs.report, inputs.mode
    excess = an.excess(report, cost=True)
    signal = an.score_matrix(inputs.scores)
    decay = quantiles = summary = None
    if inputs.close is not None:
        forward = an.forward_returns(inputs.close, pd.DatetimeIndex(signal.index))
        decay = an.ic_decay(signal, forward)
        quantiles = an.quantile_returns(signal, forward[1])
        summary = an.quantile_summary(quantiles)
    return Analysis(
        inputs=inputs,
        excess=excess,
        excess_no_cost=an.excess(report, cost=False),
        drawdown=an.drawdown(excess, mode),
        monthly_excess=an.monthly_table(excess, mode),
        ic_by_month=an.monthly_mean(inputs.daily_ic["IC"]),
        rolling_ir=an.rolling_ir(excess, inputs.periods),
        autocorrelation=an.signal_autocorrelation(signal),
        decay=decay,
        quantiles=quantiles,
        quantile_summary=summary,
    )


def max_drawdown(a: Analysis) -> float:
    """The deepest point of the drawdown curve (equals the run's ``excess_return_with_cost.max_drawdown``)."""
    return float(np.nanmin(a.drawdown.to_numpy())) if len(a.drawdown) else float("nan")
