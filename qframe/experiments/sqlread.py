"""Read-only fast path: an MLflow SQL store (sqlite, PostgreSQL) searched with plain SQL, without importing MLflow.

Importing MLflow takes 2-3 s and its ``search_runs`` builds an ORM object for every param and tag of every run it
returns; a listing needs neither. For a database store written by the MLflow version this was checked against
(:data:`MLFLOW_VERSION`, schema revision :data:`SCHEMA_REVISION`), :class:`SqlReader` answers the searches of
:class:`qframe.experiments.store.RunStore` with the SQL MLflow's own ``SqlAlchemyStore._search_runs`` emits (the
same filter semantics, NaN handling, ordering and tie-breaks; tests/test_runs.py compares both on one store). It
understands the common part of MLflow's filter grammar (``metrics.K > 0.03``, ``params.K = 'v'``, ``tags.K IS
NULL``, ``LIKE``, ``ILIKE``, ``attributes.run_id``/``run_name``/``status``/``start_time``... joined by AND); a
filter or sort it does not parse returns None, and the caller asks MLflow's client, which gives MLflow's answer or
its error. A tracking server (http URI), another MLflow version or another schema always uses the client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

#: the MLflow release whose SQL store this reads (its ``SqlAlchemyStore._search_runs``), and its schema revision
MLFLOW_VERSION = "3.17."
SCHEMA_REVISION = "dc11669786a5"
#: run ids per IN (...) when loading metrics, params and tags
_CHUNK = 500


@dataclass(slots=True)
class RunInfo:
    """The fields of ``mlflow.entities.RunInfo`` qframe reads."""

    run_id: str
    run_name: str | None
    experiment_id: str
    user_id: str | None
    status: str
    start_time: int | None
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str | None


@dataclass(slots=True)
class RunData:
    """``mlflow.entities.RunData``'s dicts: latest metric values, params, tags."""

    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Run:
    """A run as ``mlflow.entities.Run`` shows it (``info``, ``data``), read straight from the database."""

    info: RunInfo
    data: RunData


@dataclass(slots=True)
class Experiment:
    experiment_id: str
    name: str


class Unsupported(Exception):
    """A filter or sort this reader does not translate: ask MLflow's client."""


# ---------------------------------------------------------------------------------------------------- the grammar

_TYPES = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
}
_STRING_ATTRIBUTES = {"run_id": "run_uuid", "run_name": "name", "status": "status", "user_id": "user_id"}
_NUMERIC_ATTRIBUTES = {"start_time": "start_time", "end_time": "end_time"}
_NAME = r"[A-Za-z_]\w*"
_IDENT = re.compile(rf"({_NAME})\.(`[^`]+`|\"[^\"]+\"|{_NAME}(?:\.{_NAME})*)(?![\w.`\"-])")
_OP = re.compile(r"(!=|>=|<=|=|>|<)")
_WORD_OP = re.compile(r"(ILIKE|LIKE|IS\s+NOT\s+NULL|IS\s+NULL)(?![\w'\"])", re.I)
_STRING = re.compile(r"'([^'\\]*)'|\"([^\"\\]*)\"")
_NUMBER = re.compile(r"(-?(?:\d+\.\d*|\.\d+|\d+))(?![\w.])")
_AND = re.compile(r"\s+AND\s+", re.I)
_COMPARATORS = {
    "metric": {">", ">=", "!=", "=", "<", "<="},
    "param": {"!=", "=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL"},
    "tag": {"!=", "=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL"},
    "string": {"!=", "=", "LIKE", "ILIKE"},
    "numeric": {">", ">=", "!=", "=", "<", "<="},
}


@dataclass(frozen=True, slots=True)
class Clause:
    kind: str  # metric, param, tag, string (attribute), numeric (attribute)
    key: str
    comparator: str
    value: Any


def _key(raw: str) -> str:
    return raw[1:-1] if raw[:1] in '`"' else raw


