"""A new sqlite store seeded from the migrated template is the store MLflow would have created."""

import sqlite3

from mlflow.tracking import MlflowClient

from qframe.core import sqlite_store, tracking


def _clauses(sql):
    """A CREATE statement as its sorted top-level clauses: MLflow's migrations emit a table's constraints in an order
    that follows Python's string hashing, so two stores made by two processes differ in order only."""
    if not sql or "(" not in sql:
        return sql
    head, body = sql.split("(", 1)
    parts, depth, current = [], 0, ""
    for char in body.rsplit(")", 1)[0]:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return head.strip(), tuple(sorted([*parts, current.strip()]))


def _schema(path):
    with sqlite3.connect(path) as con:
        rows = con.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        tables = {(kind, name, _clauses(sql)) for kind, name, sql in rows}
        version = con.execute("SELECT version_num FROM alembic_version").fetchall()
    return tables, version


def test_seeded_store_matches_a_created_one_and_works(tmp_path):
    created = tmp_path / "created.db"
    MlflowClient(tracking_uri=f"sqlite:///{created}").search_experiments()

    seeded = tmp_path / "work" / "mlflow.db"
    assert sqlite_store.seed(seeded, tmp_path / "work" / "artifacts" / "Default")
    assert _schema(seeded) == _schema(created)
    assert not sqlite_store.seed(seeded, tmp_path)  # an existing store is never replaced

    uri = f"sqlite:///{seeded}"
    experiment_id = tracking.ensure_experiment(uri, "qframe", tmp_path / "work" / "artifacts")
    client = MlflowClient(tracking_uri=uri)
    default = client.get_experiment("0")
    assert default.name == "Default"
    assert default.artifact_location == (tmp_path / "work" / "artifacts" / "Default").as_uri()
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "IC", 0.05)
    client.set_terminated(run.info.run_id)
    assert client.get_run(run.info.run_id).data.metrics == {"IC": 0.05}


def test_only_absolute_sqlite_uris_are_seeded(tmp_path):
    assert sqlite_store.sqlite_file(f"sqlite:///{tmp_path}/x.db") == tmp_path / "x.db"
    assert sqlite_store.sqlite_file("sqlite:///relative.db") is None
    assert sqlite_store.sqlite_file("sqlite:///:memory:") is None
    assert sqlite_store.sqlite_file("postgresql://localhost/test") is None


def test_a_store_at_the_templates_head_skips_alembic_and_any_other_gets_mlflows_check(tmp_path, monkeypatch):
    """The schema check of a sqlite store at the head is one query; a store at another revision still gets MLflow's
    own check, and its error."""
    import mlflow.store.db.utils as db_utils
    import pytest
    from mlflow.exceptions import MlflowException

    assert sqlite_store.trust_known_head() and sqlite_store.trust_known_head()  # installed once, idempotent
    heads = []  # alembic's head look-up (its migration scripts), counted around the real function
    real = db_utils._get_latest_schema_revision
    monkeypatch.setattr(db_utils, "_get_latest_schema_revision", lambda: heads.append(1) or real())

    current = tmp_path / "current.db"
    assert sqlite_store.seed(current, tmp_path / "artifacts" / "Default")
    assert sqlite_store.revision(current) == real()
    assert [e.name for e in MlflowClient(tracking_uri=f"sqlite:///{current}").search_experiments()] == ["Default"]
    assert heads == []

    old = tmp_path / "old.db"
    assert sqlite_store.seed(old, tmp_path / "artifacts" / "Default")
    with sqlite3.connect(old) as con:
        con.execute("UPDATE alembic_version SET version_num = '451aebb31d03'")  # an early MLflow migration
    with pytest.raises(MlflowException, match="out-of-date database schema"):
        MlflowClient(tracking_uri=f"sqlite:///{old}").search_experiments()
    assert heads == [1]
    assert sqlite_store.revision(tmp_path / "missing.db") is None
