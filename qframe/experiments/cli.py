"""``qframe runs``: list, show, compare, rank and delete the runs of an MLflow store (:mod:`.store`).

A table on a terminal (rich), plain stable text when piped; ``--json`` and ``--csv`` for scripts. Errors are one
``qframe: error:`` line, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qframe.core.errors import QFrameError
from qframe.experiments import report_cli
from qframe.experiments.store import (
    ERROR_TAG,
    KEY_METRICS,
    OVERRIDES_TAG,
    PARENT_TAG,
    TRIAL_TAG,
    RunStore,
    duration_s,
    model_of,
)

#: listing columns: the key metrics under short headers
_SHORT = {"IC": "IC", "Rank IC": "Rank IC", "excess_return_with_cost.information_ratio": "IR (cost)"}
ACTIONS = ("list", "show", "compare", "leaderboard", "delete", "rerun", "report")


def _store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", help="the work directory whose store to read (default: $QFRAME_HOME or ./.qframe)")
    parser.add_argument(
        "--tracking-uri", help="an MLflow tracking URI (default: MLFLOW_TRACKING_URI, else the workdir's)"
    )


def _select_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiment", help="only this experiment (name or id); default: every experiment")
    parser.add_argument(
        "--filter", help="an MLflow filter, e.g. \"metrics.IC > 0.03 and params.model.name = 'linear'\""
    )
    parser.add_argument("--trials", action="store_true", help="include the trials of sweeps (hidden by default)")
    parser.add_argument(
        "--sweep", metavar="RUN", help="only the runs of this sweep (its parent run, one of its runs, or last)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qframe runs",
        description="The runs recorded in MLflow: list (default), show RUN, compare RUN RUN..., leaderboard --by KEY, "
        "delete RUN.... RUN is a run id, a unique prefix of one, 'last' or a run name.",
    )
    sub = parser.add_subparsers(dest="action")
    listing = sub.add_parser("list", help="recent runs (the default)")
    for p in (parser, listing):
        _store_args(p)
        _select_args(p)
        p.add_argument("--sort", help="e.g. -metrics.IC (descending), start_time; default: newest first")
        p.add_argument("--limit", type=int, default=None, help="at most this many runs (default 50; 0: all)")
        p.add_argument("--json", action="store_true", help="JSON, one object a run")
        p.add_argument("--csv", action="store_true", help="CSV, one row a run")
    show = sub.add_parser("show", help="one run: params as overrides, metrics, tags, artifacts, how to re-run it")
    show.add_argument("run", metavar="RUN")
    show.add_argument("--json", action="store_true")
    _store_args(show)
    compare = sub.add_parser("compare", help="the params that differ and the metrics of several runs")
    compare.add_argument("runs", metavar="RUN", nargs="+")
    compare.add_argument("--png", type=Path, help="write their cumulative excess returns (with cost) to this PNG")
    compare.add_argument("--json", action="store_true")
    _store_args(compare)
    board = sub.add_parser("leaderboard", help="per group: count, mean and std of the benchmark metrics")
    board.add_argument("--by", default="model.name", help="a param (or tags.KEY) to group by (default model.name)")
    _select_args(board)
    board.add_argument("--json", action="store_true")
    board.add_argument("--csv", action="store_true")
    board.add_argument("--markdown", action="store_true")
    board.add_argument("--png", type=Path, help="bars of each metric's mean with std error bars, to this PNG")
    board.add_argument(
        "--log",
        action="store_true",
        help="also log the table (Markdown, CSV) and the bars (PNG) as artifacts of a new run tagged "
        "qframe.kind=report, in the experiment of the runs ranked",
    )
    _store_args(board)
    delete = sub.add_parser("delete", help="delete runs (restorable in MLflow unless --purge)")
    delete.add_argument("runs", metavar="RUN", nargs="+")
    delete.add_argument("--purge", action="store_true", help="remove the runs and their artifacts for good")
    _store_args(delete)
    rerun = sub.add_parser("rerun", help="run RUN again from the overrides it recorded (plus new ones)")
    rerun.add_argument("run", metavar="RUN")
    rerun.add_argument("overrides", nargs="*", help="KEY=VALUE overrides on top of the recorded ones")
    _store_args(rerun)
    report_cli.add_parser(sub, _store_args)
    return parser


def main(argv: list[str]) -> int:
    """Run ``qframe runs``; returns the exit status."""
    # `--sort -metrics.IC`: a value starting with "-" is argparse's option unless joined to its flag
    argv = list(argv)
    for i in range(len(argv) - 1):
        if argv[i] == "--sort" and argv[i + 1].startswith("-"):
            argv[i : i + 2] = [f"--sort={argv[i + 1]}", ""]
    args = _parser().parse_args([a for a in argv if a != ""])
    action = args.action or "list"
    try:
        store = RunStore.open(args.tracking_uri, args.workdir)
        return {
            "list": _list,
            "show": _show,
            "compare": _compare,
            "leaderboard": _leaderboard,
            "delete": _delete,
            "rerun": _rerun,
            "report": report_cli.main,
        }[action](store, args)
    except QFrameError as exc:
        print(f"qframe: error: {exc}", file=sys.stderr)
        return 2


# --------------------------------------------------------------------------------------------------------- output


def _tty() -> bool:
    return sys.stdout.isatty()


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if not math.isfinite(value) else f"{value:.4f}"
    return str(value)


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _table(title: str | None, header: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> None:
    """A rich table on a terminal; aligned plain text (stable, no colour, no truncation) when piped."""
    if _tty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for i, name in enumerate(header):
            table.add_column(name, justify="right" if i in right else "left")
        for row in rows:
            table.add_row(*row)
        Console(highlight=False).print(table)
        return
    if title:
        print(title)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(header))
    for row in rows:
        print(line(row))


# --------------------------------------------------------------------------------------------------------- list


def _run_record(store: RunStore, run: Any) -> dict[str, Any]:
    info = run.info
    return {
        "id": info.run_id,
        "name": info.run_name,
        "experiment": store.experiment_name(info.experiment_id),
        "status": info.status,
        "start": _when(info.start_time),
        "end": _when(info.end_time),
        "duration_s": duration_s(run),
        "model": model_of(run),
        "parent": run.data.tags.get(PARENT_TAG),
        "trial": run.data.tags.get(TRIAL_TAG),
        "metrics": dict(sorted(run.data.metrics.items())),
    }


def _list(store: RunStore, args: argparse.Namespace) -> int:
    limit = 50 if args.limit is None else (None if args.limit == 0 else args.limit)
    runs = store.search_runs(args.experiment, args.filter, args.sort, limit, args.trials, args.sweep)
    records = [_run_record(store, r) for r in runs]
    if args.json:
        print(json.dumps(records, indent=2, default=str))
        return 0
    if args.csv:
        import csv

        metrics = sorted({k for r in records for k in r["metrics"]})
        writer = csv.writer(sys.stdout, lineterminator="\n")
        base = ["id", "name", "experiment", "status", "start", "end", "duration_s", "model", "parent", "trial"]
        writer.writerow(base + metrics)
        for r in records:
            writer.writerow(
                [r[k] if r[k] is not None else "" for k in base] + [r["metrics"].get(m, "") for m in metrics]
            )
        return 0
    if not records:
        print(f"no runs match in {store._shown_uri()}")
        return 0
    header = ["id", "name", "status", "started (UTC)", "duration", "model", *(_SHORT[m] for m in KEY_METRICS)]
    rows = [
        [
            r["id"][:8] if _tty() else r["id"],
            r["name"] or "",
            r["status"],
            r["start"],
            _duration(r["duration_s"]),
            r["model"],
            *(_fmt(r["metrics"].get(m)) for m in KEY_METRICS),
        ]
        for r in records
    ]
    _table(None, header, rows, right={4, 6, 7, 8})
    if _tty():
        print(f"{len(records)} runs from {store._shown_uri()}; details: qframe runs show RUN")
    return 0


# --------------------------------------------------------------------------------------------------------- show


def override(key: str, value: str) -> str:
    """``key=value`` as a Hydra override a shell reads back (values with spaces or specials quoted)."""
    if value == "None":
        value = "null"
    elif value in ("True", "False"):
        value = value.lower()
    elif value == "" or any(c in value for c in " ,'\"=:{}()\\") and not value.startswith(("[", "{")):
        value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return shlex.quote(f"{key}={value}")


def rerun_command(run: Any) -> str:
    """The command that re-runs ``run`` from its recorded overrides, or from all its params."""
    recorded = run.data.tags.get(OVERRIDES_TAG)
    if recorded is not None:
        try:
            return shlex.join(["qframe", *json.loads(recorded)])
        except (ValueError, TypeError):
            pass
    skip = ("fit.", "workdir", "hydra")
    keys = [k for k in sorted(run.data.params) if not k.startswith(skip)]
    return "qframe " + " ".join(override(k, run.data.params[k]) for k in keys)


def _show(store: RunStore, args: argparse.Namespace) -> int:
    run = store.resolve(args.run)
    info, data = run.info, run.data
    from qframe.experiments.store import RecordedRun

    artifacts = RecordedRun(store, run).artifacts()
    if args.json:
        out = _run_record(store, run) | {
            "params": dict(sorted(data.params.items())),
            "tags": dict(sorted(data.tags.items())),
            "artifacts": [{"path": a.path, "bytes": a.file_size} for a in artifacts],
            "artifact_uri": info.artifact_uri,
            "command": rerun_command(run),
        }
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(f"run {info.run_id} ({info.run_name}): {info.status}")
    print(f"  experiment {store.experiment_name(info.experiment_id)} ({info.experiment_id}) in {store._shown_uri()}")
    print(f"  started {_when(info.start_time)} UTC, {_duration(duration_s(run))}, model {model_of(run) or '-'}")
    if PARENT_TAG in data.tags:
        print(f"  trial {data.tags.get(TRIAL_TAG, '?')} of sweep {data.tags[PARENT_TAG]}")
    if ERROR_TAG in data.tags:
        print(f"  error: {data.tags[ERROR_TAG]}")
    print("params (as overrides):")
    for key in sorted(data.params):
        print(f"  {override(key, data.params[key])}")
    print("metrics:")
    width = max((len(k) for k in data.metrics), default=0)
    for key in sorted(data.metrics):
        print(f"  {key:<{width}}  {_fmt(data.metrics[key])}")
    print("tags:")
    for key in sorted(data.tags):
        if not key.startswith("mlflow.") or key in (PARENT_TAG, "mlflow.source.git.commit"):
            print(f"  {key} = {data.tags[key][:200]}")
    print(f"artifacts ({info.artifact_uri}):")
    for a in artifacts:
        print(f"  {a.path} ({a.file_size or 0:,} bytes)")
    print(f"re-run it: {rerun_command(run)}")
    return 0


# --------------------------------------------------------------------------------------------------------- compare


def _compare(store: RunStore, args: argparse.Namespace) -> int:
    runs = [store.resolve(r) for r in args.runs]
    ids = [r.info.run_id[:8] for r in runs]
    keys = sorted({k for r in runs for k in r.data.params})
    differ = [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1 and not k.startswith("fit.")]
    metrics = sorted({k for r in runs for k in r.data.metrics if not k.startswith("time.")})
    if args.png:
        _plot_excess(store, runs, args.png)
    if args.json:
        out = {
            "runs": [r.info.run_id for r in runs],
            "params": {k: [r.data.params.get(k) for r in runs] for k in differ},
            "metrics": {k: [r.data.metrics.get(k) for r in runs] for k in metrics},
        }
        print(json.dumps(out, indent=2, default=str))
        return 0
    _table("params that differ", ["param", *ids], [[k, *(r.data.params.get(k, "-") for r in runs)] for k in differ])
    _table(
        "metrics",
        ["metric", *ids],
        [[k, *(_fmt(r.data.metrics.get(k)) for r in runs)] for k in metrics],
        right=set(range(1, len(runs) + 1)),
    )
    if args.png:
        print(f"cumulative excess returns: {args.png}")
    return 0


def _plot_excess(store: RunStore, runs: list[Any], path: Path) -> None:
    """Each run's cumulative excess return with cost, from its ``backtest_report.parquet``."""
    import pandas as pd

    from qframe.core.plots import _pyplot
    from qframe.experiments.store import RecordedRun

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for run in runs:
        report = RecordedRun(store, run).load("backtest_report.parquet")
        report = report.set_index(report.columns[0])
        excess = report["return"] - report["bench"] - report["cost"]
        mode = run.data.params.get("evaluation.accumulation", "sum")
        cum = excess.cumsum() if mode == "sum" else (1 + excess).cumprod() - 1
        ax.plot(pd.to_datetime(cum.index), cum.to_numpy(), label=f"{run.info.run_id[:8]} {run.info.run_name}")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_title("Cumulative excess return with cost")
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------------- leaderboard