def parse_filter(text: str | None) -> list[Clause]:
    """MLflow's filter grammar, the part this reader translates; :class:`Unsupported` for anything else."""
    text = (text or "").strip()
    out: list[Clause] = []
    pos = 0
    while text:
        m = _IDENT.match(text, pos)
        if not m or m.group(1) not in _TYPES:
            raise Unsupported(text)
        kind, key = _TYPES[m.group(1)], _key(m.group(2))
        pos = _skip(text, m.end())
        op = _OP.match(text, pos) or _WORD_OP.match(text, pos)
        if not op:
            raise Unsupported(text)
        comparator = " ".join(op.group(1).upper().split())
        pos = op.end() if comparator.startswith("IS ") else _skip(text, op.end())
        if kind == "attribute":
            if key in _NUMERIC_ATTRIBUTES:
                kind = "numeric"
            elif key in _STRING_ATTRIBUTES:
                kind = "string"
            else:
                raise Unsupported(key)
        if comparator not in _COMPARATORS[kind]:
            raise Unsupported(comparator)
        value: Any = None
        if not comparator.startswith("IS "):
            if kind in ("metric", "numeric"):
                v = _NUMBER.match(text, pos)
                if not v or (kind == "numeric" and "." in v.group(1)):
                    raise Unsupported(text[pos:])
                value = float(v.group(1)) if kind == "metric" else int(v.group(1))
            else:
                v = _STRING.match(text, pos)
                if not v:
                    raise Unsupported(text[pos:])
                value = v.group(1) if v.group(1) is not None else v.group(2)
            pos = v.end()
        out.append(Clause(kind, key, comparator, value))
        if pos == len(text):
            break
        sep = _AND.match(text, pos)
        if not sep:
            raise Unsupported(text[pos:])
        pos = sep.end()
    return out


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


_ORDER = re.compile(rf"^\s*(?:({_NAME})\.)?(`[^`]+`|\"[^\"]+\"|{_NAME}(?:\.{_NAME})*)(?:\s+(ASC|DESC))?\s*$", re.I)


def parse_order(clauses: list[str] | None) -> list[tuple[str, str, bool]]:
    """``["metrics.IC DESC"]`` -> ``[("metric", "IC", False)]``; :class:`Unsupported` for anything else."""
    out: list[tuple[str, str, bool]] = []
    for clause in clauses or []:
        m = _ORDER.match(clause)
        if not m:
            raise Unsupported(clause)
        kind = _TYPES.get(m.group(1) or "attribute")
        key = _key(m.group(2))
        if kind is None or (m.group(1) is None and m.group(2)[:1] in '`"'):
            raise Unsupported(clause)
        if kind == "attribute":
            if key not in _STRING_ATTRIBUTES and key not in _NUMERIC_ATTRIBUTES:
                raise Unsupported(key)
        if (kind, key) in {(k, n) for k, n, _ in out}:
            raise Unsupported(clause)  # MLflow refuses duplicates: its client says so
        out.append((kind, key, (m.group(3) or "ASC").upper() == "ASC"))
    return out


# ---------------------------------------------------------------------------------------------------- the SQL

_TABLES = {"metric": "latest_metrics", "param": "params", "tag": "tags"}


