"""Tracking stores beyond sqlite, for real: a PostgreSQL store, and an ``mlflow server`` on PostgreSQL with served
artifacts written by several qframe processes at once (docs/tracking.md).

Each test creates its own database and drops it (the server tests a copy of one that MLflow migrated once per
worker). PostgreSQL must answer where it is installed (CI has it): the tests fail then, loudly; they skip only on a
machine without PostgreSQL (tests/tracking_services.py).
"""

from __future__ import annotations

import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

try:
    import tracking_services as services  # tests/ is on sys.path under pytest's default import mode
except ImportError:
    sys.path.insert(0, str(Path(__file__).parent))
    import tracking_services as services

from qframe.core import stores

SMALL = [
    "dataset.n_instruments=40",
    "dataset.n_days=320",
    "strategy.topk=5",
    "strategy.n_drop=1",
    "model=linear",
    # what these tests look at is where runs and artifacts land, not the summary: no random-score controls, no plots
    "evaluation.controls.enabled=false",
    "recording.plots=false",
]
#: a hyperopt sweep of two trials over the ridge penalty
SWEEP = ["-m", "hydra/sweeper=hyperopt", "hydra.sweeper.n_trials=2", "model.alpha=interval(0.1,10)"]
TIMEOUT = 300


@pytest.fixture  # not module-scoped: a connection check costs milliseconds, and a module fixture would keep this
def postgres() -> None:  # file's tests (servers and sweeps, the suite's longest) on one xdist worker, one by one
    services.require_postgres()


@pytest.fixture
def database(postgres) -> str:
    with services.fresh_database() as uri:
        yield uri


@pytest.fixture
def migrated(postgres) -> str:
    """A new database already holding MLflow's schema (copied: the migrations run once per worker); for the
    server tests, whose subject is where runs and artifacts land (a store's creation: the test above)."""
    with services.migrated_database() as uri:
        yield uri


def qframe(args: list[str], cwd: Path) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "qframe", *args],
        cwd=cwd,
        env=services.qframe_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(procs: list[subprocess.Popen]) -> None:
    """Wait for every process; each must have exited 0. None is left running, whatever happens."""
    try:
        outputs = [p.communicate(timeout=TIMEOUT)[0] for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}:\n{out[-4000:]}"