def _leaderboard(store: RunStore, args: argparse.Namespace) -> int:
    from qframe.experiments.leaderboard import BOARD_METRICS, leaderboard, markdown, plot

    runs = store.search_runs(args.experiment, args.filter, None, None, args.trials, args.sweep)
    board = leaderboard(runs, args.by)
    if args.png:
        plot(board, args.png)
    if args.json:
        print(board.to_json(orient="records", indent=2))
    elif args.csv:
        print(board.to_csv(index=False), end="")
    elif args.markdown:
        print(markdown(board, args.by))
    else:
        header = [args.by, "runs", *(m.split(".")[-1] for m in BOARD_METRICS)]
        rows = [
            [
                str(row[args.by]),
                str(row["count"]),
                *(f"{row[f'{m} mean']:.4f} ± {row[f'{m} std']:.4f}" for m in BOARD_METRICS),
            ]
            for _, row in board.iterrows()
        ]
        _table(None, header, rows, right=set(range(1, len(header))))
    if args.png:
        print(f"bars: {args.png}", file=sys.stderr)
    if args.log:
        run_id = log_report(store, runs, board, args)
        print(f"logged as report run {run_id} (qframe runs show {run_id[:8]})", file=sys.stderr)
    return 0


def log_report(store: RunStore, runs: list[Any], board: Any, args: argparse.Namespace) -> str:
    """Log ``board`` as ``leaderboard.md``, ``leaderboard.csv`` and ``leaderboard.png`` of a new FINISHED run
    tagged ``qframe.kind=report`` (in the ranked runs' experiment when they share one, else ``qframe``), with
    what was ranked as its params; returns the new run's id."""
    import tempfile

    from qframe.experiments.leaderboard import markdown, plot
    from qframe.experiments.record import record
    from qframe.experiments.store import KIND_TAG, REPORT_KIND

    experiments = {store.experiment_name(r.info.experiment_id) for r in runs}
    experiment = experiments.pop() if len(experiments) == 1 else "qframe"
    ranked = {"by": args.by, "experiment": args.experiment, "filter": args.filter, "sweep": args.sweep}
    params = {k: v for k, v in ranked.items() if v is not None} | {"trials": args.trials, "runs": len(runs)}
    with tempfile.TemporaryDirectory(prefix="qframe-report-") as tmp:
        out = Path(tmp)
        (out / "leaderboard.md").write_text(markdown(board, args.by) + "\n")
        board.to_csv(out / "leaderboard.csv", index=False)
        plot(board, out / "leaderboard.png")
        with record(
            experiment, f"leaderboard by {args.by}", tracking_uri=store.uri, workdir=store.workdir,
            tags={KIND_TAG: REPORT_KIND, "qframe.report": "leaderboard"},
        ) as rec:  # fmt: skip
            rec.log_params(**params)
            rec.client.log_artifacts(rec.id, str(out))
    return rec.id


