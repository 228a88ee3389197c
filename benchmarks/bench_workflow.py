"""Stage times and peak memory of the default qframe workflow (300 x 2500 synthetic market, LightGBM).

Runs the workflow twice in one fresh work directory: cold (market generated,
features computed) and warm (market and features from the cache), each in its
own subprocess so peak RSS is per run, then the feature stage alone (the same
market, features and thread count, nothing else in the process). Prints one
table and the features in the workflow against the features alone.

    python benchmarks/bench_workflow.py [overrides ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

STAGES = [
    "data",
    "features",
    "processors",
    "fit",
    "predict",
    "signal analysis",
    "backtest + risk",
    "controls",
    "recording",
    "tracking setup",
]


def child(overrides: list[str], workdir: str) -> None:
    t0 = time.perf_counter()
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from qframe.app import conf_dir
    from qframe.core.workflow import run_workflow

    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"workdir={workdir}", *overrides], return_hydra_config=False)
    import_s = time.perf_counter() - t0
    container = OmegaConf.to_container(cfg, resolve=True)
    t1 = time.perf_counter()
    result = run_workflow(container)
    total = time.perf_counter() - t1
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "timings": result.timings,
                "total": total,
                "imports": import_s,
                "peak_mb": peak_mb,
                "metrics": result.metrics,
                "rows": result.settings["samples"],
            }
        )
    )
    from qframe.cli import freeze_for_exit

    freeze_for_exit()  # what the `qframe` command does before its process exits


def standalone(overrides: list[str], workdir: str) -> None:
    """The cold run's feature stage alone: the market from the work directory's cache, features not cached."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from qframe.app import conf_dir
    from qframe.core.components import build_component
    from qframe.core.context import RunContext
    from qframe.core.handler import prepare
    from qframe.core.registry import get_registry

    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"workdir={workdir}", *overrides], return_hydra_config=False)
    cfg = OmegaConf.to_container(cfg, resolve=True)
    registry = get_registry()
    _, dataset = build_component(registry, "dataset", cfg["dataset"], "dataset")
    market = dataset.load(cache_dir=RunContext.for_config(cfg).location.cache_dir)
    prepared = prepare(market, registry, {**cfg["handler"], "cache": False}, cfg.get("segments") or {}, None)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"features": prepared.timings["features"], "peak_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=linear")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--standalone", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.overrides, args.child)
        return
    if args.standalone:
        standalone(args.overrides, args.standalone)
        return

    from rich.console import Console
    from rich.table import Table

    workdir = tempfile.mkdtemp(prefix="qframe-bench-")
    results = {}
    # the feature stage alone before and after the two runs (the machine's load drifts), in a work directory of its
    # own the first time, so the cold run still finds nothing cached
    runs = [("alone 1", "--standalone", tempfile.mkdtemp(prefix="qframe-bench-")), ("cold", "--child", workdir)]
    runs += [("warm", "--child", workdir), ("alone 2", "--standalone", workdir)]
    for label, mode, where in runs:
        proc = subprocess.run(
            [sys.executable, __file__, mode, where, *args.overrides],
            capture_output=True,
            text=True,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        )
        if proc.returncode != 0:
            sys.exit(f"{label} run failed:\n{proc.stderr[-4000:]}")
        results[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    alone = [results.pop("alone 1"), results.pop("alone 2")]

    table = Table(title=f"qframe workflow, {' '.join(args.overrides) or 'defaults'} (seconds, MB)")
    table.add_column("stage")
    for label in results:
        table.add_column(label, justify="right")
    for stage in STAGES:
        table.add_row(stage, *(f"{r['timings'].get(stage, 0.0):.2f}" for r in results.values()))
    table.add_row("all but fit", *(f"{r['total'] - r['timings'].get('fit', 0.0):.2f}" for r in results.values()))
    table.add_row("total (in process)", *(f"{r['total']:.2f}" for r in results.values()))
    table.add_row("imports + compose", *(f"{r['imports']:.2f}" for r in results.values()))
    table.add_row("peak RSS (MB)", *(f"{r['peak_mb']:.0f}" for r in results.values()))
    Console().print(table)
    cold = results["cold"]
    print(f"rows per segment: {cold['rows']}")
    in_workflow = cold["timings"]["features"]
    alone_s = sum(a["features"] for a in alone) / len(alone)
    each = ", ".join(f"{a['features']:.2f}" for a in alone)
    print(
        f"features: {in_workflow:.2f} s in the cold workflow, {alone_s:.2f} s alone (mean of {each}): "
        f"{in_workflow / alone_s:.2f}x; "
        f"alone peak RSS {max(a['peak_mb'] for a in alone):.0f} MB"
    )
    print("metrics (cold): " + ", ".join(f"{k}={cold['metrics'][k]:.4f}" for k in ("IC", "Rank IC", "ICIR")))


if __name__ == "__main__":
    main()