def recorded_runs(uri: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("qframe")
    assert experiment is not None, f"no experiment 'qframe' in {uri}"
    return client.search_runs([experiment.experiment_id], max_results=1000)


def check_runs(runs: list, singles: int, sweeps: int, trials: int) -> None:
    """Every run FINISHED, recorded exactly once: ``singles`` single runs, ``sweeps`` parents with each trial
    number 0..trials-1 once under each."""
    assert all(r.info.status == "FINISHED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    parents = [r for r in runs if r.data.tags.get("qframe.kind") == "sweep"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    single = [r for r in runs if r not in parents and r not in children]
    assert (len(single), len(parents), len(children)) == (singles, sweeps, sweeps * trials), [
        (r.info.run_name, r.data.tags.get("qframe.kind")) for r in runs
    ]
    for parent in parents:
        numbers = sorted(
            int(c.data.tags["qframe.trial"])
            for c in children
            if c.data.tags["mlflow.parentRunId"] == parent.info.run_id
        )
        assert numbers == list(range(trials)), (parent.info.run_name, numbers)


def test_uri_kinds_and_missing_driver_messages():
    assert [stores.scheme(u) for u in ("postgresql+psycopg://h/db", "sqlite:////x", "/a/b", "http://h:5000")] == [
        "postgresql",
        "sqlite",
        "file",
        "http",
    ]
    error = stores.missing_driver(
        ModuleNotFoundError("No module named 'psycopg'", name="psycopg"), "postgresql://u:pw@h/db"
    )
    assert error is not None and "'.[postgres]'" in str(error) and "pw" not in str(error)
    assert stores.missing_driver(ModuleNotFoundError("x", name="numpy"), "postgresql://h/db") is None


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("psycopg2") is not None, reason="psycopg2 is installed: no driver missing"
)
def test_a_missing_database_driver_is_one_error_line(tmp_path, database):
    """A URI naming a driver that is not installed (psycopg2 here) is one line naming the fix, exit 2."""
    uri = database.replace("postgresql://", "postgresql+psycopg2://")
    for args in ([*SMALL, f"tracking_uri={uri}"], [*SWEEP, *SMALL, f"tracking_uri={uri}"]):
        proc = qframe(args, tmp_path)
        out = proc.communicate(timeout=TIMEOUT)[0]
        lines = out.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, out
        assert lines[0].startswith("qframe: error:") and "psycopg2" in lines[0] and "postgresql://" in lines[0], out


def test_postgres_store_single_run_and_sweep_keep_artifacts_in_the_workdir(tmp_path, database):
    """A single run and a two-trial sweep, at the same time, on a fresh PostgreSQL store: every run recorded once,
    its artifacts in ``<workdir>/artifacts/qframe`` (none in ``./mlruns``)."""
    procs = [
        qframe([*SMALL, f"tracking_uri={database}"], tmp_path / "single"),
        qframe([*SWEEP, *SMALL, f"tracking_uri={database}"], tmp_path / "sweep"),
    ]
    finish(procs)
    runs = recorded_runs(database)
    check_runs(runs, singles=1, sweeps=1, trials=2)
    roots = {(tmp_path / d / ".qframe" / "artifacts" / "qframe").as_uri() for d in ("single", "sweep")}
    assert len({r.info.artifact_uri.rsplit("/", 2)[0] for r in runs}) == 1  # one experiment, one location
    assert runs[0].info.artifact_uri.rsplit("/", 2)[0] in roots, runs[0].info.artifact_uri
    for run in runs:
        local = Path(urllib.parse.urlparse(run.info.artifact_uri).path)
        expected = "optimization_results.yaml" if run.data.tags.get("qframe.kind") == "sweep" else "config.yaml"
        assert (local / expected).is_file(), f"{run.info.run_name}: no {expected} in {local}"
    assert not list(tmp_path.rglob("mlruns")), list(tmp_path.rglob("mlruns"))


@pytest.mark.long  # six qframe processes (two sweeps of two trials, two runs) through one server
def test_tracking_server_with_served_artifacts_and_concurrent_writers(tmp_path, migrated):
    """``mlflow server`` on PostgreSQL serving artifacts; two sweeps of two trials and two single runs write
    through it at once, each from its own directory (as from other machines): every run is recorded once, and
    its artifacts are the server's (``mlflow-artifacts:``), downloadable, none written in a workdir; the server
    stops with all its workers."""
    from mlflow.artifacts import download_artifacts

    served = tmp_path / "served"
    with services.mlflow_server(migrated, tmp_path / "server.log", served) as server:
        url = server.url
        procs = [qframe([*SMALL, f"tracking_uri={url}"], tmp_path / f"single{i}") for i in range(2)]
        procs += [qframe([*SWEEP, *SMALL, f"tracking_uri={url}"], tmp_path / f"sweep{i}") for i in range(2)]
        finish(procs)
        runs = recorded_runs(url)
        check_runs(runs, singles=2, sweeps=2, trials=2)
        for run in runs:
            assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
            name = "optimization_results.yaml" if run.data.tags.get("qframe.kind") == "sweep" else "config.yaml"
            got = download_artifacts(
                run_id=run.info.run_id,
                artifact_path=name,
                dst_path=str(tmp_path / "dl" / run.info.run_id),
                tracking_uri=url,
            )
            assert Path(got).stat().st_size > 0, got
    assert not services.group_alive(server.pgid), "a process of the mlflow server outlived it"
    assert list(served.rglob("config.yaml")), f"nothing in the server's artifacts destination {served}"
    assert not list(tmp_path.glob("*/.qframe/artifacts/qframe")), "a client wrote artifacts locally"
    assert not list(tmp_path.rglob("mlruns"))


def test_tracking_server_without_served_artifacts_uses_the_workdir(tmp_path, migrated):
    """A server started with ``--no-serve-artifacts``: a new experiment's artifacts go to the workdir, not to the
    server's ``./mlruns``."""
    with services.mlflow_server(migrated, tmp_path / "server.log", None) as server:
        finish([qframe([*SMALL, f"tracking_uri={server.url}"], tmp_path / "run")])
        (run,) = recorded_runs(server.url)
    root = (tmp_path / "run" / ".qframe" / "artifacts" / "qframe").as_uri()
    assert run.info.artifact_uri.startswith(root), run.info.artifact_uri
    assert (Path(urllib.parse.urlparse(run.info.artifact_uri).path) / "config.yaml").is_file()


def test_artifact_root_places_a_new_experiments_artifacts_for_runs_and_sweeps(tmp_path):
    """``artifact_root=<dir>`` (any store; sqlite here): a sweep's parent and trials, and a single run of the same
    experiment, keep their artifacts in ``<dir>/<experiment>``."""
    from qframe.core.context import locate

    assert locate({"workdir": str(tmp_path)}).artifact_root == tmp_path.resolve() / "artifacts"
    assert locate({"workdir": str(tmp_path), "artifact_root": "~/a"}).artifact_root == (Path.home() / "a").resolve()
    root = tmp_path / "shared artifacts"
    finish([qframe([*SWEEP, *SMALL, f"artifact_root={root}"], tmp_path / "run")])
    finish([qframe([*SMALL, f"artifact_root={root}"], tmp_path / "run")])
    runs = recorded_runs(f"sqlite:///{tmp_path / 'run' / '.qframe' / 'mlflow.db'}")
    check_runs(runs, singles=1, sweeps=1, trials=2)
    assert all(r.info.artifact_uri.startswith((root / "qframe").as_uri()) for r in runs), runs
    assert len(list(root.rglob("config.yaml"))) == 3