# --------------------------------------------------------------------------------------------------------- delete


def _delete(store: RunStore, args: argparse.Namespace) -> int:
    runs = [store.resolve(r, deleted=args.purge) for r in args.runs]
    ids = store.delete(runs, purge=args.purge)
    how = (
        "purged (gone for good, with their artifacts)"
        if args.purge
        else "deleted (restorable with `mlflow runs restore`)"
    )
    print(f"{len(ids)} runs {how}: {', '.join(i[:8] for i in ids)}")
    return 0


# --------------------------------------------------------------------------------------------------------- rerun


def differences(run: Any, now: dict[str, str], diff_run: str | None = None) -> list[str]:
    """What differs between the code and libraries that made ``run`` and ``now`` (:func:`source_tags`);
    ``diff_run``: the id of the run holding its uncommitted changes (:func:`diff_holder`)."""
    tags = run.data.tags
    out = []
    for key, what in (("qframe.version", "qframe"), ("qframe.git_commit", "the git commit")):
        if tags.get(key) and now.get(key) and tags[key] != now[key]:
            out.append(f"{what} was {tags[key][:12]}, is {now[key][:12]}")
    if tags.get("qframe.git_dirty") == "true":
        from qframe.core.tracking import DIFF_ARTIFACT

        commit = tags.get("qframe.git_commit", "COMMIT")[:12]
        held = (
            f"they are the artifact {DIFF_ARTIFACT} of run {diff_run[:8]} (`git checkout {commit}`, then "
            f"`git apply` it: qframe runs show {diff_run[:8]} prints where it is)"
            if diff_run
            else "they were not recorded"
        )
        out.append(f"the run was made from a checkout with uncommitted changes ({held})")
    try:
        then, current = json.loads(tags.get("qframe.versions", "{}")), json.loads(now.get("qframe.versions", "{}"))
    except ValueError:
        then, current = {}, {}
    out += [f"{k} was {v}, is {current[k]}" for k, v in then.items() if k in current and current[k] != v]
    return out