class _Query:
    """SQL text with named parameters (``:p0``), as both sqlite3 and SQLAlchemy's ``text()`` take them."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.params: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def compare(self, column: str, comparator: str, value: Any) -> str:
        if comparator == "ILIKE":
            if self.dialect == "postgresql":
                return f"{column} ILIKE {self.bind(value)}"
            return f"lower({column}) LIKE lower({self.bind(value)})"
        return f"{column} {comparator} {self.bind(value)}"

    def condition(self, c: Clause) -> str:
        if c.kind in ("string", "numeric") and c.key != "run_name":
            column = _STRING_ATTRIBUTES.get(c.key) or _NUMERIC_ATTRIBUTES[c.key]
            return self.compare(f"runs.{column}", c.comparator, c.value)
        if c.kind == "string":  # run_name: MLflow searches the mlflow.runName tag (older runs left the column empty)
            table, key = "tags", "mlflow.runName"
        else:
            table, key = _TABLES[c.kind], c.key
        where = f"f.run_uuid = runs.run_uuid AND f.key = {self.bind(key)}"
        if c.comparator == "IS NULL":
            return f"NOT EXISTS (SELECT f.run_uuid FROM {table} f WHERE {where})"
        if c.comparator == "IS NOT NULL":
            return f"EXISTS (SELECT f.run_uuid FROM {table} f WHERE {where})"
        value = self.compare("f.value", c.comparator, c.value)
        if c.kind == "metric":
            # as MLflow: a NaN is stored as 0 with is_nan; it fails every comparison but "!="
            if c.comparator == "!=":
                value = f"({value} OR f.is_nan = {self.bind(True)})"
            else:
                value = f"{value} AND f.is_nan = {self.bind(False)}"
        return f"EXISTS (SELECT 1 FROM {table} f WHERE {where} AND {value})"


def runs_query(
    dialect: str,
    experiment_ids: list[str],
    stages: list[str],
    filters: list[Clause],
    order: list[tuple[str, str, bool]],
    limit: int | None,
) -> tuple[str, dict[str, Any]]:
    """The SELECT of run rows MLflow's ``_search_runs`` makes for these filters and ``order_by``."""
    q = _Query(dialect)
    joins, terms = [], []
    for i, (kind, key, ascending) in enumerate(order):
        if kind == "attribute":
            column = f"runs.{_STRING_ATTRIBUTES.get(key) or _NUMERIC_ATTRIBUTES[key]}"
            case = f"CASE WHEN {column} IS NULL THEN 1 ELSE 0 END"
        else:
            table = _TABLES[kind]
            nan = ", is_nan" if kind == "metric" else ""
            joins.append(
                f"LEFT OUTER JOIN (SELECT run_uuid, value{nan} FROM {table} WHERE key = {q.bind(key)}) o{i} "
                f"ON o{i}.run_uuid = runs.run_uuid"
            )
            column = f"o{i}.value"
            if kind == "metric":
                case = f"CASE WHEN o{i}.is_nan = {q.bind(True)} THEN 1 WHEN o{i}.value IS NULL THEN 2 ELSE 0 END"
            else:
                case = f"CASE WHEN {column} IS NULL THEN 1 ELSE 0 END"
        terms += [case, column + ("" if ascending else " DESC")]
    if ("attribute", "start_time") not in {(k, n) for k, n, _ in order}:
        terms.append("runs.start_time DESC")
    terms.append("runs.run_uuid")
    where = [
        f"runs.experiment_id IN ({', '.join(q.bind(int(e)) for e in experiment_ids)})",
        f"runs.lifecycle_stage IN ({', '.join(q.bind(s) for s in stages)})",
        *(q.condition(c) for c in filters),
    ]
    sql = (
        "SELECT runs.run_uuid, runs.name, runs.experiment_id, runs.user_id, runs.status, runs.start_time, "
        "runs.end_time, runs.lifecycle_stage, runs.artifact_uri FROM runs "
        + " ".join(joins)
        + " WHERE "
        + " AND ".join(where)
        + " ORDER BY "
        + ", ".join(terms)
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, q.params


# ---------------------------------------------------------------------------------------------------- the reader


def _dialect(uri: str) -> str | None:
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    return {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql"}.get(scheme)


class SqlReader:
    """Searches one MLflow database store with SQL. :meth:`open` returns None where the client must answer."""

    def __init__(self, execute: Any, dialect: str) -> None:
        self._execute = execute
        self.dialect = dialect

    @classmethod
    def open(cls, uri: str, sqlite_path: Path | None) -> SqlReader | None:
        """A reader for ``uri`` when it is a sqlite file or PostgreSQL store of the known MLflow schema, else None."""
        dialect = _dialect(uri)
        if dialect is None:
            return None
        try:
            if not metadata.version("mlflow").startswith(MLFLOW_VERSION):
                return None
        except metadata.PackageNotFoundError:
            return None
        if dialect == "sqlite":
            if sqlite_path is None:
                return None
            import sqlite3

            con = sqlite3.connect(f"{sqlite_path.as_uri()}?mode=ro", uri=True, timeout=20)
            con.execute("PRAGMA case_sensitive_like = true")  # as MLflow's sessions: LIKE is case-sensitive

            def execute(sql: str, params: dict[str, Any]) -> list[tuple]:
                return con.execute(sql, params).fetchall()

        else:
            try:
                import sqlalchemy as sa
            except ImportError:
                return None
            try:
                # no pooled connection left open (a test drops its database after reading it)
                engine = sa.create_engine(uri, poolclass=sa.pool.NullPool)
            except Exception:  # a driver missing, a URI SQLAlchemy reads otherwise: the client says what
                return None

            def execute(sql: str, params: dict[str, Any]) -> list[tuple]:
                with engine.connect() as conn:
                    return [tuple(r) for r in conn.execute(sa.text(sql), params).fetchall()]

        reader = cls(execute, dialect)
        try:
            revision = reader._execute("SELECT version_num FROM alembic_version", {})
            workspaces = reader._execute("SELECT DISTINCT workspace FROM experiments", {})
        except Exception:  # not reachable, not an MLflow store, another schema: the client knows what to say
            return None
        if revision != [(SCHEMA_REVISION,)] or any(w != ("default",) for w in workspaces):
            return None
        return reader

    def experiments(self) -> list[Experiment]:
        """The active experiments (``search_experiments``' default view), in id order."""
        rows = self._execute(
            "SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = :s ORDER BY experiment_id",
            {"s": "active"},
        )
        return [Experiment(str(i), name) for i, name in rows]

    def search_runs(
        self,
        experiment_ids: list[str],
        filter: str | None,
        deleted: bool,
        limit: int | None,
        order_by: list[str] | None,
    ) -> list[Run] | None:
        """The runs ``MlflowClient.search_runs`` returns for these arguments (every page), or None where this
        reader does not translate ``filter`` or ``order_by``."""
        try:
            filters, order = parse_filter(filter), parse_order(order_by)
        except Unsupported:
            return None
        stages = ["active", "deleted"] if deleted else ["active"]
        sql, params = runs_query(self.dialect, experiment_ids, stages, filters, order, limit)
        rows = self._execute(sql, params)
        runs = [Run(RunInfo(r[0], r[1], str(r[2]), r[3], r[4], r[5], r[6], r[7], r[8]), RunData()) for r in rows]
        by_id = {r.info.run_id: r.data for r in runs}
        ids = list(by_id)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join(f":r{i}" for i in range(len(chunk)))
            bound = {f"r{i}": v for i, v in enumerate(chunk)}
            for run_uuid, key, value, is_nan in self._execute(
                f"SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE run_uuid IN ({marks})", bound
            ):
                by_id[run_uuid].metrics[key] = float("nan") if is_nan else value
            for run_uuid, key, value in self._execute(
                f"SELECT run_uuid, key, value FROM params WHERE run_uuid IN ({marks})", bound
            ):
                by_id[run_uuid].params[key] = value
            for run_uuid, key, value in self._execute(
                f"SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({marks})", bound
            ):
                by_id[run_uuid].tags[key] = value
        for run in runs:
            if not run.info.run_name:  # as MLflow's entity: the name from the mlflow.runName tag
                run.info.run_name = run.data.tags.get("mlflow.runName") or run.info.run_name
        return runs
