"""``qframe runs`` and the Python API (``qframe.runs``, ``qframe.record``) on real MLflow stores: a few real small
runs in a sqlite store, runs of ``record()`` for the lifecycle, and one PostgreSQL store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

try:
    import tracking_services as services
except ImportError:
    sys.path.insert(0, str(Path(__file__).parent))
    import tracking_services as services

import qframe
from qframe.core.errors import ConfigError, DataError

SMALL = ["dataset.n_instruments=40", "dataset.n_days=320", "strategy.topk=5", "strategy.n_drop=1"]


def qframe_cmd(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return services.run_qframe(args, cwd)


def runs_cmd(args: list[str], workdir: Path) -> subprocess.CompletedProcess:
    return qframe_cmd(["runs", *args, "--workdir", str(workdir)], workdir.parent)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A store with three real small runs: two ridge runs (alpha 0.1 and 10) and a LightGBM one."""
    root = tmp_path_factory.mktemp("runs")
    wd = root / ".qframe"
    # no random-score controls (no test here reads them); the ridge runs keep their plots (a plots/ folder to list)
    # and differ only in alpha (what compare shows)
    lean = ["evaluation.controls.enabled=false"]
    for name, extra in (
        ("ridge-a", ["model=linear", *lean]),
        ("ridge-b", ["model=linear", "model.alpha=10", *lean]),
        ("trees", ["model=lightgbm_small", "model.num_boost_round=20", *lean, "recording.plots=false"]),
    ):
        proc = qframe_cmd([*SMALL, *extra, f"run_name={name}", f"workdir={wd}"], root)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return wd


def listed(workdir: Path, *args: str) -> list[dict]:
    proc = runs_cmd(["--json", *args], workdir)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qframe: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_list_filter_sort_formats(workdir):
    runs = listed(workdir)
    assert [r["name"] for r in runs] == ["trees", "ridge-b", "ridge-a"]  # newest first
    assert {r["status"] for r in runs} == {"FINISHED"}
    assert [r["model"] for r in runs] == ["lightgbm", "linear", "linear"]
    linear = listed(workdir, "--filter", "params.model.name = 'linear'")
    assert sorted(r["name"] for r in linear) == ["ridge-a", "ridge-b"]
    by_ic = listed(workdir, "--sort", "-metrics.IC")
    ics = [r["metrics"]["IC"] for r in by_ic]
    assert ics == sorted(ics, reverse=True) and len(ics) == 3
    assert [r["name"] for r in listed(workdir, "--sort", "metrics.IC", "--limit", "1")] == [by_ic[-1]["name"]]
    csv = runs_cmd(["--csv"], workdir)
    frame = pd.read_csv(pd.io.common.StringIO(csv.stdout))
    assert list(frame["name"]) == ["trees", "ridge-b", "ridge-a"]
    assert np.allclose(frame["IC"], [r["metrics"]["IC"] for r in runs])
    text = runs_cmd([], workdir)  # piped: plain text, full ids, one line a run
    lines = text.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "name", "status"] and len(lines) == 4
    assert lines[1].split()[0] == runs[0]["id"]


def test_show_and_run_references(workdir):
    runs = {r["name"]: r for r in listed(workdir)}
    target = runs["ridge-b"]
    for ref in (target["id"], target["id"][:10], "ridge-b"):
        proc = runs_cmd(["show", ref, "--json"], workdir)
        assert proc.returncode == 0, proc.stderr
        shown = json.loads(proc.stdout)
        assert shown["id"] == target["id"]
    assert shown["params"]["model.alpha"] == "10.0" or shown["params"]["model.alpha"] == "10"
    assert {"config.yaml", "pred.parquet", "backtest_report.parquet"} <= {a["path"] for a in shown["artifacts"]}
    assert "model.alpha=10" in shown["command"] and shown["command"].startswith("qframe ")
    last = runs_cmd(["show", "last"], workdir)
    assert last.returncode == 0 and f"run {runs['trees']['id']} (trees)" in last.stdout
    assert "params (as overrides):" in last.stdout and "re-run it: qframe " in last.stdout
    one_line_error(runs_cmd(["show", "ridge-c"], workdir), "no run 'ridge-c'", "did you mean 'ridge-", "qframe runs")
    one_line_error(runs_cmd(["show", "nothing-like-it"], workdir), "no run 'nothing-like-it'", "qframe runs")


