"""The run report: ``report.html`` (one self-contained page) and its figures as PNGs.

:func:`write_report` draws one run's report from :class:`ReportInputs` (built by :func:`live_inputs` for a finished
run, or by :mod:`qframe.experiments.report_cli` from a recorded one); :func:`write_comparison` draws several runs'.
Figures are matplotlib (already a dependency) rendered once to PNG, written as files and embedded in the page as
base64, so the page needs no network and no JavaScript library.
"""

from __future__ import annotations

from pathlib import Path

from qframe.core.tearsheet.inputs import live_inputs
from qframe.core.tearsheet.model import Analysis, ReportInputs, analyse

#: the two standard plots keep their place at the top of a run's artifacts; the others go under FIGURE_DIR
STANDARD_FIGURES = ("cumulative_return", "ic")
FIGURE_DIR = "figures"
PAGE = "report.html"

__all__ = ["Analysis", "ReportInputs", "analyse", "live_inputs", "write_comparison", "write_report"]


def write_report(inputs: ReportInputs, out: Path) -> Analysis:
    """Write ``report.html``, ``cumulative_return.png``, ``ic.png`` and ``figures/*.png`` of one run into ``out``."""
    from qframe.core.tearsheet.figures import draw_all
    from qframe.core.tearsheet.page import run_page

    a = analyse(inputs)
    figs = draw_all(a)
    (out / FIGURE_DIR).mkdir(parents=True, exist_ok=True)
    for stem, (_, png) in figs.items():
        path = out / f"{stem}.png" if stem in STANDARD_FIGURES else out / FIGURE_DIR / f"{stem}.png"
        path.write_bytes(png)
    (out / PAGE).write_text(run_page(a, figs), encoding="utf-8")
    return a


def write_comparison(inputs: list[ReportInputs], path: Path) -> list[Analysis]:
    """Write the page comparing several runs (metrics side by side, curves overlaid) to ``path``."""
    from qframe.core.tearsheet.figures import compare_all
    from qframe.core.tearsheet.page import comparison_page

    runs = [analyse(i) for i in inputs]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(comparison_page(runs, compare_all(runs)), encoding="utf-8")
    return runs
