"""The report as one self-contained HTML page: figures as inline base64 PNG, tables as HTML, no external URL.

A short inline script counts the figures that decoded and writes the count into ``<body data-figures=...>`` and the
footer, so a browser test (and a reader) can tell that every figure drew.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable

from qframe.core.tearsheet.model import Analysis

# the metric names the run records and the terminal summary shows
SIGNAL_METRICS = ("IC", "ICIR", "Rank IC", "Rank ICIR")
RISK_BLOCKS = ("benchmark", "excess_return_without_cost", "excess_return_with_cost")
RISK_STATS = ("mean", "std", "annualized_return", "information_ratio", "max_drawdown")

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1400px;color:#222;
padding:0 1em}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}td,th{border:1px solid #ddd;padding:2px 8px}
th{background:#f4f4f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:flex;flex-wrap:wrap;gap:12px}.grid figure{margin:0}.grid img{max-width:100%;height:auto;
border:1px solid #eee}figcaption{font-size:12px;color:#666}.meta td{border:none;padding:1px 10px 1px 0}
ul{margin:.3em 0;padding-left:1.4em}footer{margin-top:2em;color:#888;font-size:12px}
"""

_SCRIPT = """
window.addEventListener('load',function(){var imgs=document.querySelectorAll('img.figure'),ok=0;
imgs.forEach(function(i){if(i.complete&&i.naturalWidth>0)ok++;});
document.body.setAttribute('data-figures',ok+'/'+imgs.length);
document.getElementById('status').textContent=ok+' of '+imgs.length+' figures drawn';});
"""


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _e(text: object) -> str:
    return html.escape(str(text))


def table(header: list[str], rows: Iterable[list[object]], numeric_from: int = 1) -> str:
    """An HTML table; cells from column ``numeric_from`` on are right-aligned."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if i >= numeric_from else ''}>{_e(c)}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def figure(stem: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img class="figure" alt="{_e(stem)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(stem)}.png</figcaption></figure>"
    )


def _figures(figs: dict[str, tuple[str, bytes]], section: str) -> str:
    return '<div class="grid">' + "".join(figure(s, png) for s, (sec, png) in figs.items() if sec == section) + "</div>"


def metrics_tables(metrics: dict[str, float]) -> str:
    """The run's recorded signal and risk metrics, as the terminal summary shows them."""
    signal = table(list(SIGNAL_METRICS), [[_num(metrics.get(k)) for k in SIGNAL_METRICS]], numeric_from=0)
    risk = table(
        ["series", *RISK_STATS],
        [[b, *(_num(metrics.get(f"{b}.{s}")) for s in RISK_STATS)] for b in RISK_BLOCKS],
    )
    return signal + risk


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body>{body}"
        f'<footer>qframe run report · <span id="status">figures not checked (scripts off)</span></footer>'
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>" if items else ""


def run_page(a: Analysis, figs: dict[str, tuple[str, bytes]]) -> str:
    """The page of one run."""
    inp = a.inputs
    meta = "".join(f"<tr><td><b>{_e(k)}</b></td><td>{_e(v)}</td></tr>" for k, v in inp.header)
    parts = [
        f"<h1>Run report: {_e(inp.name)} <small>({_e(inp.run_id)})</small></h1>",
        f'<table class="meta">{meta}</table>',
    ]
    if inp.data_lines:
        parts += ["<h2>Data</h2>", _list(inp.data_lines)]
    parts += ["<h2>Metrics (test segment)</h2>", metrics_tables(inp.metrics)]
    if inp.control_lines:
        parts += ["<h3>Controls</h3>", _list(inp.control_lines)]
    if inp.notes:
        parts += ["<h3>Notes</h3>", _list(inp.notes)]
    parts += ["<h2>Signal</h2>", _figures(figs, "signal")]
    if a.decay is not None:
        rows = [[h, _num(r["IC"]), _num(r["RankIC"])] for h, r in a.decay.iterrows()]
        parts += ["<h3>IC decay</h3>", table(["horizon", "IC", "Rank IC"], rows)]
    if a.quantile_summary is not None:
        s = a.quantile_summary
        rows = [
            [f"Q{q}" if q != "long-short" else q, _num(r["mean"], 6), _num(r["stderr"], 6)] for q, r in s.iterrows()
        ]
        parts += ["<h3>Mean next-day return by quantile</h3>", table(["quantile", "mean", "std error"], rows)]
    parts += ["<h2>Portfolio</h2>", _figures(figs, "portfolio"), "<h3>Monthly excess return with cost</h3>"]
    months = a.monthly_excess
    parts.append(
        table(["year", *[str(m) for m in months.columns]], [[y, *(_num(v) for v in r)] for y, r in months.iterrows()])
    )
    return _page(f"qframe run {inp.run_id[:8]} {inp.name}", "".join(parts))


def comparison_page(runs: list[Analysis], figs: dict[str, tuple[str, bytes]]) -> str:
    """The page comparing several runs: their headers, metrics side by side and curves overlaid."""
    labels = [a.label for a in runs]
    keys = list(dict.fromkeys(k for a in runs for k, _ in a.inputs.header))
    settings = [[k, *(dict(a.inputs.header).get(k, "-") for a in runs)] for k in keys]
    names = [*SIGNAL_METRICS, *(f"{b}.{s}" for b in RISK_BLOCKS for s in RISK_STATS)]
    extra = sorted({k for a in runs for k in a.inputs.metrics if k.startswith("controls.")})
    metrics = [[k, *(_num(a.inputs.metrics.get(k)) for a in runs)] for k in [*names, *extra]]
    body = (
        f"<h1>Comparison of {len(runs)} runs</h1>"
        f"<h2>Metrics (test segment)</h2>{table(['metric', *labels], metrics)}"
        f"<h2>Curves</h2>{_figures(figs, 'comparison')}"
        f"<h2>Settings</h2>{table(['setting', *labels], settings, numeric_from=99)}"
    )
    return _page(f"qframe comparison of {len(runs)} runs", body)