def test_no_store_is_one_line_and_creates_nothing(tmp_path):
    proc = runs_cmd([], tmp_path / ".qframe")
    one_line_error(proc, "no MLflow store yet", str(tmp_path / ".qframe" / "mlflow.db"))
    assert not (tmp_path / ".qframe").exists()


def test_leaderboard_equals_hand_computation(workdir, tmp_path):
    proc = runs_cmd(["leaderboard", "--by", "model.name", "--json", "--png", str(tmp_path / "lb.png")], workdir)
    assert proc.returncode == 0, proc.stderr
    board = {row["model.name"]: row for row in json.loads(proc.stdout)}
    runs = listed(workdir)
    for model in ("linear", "lightgbm"):
        members = [r for r in runs if r["model"] == model]
        assert board[model]["count"] == len(members)
        for metric in ("IC", "Rank ICIR", "excess_return_with_cost.max_drawdown"):
            values = [r["metrics"][metric] for r in members]
            assert board[model][f"{metric} mean"] == pytest.approx(sum(values) / len(values))
            assert board[model][f"{metric} std"] == pytest.approx(float(np.std(values)))
    assert board["linear"]["IC std"] > 0  # two different ridge runs
    assert (tmp_path / "lb.png").read_bytes()[:4] == b"\x89PNG"
    markdown = runs_cmd(["leaderboard", "--markdown"], workdir).stdout
    assert markdown.startswith("| model.name | runs | IC |") and " ± " in markdown


def test_compare_params_metrics_png(workdir, tmp_path):
    png = tmp_path / "cmp.png"
    proc = runs_cmd(["compare", "ridge-a", "ridge-b", "--json", "--png", str(png)], workdir)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "model.alpha" in out["params"] and "model.name" not in out["params"]  # only what differs
    assert len(out["metrics"]["IC"]) == 2
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_python_api_search_get_load_model(workdir):
    store = qframe.runs(workdir=workdir)
    frame = store.search(filter="params.model.name = 'linear'", sort="-metrics.IC")
    assert len(frame) == 2 and list(frame["metrics.IC"]) == sorted(frame["metrics.IC"], reverse=True)
    assert {"run_id", "status", "params.model.alpha", "tags.qframe.version"} <= set(frame.columns)
    from qframe.core.registry import get_registry
    from qframe.core.workflow import _load_inputs

    for name in ("ridge-a", "trees"):
        run = store.get(name)
        assert run.status == "FINISHED" and run.config["model"]["name"] == run.params["model.name"]
        pred = run.load("pred")
        _, prepared, _ = _load_inputs(run.config, get_registry(), workdir / "cache")
        test = prepared.segments["test"]
        predicted = run.load_model().predict(test.X)
        assert len(predicted) == len(pred)
        np.testing.assert_allclose(predicted, pred["score"].to_numpy(), rtol=1e-6, atol=1e-9)
    with pytest.raises(DataError, match="no artifact 'nosuch'"):
        store.get("ridge-a").load("nosuch")