def diff_holder(store: RunStore, run: Any) -> str | None:
    """The id of the run holding ``run``'s uncommitted diff: its own, or its sweep's parent run (a trial logs
    none); None when neither has one (a clean checkout, or a run made before qframe recorded diffs)."""
    from qframe.core.tracking import DIFF_ARTIFACT
    from qframe.experiments.store import RecordedRun

    if run.data.tags.get("qframe.git_dirty") != "true":
        return None
    candidates = [run.info.run_id, run.data.tags.get(PARENT_TAG)]
    for run_id in filter(None, candidates):
        holder = run if run_id == run.info.run_id else store.resolve(run_id)
        if DIFF_ARTIFACT in RecordedRun(store, holder).artifact_paths():
            return run_id
    return None


def _rerun(store: RunStore, args: argparse.Namespace) -> int:
    from qframe.core import tracking
    from qframe.core.errors import ConfigError

    run = store.resolve(args.run)
    recorded = run.data.tags.get(OVERRIDES_TAG)
    if recorded is None:
        raise ConfigError(
            f"run {run.info.run_id[:8]} recorded no command-line overrides (made before qframe recorded them); "
            f"run it as `qframe runs show {run.info.run_id[:8]}` prints under 're-run it'"
        )
    new_keys = {o.split("=", 1)[0].lstrip("+~") for o in args.overrides}
    argv = [o for o in json.loads(recorded) if o.split("=", 1)[0].lstrip("+~") not in new_keys]
    if not any(o.split("=", 1)[0] == "workdir" for o in argv + args.overrides) and "workdir" in run.data.params:
        argv.append(f"workdir={run.data.params['workdir']}")  # the same caches and store
    argv += args.overrides
    for difference in differences(run, tracking.source_tags(), diff_holder(store, run)):
        print(
            f"qframe: warning: {difference}: the numbers may differ from run {run.info.run_id[:8]}'s", file=sys.stderr
        )
    print(f"re-running {run.info.run_id[:8]}: {shlex.join(['qframe', *argv])}", file=sys.stderr)
    from qframe.cli import _main

    return _main(argv)