def test_record_lifecycle_resume_and_pickle(tmp_path):
    wd = tmp_path / ".qframe"
    with qframe.record(experiment="study", run_name="ok", workdir=wd) as rec:
        rec.log_params(window=20)
        rec.log_metrics(ic=0.04, step=3)
        rec.set_tags(stage="a")
        rec.save_objects(pred=pd.DataFrame({"x": [1.0, 2.0]}), notes={"k": 1})
        rec.save_objects(blob=object(), allow_pickle=True)
        with pytest.raises(TypeError, match="allow_pickle"):
            rec.save_objects(other=object())
    with pytest.raises(ValueError, match="boom"), qframe.record(experiment="study", run_name="bad", workdir=wd):
        raise ValueError("boom")
    with pytest.raises(KeyboardInterrupt), qframe.record(experiment="study", run_name="stop", workdir=wd):
        raise KeyboardInterrupt
    store = qframe.runs(workdir=wd)
    ok = store.get("ok")
    assert ok.status == "FINISHED" and ok.params == {"window": "20"} and ok.metrics == {"ic": 0.04}
    assert ok.tags["stage"] == "a" and ok.tags["qframe.kind"] == "record"
    assert ok.load("pred").equals(pd.DataFrame({"x": [1.0, 2.0]})) and ok.load("notes") == {"k": 1}
    with pytest.raises(DataError, match="pickle"):
        ok.load("blob")
    assert type(ok.load("blob", allow_pickle=True)) is object
    bad = store.get("bad")
    assert bad.status == "FAILED" and bad.tags["qframe.error"] == "ValueError: boom"
    assert store.get("stop").status == "KILLED"
    with qframe.record(resume="ok", workdir=wd) as rec:
        assert rec.id == ok.id and store.get(ok.id).status == "RUNNING"
        rec.log_metrics(ic=0.05, step=4)
    again = store.get("ok")
    assert again.status == "FINISHED" and again.metrics == {"ic": 0.05}


def test_prefix_ambiguity_delete_and_purge(tmp_path):
    wd = tmp_path / ".qframe"
    ids = []
    for i in range(20):
        with qframe.record(run_name=f"r{i}", workdir=wd) as rec:
            rec.log_metrics(IC=i / 100)
            rec.save_objects(notes={"i": i})
            ids.append(rec.id)
    by_first: dict[str, list[str]] = {}
    for run_id in ids:
        by_first.setdefault(run_id[0], []).append(run_id)
    shared = next(v for v in by_first.values() if len(v) > 1)  # 20 ids over 16 hex digits: two share one
    one_line_error(runs_cmd(["show", shared[0][0]], wd), "ambiguous", shared[0], shared[1])
    store = qframe.runs(workdir=wd)
    deleted = runs_cmd(["delete", "r1", "r2"], wd)
    assert deleted.returncode == 0, deleted.stderr
    assert "2 runs deleted" in deleted.stdout
    assert len(store.search()) == 18
    client = store.client
    assert client.get_run(ids[1]).info.lifecycle_stage == "deleted"  # soft: still there
    artifacts = Path(client.get_run(ids[2]).info.artifact_uri.removeprefix("file://"))
    assert artifacts.is_dir()
    purged = runs_cmd(["delete", ids[2], "--purge"], wd)
    assert purged.returncode == 0, purged.stderr
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):
        client.get_run(ids[2])
    assert not artifacts.exists()
    with pytest.raises(ConfigError, match="no run"):
        store.resolve("r2")


@pytest.fixture
def postgres_uri():
    """A new PostgreSQL database of the local server (dropped afterwards), as a SQLAlchemy URI with psycopg; it
    holds MLflow's schema already (a copy: MLflow's migrations on PostgreSQL take seconds, once per worker)."""
    services.require_postgres()
    with services.migrated_database() as uri:
        yield uri.replace("postgresql://", "postgresql+psycopg://")


def test_listing_and_leaderboard_on_postgresql(tmp_path, postgres_uri):
    uri = postgres_uri
    values = {"a": [0.01, 0.03], "b": [0.05]}
    for group, ics in values.items():
        for ic in ics:
            with qframe.record(run_name=f"{group}-{ic}", tracking_uri=uri, workdir=tmp_path) as rec:
                rec.log_params(**{"model.name": group})
                rec.log_metrics(IC=ic)
    store = qframe.runs(tracking_uri=uri)
    assert sorted(store.search()["run_name"]) == ["a-0.01", "a-0.03", "b-0.05"]
    from qframe.experiments.leaderboard import leaderboard

    board = leaderboard(store.search_runs(), "model.name").set_index("model.name")
    assert board.loc["a", "count"] == 2 and board.loc["a", "IC mean"] == pytest.approx(0.02)
    assert board.loc["a", "IC std"] == pytest.approx(0.01) and board.loc["b", "IC std"] == 0
    store.client._tracking_client.store.engine.dispose()  # the database is dropped next


def test_rerun_reproduces_and_takes_overrides(workdir):
    # last in this file: it adds runs to the module's store
    before = {r["name"]: r for r in listed(workdir)}
    again = runs_cmd(["rerun", "ridge-a"], workdir)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "re-running" in again.stderr
    with_alpha = runs_cmd(["rerun", before["ridge-a"]["id"], "model.alpha=10"], workdir)
    assert with_alpha.returncode == 0, with_alpha.stderr[-2000:]
    newest = listed(workdir, "--limit", "2")
    objective = "excess_return_with_cost.information_ratio"
    # the same recorded overrides: the same numbers; with ridge-b's alpha: ridge-b's numbers
    assert newest[1]["metrics"][objective] == before["ridge-a"]["metrics"][objective]
    assert newest[1]["metrics"]["IC"] == before["ridge-a"]["metrics"]["IC"]
    assert newest[0]["metrics"]["IC"] == before["ridge-b"]["metrics"]["IC"]
    assert newest[0]["metrics"]["IC"] != before["ridge-a"]["metrics"]["IC"]


def test_sweep_last_is_the_grid(tmp_path):
    wd = tmp_path / ".qframe"
    with qframe.record(run_name="before", workdir=wd):
        pass
    grid = qframe_cmd(["-m", "model=linear", "model.alpha=0.1,1", *SMALL, f"workdir={wd}"], tmp_path)
    assert grid.returncode == 0, grid.stderr[-2000:]
    jobs = listed(wd, "--sweep", "last")
    assert sorted(r["model"] for r in jobs) == ["linear", "linear"] and "before" not in {r["name"] for r in jobs}
    board = json.loads(runs_cmd(["leaderboard", "--sweep", "last", "--by", "model.alpha", "--json"], wd).stdout)
    assert sorted(row["model.alpha"] for row in board) == ["0.1", "1"]
    assert len(listed(wd)) == 3  # grid jobs are runs of their own, listed by default


# ---------------------------------------------------------------------------------------------------- the SQL reader


def fill_varied(uri: str, wd: Path) -> None:
    """Runs made with MLflow's client, with what a search has to get right: NaN and missing metrics, equal start
    times (the run id breaks the tie), trials under a parent, a deleted run, several experiments, odd names."""
    import math

    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from qframe.core import tracking

    client = MlflowClient(uri)
    first = tracking.ensure_experiment(uri, "qframe", wd / "artifacts")
    second = tracking.ensure_experiment(uri, "study b", wd / "artifacts")
    parent = client.create_run(first, run_name="sweep", tags={"qframe.kind": "sweep"}, start_time=1000).info.run_id
    models = ["linear", "lightgbm", "Linear", "gru"]
    for i in range(16):
        tags = {"qframe.trial": str(i), "mlflow.parentRunId": parent} if i % 4 == 3 else {}
        start = 2000 + 100 * (i // 2)  # pairs share a start time
        name = "it's" if i == 5 else f"run-{i}"
        run = client.create_run(first if i % 5 else second, run_name=name, tags=tags, start_time=start)
        ic = math.nan if i % 6 == 1 else (i - 6) / 100
        metrics = [Metric("IC", ic, 0, 0), Metric("Rank IC", i / 50, 0, 0)]
        if i % 3:
            metrics.append(Metric("excess_return_with_cost.information_ratio", 1 - i / 10, 0, 0))
        params = [Param("model.name", models[i % 4]), Param("strategy.topk", str(10 + i))]
        if i % 2:
            params.append(Param("model.alpha", str(i)))
        client.log_batch(run.info.run_id, metrics, params, [RunTag("note", f"n{i % 3}")])
        status = ("FINISHED", "FAILED", "FINISHED", "KILLED")[i % 4]
        client.set_terminated(run.info.run_id, status, end_time=start + 10 * i if i != 2 else None)
        if i == 9:
            client.delete_run(run.info.run_id)
    client._tracking_client.store.engine.dispose()


@pytest.fixture(scope="module")
def varied_store(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("varied") / ".qframe"
    fill_varied(f"sqlite:///{wd / 'mlflow.db'}", wd)
    return wd


FILTERS = [
    None,
    "metrics.IC > 0.03",
    "metrics.IC >= -0.02 and metrics.`Rank IC` < 0.2",
    "metrics.IC != 0.01",
    "metrics.IC != 0",
    "metrics.IC = 0",
    "metrics.excess_return_with_cost.information_ratio <= 0.5",
    "params.model.name = 'linear'",
    'params.model.name = "Linear"',
    "params.model.name LIKE 'lin%'",
    "params.model.name ILIKE 'LIN%'",
    "params.model.alpha IS NULL",
    "params.model.alpha IS NOT NULL AND params.strategy.topk != '13'",
    "tags.note = 'n1'",
    "tags.mlflow.parentRunId IS NULL",
    "tags.qframe.kind IS NOT NULL",
    "attributes.run_name = 'run-4'",
    "attributes.run_name LIKE 'run-1%'",
    "attributes.run_id LIKE 'a%'",
    "attributes.status = 'FAILED'",
    "attributes.start_time >= 2300",
    "attributes.end_time < 2500",
    "run.status != 'FINISHED' AND metrics.IC < 0.1",
]
SORTS = [None, "-metrics.IC", "metrics.IC", "params.model.name,-metrics.`Rank IC`", "start_time", "-end_time"]


def _as_data(runs: list) -> list[tuple]:
    def metrics(m: dict) -> dict:
        return {k: ("nan" if v != v else v) for k, v in m.items()}

    return [
        (
            r.info.run_id,
            r.info.run_name,
            r.info.experiment_id,
            r.info.user_id,
            r.info.status,
            r.info.start_time,
            r.info.end_time,
            r.info.lifecycle_stage,
            r.info.artifact_uri,
            metrics(r.data.metrics),
            dict(r.data.params),
            dict(r.data.tags),
        )
        for r in runs
    ]


ALL_VIEWS = ({}, {"trials": True, "deleted": True}, {"limit": 3, "experiment": "qframe"})


def same_searches(fast, slow, views: tuple[dict, ...] = ALL_VIEWS) -> int:
    """Every FILTERS x SORTS search (with and without trials and deleted runs, limited) answered alike by the SQL
    reader and by MLflow's client; returns how many matched something."""
    assert fast.reader is not None and slow.reader is None
    assert {e: x.name for e, x in fast.experiments().items()} == {e: x.name for e, x in slow.experiments().items()}
    checked = 0
    for flt in FILTERS:
        for sort in SORTS:
            for kwargs in views:
                args = dict(filter=flt, sort=sort, **kwargs)
                expected = _as_data(slow.search_runs(**args))
                got = _as_data(fast.search_runs(**args))
                assert got == expected, (args, [g[1] for g in got], [e[1] for e in expected])
                checked += bool(expected)
    return checked


def test_sql_reader_matches_mlflow_client(varied_store):
    """The SQL reader gives what MLflow's client gives (order included) for every filter and sort, and is used."""
    from qframe.experiments.store import RunStore

    fast = RunStore.open(workdir=varied_store)
    slow = RunStore(fast.uri, fast.workdir, sql=False)
    assert same_searches(fast, slow) > 200  # most combinations match something
    from qframe.experiments.store import join_filters, sort_clause

    for flt in FILTERS:  # every one of them was answered by SQL, not by the client
        assert fast.reader.search_runs(["1"], join_filters(flt), False, None, sort_clause("-metrics.IC")) is not None

    def resolved(store: RunStore, name: str) -> object:
        try:
            return _as_data([store.resolve(name)])
        except ConfigError as exc:
            return str(exc)

    for name in ("last", "run-4", "it's", "run-", "run-40", slow.search_runs(limit=1)[0].info.run_id[:6]):
        assert resolved(fast, name) == resolved(slow, name)
    run = fast.get("last")
    assert [a.path for a in run.artifacts()] == [a.path for a in slow.get("last").artifacts()]
    assert fast.search(trials=True).equals(slow.search(trials=True))


def test_local_artifact_listing_matches_mlflow_client(workdir):
    """Listing a run's artifacts from disk gives MLflow's FileInfo list (paths, directories, sizes, order)."""
    from qframe.experiments.store import RecordedRun, RunStore

    fast = RunStore.open(workdir=workdir)
    slow = RunStore(fast.uri, fast.workdir, sql=False)
    runs = slow.search_runs()
    assert len(runs) >= 3 and fast.search_runs(limit=0) == [] == slow.search_runs(limit=0)
    for run in runs:
        mine, theirs = RecordedRun(fast, run), RecordedRun(slow, run)
        for path in ("", "model", "plots", "missing"):
            listed = [(a.path, a.is_dir, a.file_size) for a in mine._list(path)]
            assert listed == [(a.path, a.is_dir, a.file_size) for a in theirs._list(path)], path
        files = [(a.path, a.file_size) for a in mine.artifacts()]
        assert len(files) > 5 and any(p.startswith("model/") for p, _ in files)
        assert files == [(a.path, a.file_size) for a in theirs.artifacts()]
        assert mine.config == theirs.config and mine.config["model"]


def test_listing_showing_ranking_never_import_mlflow(workdir):
    """On a sqlite store, listing, filtering, sorting, show and leaderboard answer without importing MLflow (its
    import alone is 2-3 s of a command)."""
    code = (
        "import contextlib, io, sys\n"
        "from qframe.experiments.cli import main\n"
        f"wd = {str(workdir)!r}\n"
        "for argv in (['--json'], ['--filter', 'metrics.IC > -1', '--sort=-metrics.IC', '--csv'],\n"
        "             ['show', 'last'], ['show', 'trees', '--json'], ['leaderboard', '--json']):\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        assert main([*argv, '--workdir', wd]) == 0, argv\n"
        "    assert out.getvalue().strip(), argv\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=services.qframe_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_sql_reader_leaves_the_rest_to_mlflow(varied_store):
    """Filters and sorts the reader does not translate go to MLflow's client: same answer, or MLflow's error."""
    from qframe.experiments.store import RunStore

    fast = RunStore.open(workdir=varied_store)
    slow = RunStore(fast.uri, fast.workdir, sql=False)
    for flt in ("attributes.run_id IN ('x', 'y')", "metrics.IC > 1e-3", "tags.note = 'it''s'"):
        assert fast.reader.search_runs(["1"], flt, False, None, None) is None
        assert _as_data(fast.search_runs(filter=flt)) == _as_data(slow.search_runs(filter=flt))
    for bad in ("metrics.IC > 'x'", "metrics.IC > 0.1 OR metrics.IC < 0", "params.x > 1", "nonsense"):
        with pytest.raises(ConfigError, match="MLflow store") as raised:
            fast.search_runs(filter=bad)
        with pytest.raises(ConfigError) as expected:
            slow.search_runs(filter=bad)
        assert str(raised.value) == str(expected.value)
    with pytest.raises(ConfigError, match="duplicate"):
        fast.search_runs(sort="metrics.IC,-metrics.IC")


def test_sql_reader_matches_mlflow_client_on_postgresql(tmp_path, postgres_uri):
    from qframe.experiments.store import RunStore

    uri = postgres_uri
    fill_varied(uri, tmp_path)
    fast = RunStore.open(tracking_uri=uri, workdir=tmp_path)
    slow = RunStore(fast.uri, fast.workdir, sql=False)
    assert same_searches(fast, slow, ALL_VIEWS[1:2]) > 100  # one view: the client is slow on PostgreSQL
    slow.client._tracking_client.store.engine.dispose()  # the database is dropped next
