"""The run store: the MLflow store a run here would write to, searched and resolved with MLflow's own client.

A RUN reference is a full run id, a unique prefix of one, ``last`` (the newest run that is neither a sweep's trial
nor a report, :data:`REPORT_KIND`) or a run name (quoted once more, as Hydra wants it, it still resolves).
A sweep's trials (runs nested under its parent run) are left out of listings unless asked for.
Opening a store never creates one: a store that does not exist yet is one error line saying where it looked.

Searches of a database store go through :mod:`.sqlread` (plain SQL, no MLflow import: a listing in a fraction
of a second instead of 2-8 s); a tracking server, another MLflow version, or a filter that reader does not
translate use MLflow's client.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qframe.core.errors import ConfigError, DataError

#: the metrics a listing shows (the rest are in ``--json``, ``--csv`` and ``show``)
KEY_METRICS = ("IC", "Rank IC", "excess_return_with_cost.information_ratio")
PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAG = "qframe.trial"
KIND_TAG = "qframe.kind"
#: the kind of a run that holds a report (a leaderboard) on other runs: listed, never taken for ``last``
REPORT_KIND = "report"
#: a Hydra multirun job's sweep directory (every job of one grid or hyperopt sweep shares it)
SWEEP_DIR_TAG = "qframe.sweep_dir"
#: the command-line overrides a run was given (JSON list)
OVERRIDES_TAG = "qframe.overrides"
ERROR_TAG = "qframe.error"
NO_TRIALS = f"tags.{PARENT_TAG} IS NULL"
_HEX = re.compile(r"^[0-9a-f]{1,32}$")
#: how many recent runs the "did you mean" of an unknown RUN compares with
_NEAR_POOL = 1000
#: MLflow's own cap on one page of search results
_PAGE = 50000


def resolve_uri(
    tracking_uri: str | None = None, workdir: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[str, Path]:
    """(tracking URI, work directory) as a run would resolve them: ``tracking_uri``, else ``MLFLOW_TRACKING_URI``,
    else ``<workdir>/mlflow.db`` (:func:`qframe.core.context.locate`)."""
    from qframe.core.context import locate

    location = locate({"workdir": workdir, "tracking_uri": tracking_uri}, os.environ if environ is None else environ)
    return location.tracking_uri, location.workdir


def sort_clause(sort: str | None) -> list[str] | None:
    """``-metrics.IC`` -> ``["metrics.IC DESC"]``; ``metrics.IC`` ascending; a clause with ASC/DESC as given."""
    if not sort:
        return None
    out = []
    for part in (p.strip() for p in sort.split(",")):
        if not part:
            continue
        if part.upper().endswith((" ASC", " DESC")):
            out.append(part)
        elif part.startswith("-"):
            out.append(f"{part[1:]} DESC")
        else:
            out.append(f"{part.lstrip('+')} ASC")
    return out or None


def join_filters(*parts: str | None) -> str:
    """MLflow filters joined with AND (its grammar has no OR)."""
    return " AND ".join(f"{p.strip()}" for p in parts if p and p.strip())


def is_trial(run: Any) -> bool:
    return PARENT_TAG in run.data.tags


def is_sweep_parent(run: Any) -> bool:
    return run.data.tags.get(KIND_TAG) == "sweep"


def is_report(run: Any) -> bool:
    """A run that only holds a report on other runs (``qframe runs leaderboard --log``): it predicts nothing."""
    return run.data.tags.get(KIND_TAG) == REPORT_KIND


class RunStore:
    """One MLflow store: search runs, resolve RUN references, delete runs. Searches of a database store read it
    with SQL (:mod:`.sqlread`, ``sql=False``: never), everything else uses MLflow's client; either way a run is
    shaped like ``mlflow.entities.Run`` (``run.info.run_id``, ``run.data.params``...).

    ``runs = RunStore.open()`` finds the store a run started here records to (``tracking_uri``, else
    ``MLFLOW_TRACKING_URI``, else ``<workdir>/mlflow.db``) and refuses, in one line, a sqlite store that does not
    exist yet.
    """

    def __init__(self, tracking_uri: str, workdir: Path, sql: bool = True) -> None:
        self.uri = tracking_uri
        self.workdir = workdir
        self._client: Any = None
        self._experiments: dict[str, Any] | None = None
        #: read the database with :mod:`.sqlread` where it can (False: always MLflow's client)
        self.sql = sql
        self._reader: Any = None

    @classmethod
    def open(
        cls,
        tracking_uri: str | None = None,
        workdir: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> RunStore:
        """The store at ``tracking_uri`` (see :func:`resolve_uri`); ConfigError when a sqlite store is missing."""
        from qframe.core import sqlite_store

        uri, where = resolve_uri(tracking_uri, workdir, environ)
        db = sqlite_store.sqlite_file(uri)
        if db is not None and not db.is_file():
            how = "run `qframe` here first" if tracking_uri is None else "check --tracking-uri"
            raise ConfigError(
                f"no MLflow store yet at {db} (looked there: the store of --workdir / $QFRAME_HOME / ./.qframe); "
                f"{how}, or name another store with --workdir DIR, --tracking-uri URI or MLFLOW_TRACKING_URI"
            )
        return cls(uri, where)

    # ------------------------------------------------------------------------------------------------ the client

    @property
    def reader(self) -> Any:
        """The :class:`.sqlread.SqlReader` of this store, None where MLflow's client must answer."""
        if self.sql and self._reader is None:
            from qframe.core import sqlite_store
            from qframe.experiments.sqlread import SqlReader

            self._reader = SqlReader.open(self.uri, sqlite_store.sqlite_file(self.uri)) or False
        return self._reader or None

    @property
    def client(self) -> Any:
        if self._client is None:
            import logging

            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
            # no download progress bars on the terminal of a listing
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            from mlflow.tracking import MlflowClient

            logging.getLogger("mlflow").setLevel(logging.WARNING)
            logging.getLogger("alembic").setLevel(logging.WARNING)
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A client call; MLflow's errors (a bad filter, an unreachable server) as one ConfigError line."""
        from mlflow.exceptions import MlflowException

        from qframe.core import stores

        try:
            return fn(*args, **kwargs)
        except MlflowException as exc:
            message = str(exc.message if hasattr(exc, "message") else exc).strip().splitlines()[0]
            raise ConfigError(f"MLflow store {self._shown_uri()}: {message}") from None
        except ModuleNotFoundError as exc:
            error = stores.missing_driver(exc, self.uri)
            if error is None:
                raise
            raise error from None

    def _shown_uri(self) -> str:
        return self.uri.split("@", 1)[-1] if "@" in self.uri else self.uri  # no password in a message

    # ------------------------------------------------------------------------------------------------ experiments

    def experiments(self) -> dict[str, Any]:
        """Active experiments by id."""
        if self._experiments is None:
            reader = self.reader
            if reader is not None:
                found = reader.experiments()
            else:
                found = self._call(self.client.search_experiments, max_results=_PAGE)
            self._experiments = {e.experiment_id: e for e in found}
        return self._experiments

    def experiment_ids(self, experiment: str | None = None) -> list[str]:
        """The ids of ``experiment`` (a name or an id), or of every active experiment."""
        found = self.experiments()
        if experiment is None:
            return list(found)
        for e in found.values():
            if experiment in (e.name, e.experiment_id):
                return [e.experiment_id]
        names = sorted(e.name for e in found.values())
        close = difflib.get_close_matches(experiment, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"no experiment {experiment!r} in {self._shown_uri()}; {hint}experiments: {', '.join(names)}")

    def experiment_name(self, experiment_id: str) -> str:
        e = self.experiments().get(experiment_id)
        return e.name if e is not None else experiment_id

    # ------------------------------------------------------------------------------------------------ searching

    def search_runs(
        self,
        experiment: str | None = None,
        filter: str | None = None,
        sort: str | None = None,
        limit: int | None = None,
        trials: bool = False,
        sweep: str | None = None,
        deleted: bool = False,
    ) -> list[Any]:
        """MLflow runs, newest first unless ``sort``; without ``trials`` a sweep's trials are left out; ``sweep``
        (a RUN or ``last``): only that sweep's runs."""
        ids = self.experiment_ids(experiment)
        if not ids:
            return []
        stages = self._pipeline_stages(sweep) if sweep is not None else None
        if stages is not None:  # a pipeline's run: the trials of its stages (each stage a sweep's parent run)
            found = [r for s in stages for r in self.search_runs(experiment, filter, sort, None, True, s, deleted)]
            if not sort:
                found.sort(key=lambda r: r.info.start_time or 0, reverse=True)
            return found[:limit] if limit is not None else found
        clauses = [filter]
        if sweep is not None:
            clauses.append(self._sweep_filter(sweep))
        elif not trials:
            clauses.append(NO_TRIALS)
        reader = self.reader
        if reader is not None and (limit is None or limit > 0):  # (no run for a limit <= 0, as the client's loop)
            found = reader.search_runs(ids, join_filters(*clauses), deleted, limit, sort_clause(sort))
            if found is not None:
                return found
        from mlflow.entities import ViewType

        view = ViewType.ALL if deleted else ViewType.ACTIVE_ONLY
        wanted = limit if limit is not None else float("inf")
        out: list[Any] = []
        token = None
        while len(out) < wanted:
            page = self._call(
                self.client.search_runs,
                ids,
                join_filters(*clauses),
                view,
                int(min(_PAGE, wanted - len(out))),
                sort_clause(sort),
                token,
            )
            out.extend(page)
            token = page.token
            if not token:
                break
        return out

    def _pipeline_stages(self, sweep: str) -> list[str] | None:
        """The stage runs of the pipeline ``sweep`` names (``qframe.kind=pipeline``), None: not a pipeline's run."""
        if sweep == "last":
            return None
        run = self.resolve(sweep)
        if run.data.tags.get(KIND_TAG) != "pipeline":
            return None
        children = self.search_runs(filter=f"tags.{PARENT_TAG} = '{run.info.run_id}'", trials=True)
        return [child.info.run_id for child in children]

    def _sweep_filter(self, sweep: str) -> str:
        """The filter of one sweep's runs: the trials under its parent run, or a grid's jobs (one sweep dir)."""
        run = self.latest_sweep() if sweep == "last" else self.resolve(sweep)
        if is_sweep_parent(run):
            return f"tags.{PARENT_TAG} = '{run.info.run_id}'"
        parent = run.data.tags.get(PARENT_TAG)
        if parent:  # a trial named: its sweep
            return f"tags.{PARENT_TAG} = '{parent}'"
        directory = run.data.tags.get(SWEEP_DIR_TAG)
        if directory:
            return f"tags.{SWEEP_DIR_TAG} = '{_quote(directory)}'"
        raise ConfigError(
            f"run {run.info.run_id} ({run.info.run_name}) is not part of a sweep; "
            "--sweep takes a sweep's parent run, one of its runs, or 'last'"
        )

    def latest_sweep(self) -> Any:
        """The newest sweep: a hyperopt sweep's parent run or a grid's newest job, whichever started last."""
        candidates = []
        for clause in (f"tags.{KIND_TAG} = 'sweep'", f"tags.{SWEEP_DIR_TAG} IS NOT NULL AND {NO_TRIALS}"):
            candidates += self.search_runs(filter=clause, limit=1, trials=True)
        if not candidates:
            raise ConfigError(
                f"no sweep in {self._shown_uri()} yet (a sweep is `qframe -m ...`); list the runs with: qframe runs"
            )
        return max(candidates, key=lambda r: r.info.start_time or 0)

    # ------------------------------------------------------------------------------------------------ RUN

    def resolve(self, ref: str, deleted: bool = False) -> Any:
        """The MLflow run a RUN reference names: a full id, a unique id prefix, ``last`` or a run name."""
        ref = ref.strip()
        if not ref:
            raise ConfigError("an empty RUN: give a run id, a unique prefix of one, 'last' or a run name")
        if ref == "last":  # the newest run that made something: a report on other runs is not one
            found = [r for r in self.search_runs(limit=20, deleted=deleted) if not is_report(r)]
            if not found:
                raise ConfigError(f"no runs in {self._shown_uri()} yet: `qframe` makes one")
            return found[0]
        if _HEX.match(ref):
            matches = self.search_runs(filter=f"attributes.run_id LIKE '{ref}%'", trials=True, deleted=deleted)
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                listed = ", ".join(f"{r.info.run_id} ({r.info.run_name})" for r in matches[:8])
                more = f" and {len(matches) - 8} more" if len(matches) > 8 else ""
                raise ConfigError(f"run prefix {ref!r} is ambiguous: {listed}{more}; give more characters")
        named = self._named(ref, deleted)
        if not named and len(ref) > 1 and ref[0] == ref[-1] and ref[0] in "'\"":
            # a name quoted once more than needed (`from_run='"my run"'`, as Hydra wants a value with spaces)
            inner = ref[1:-1].strip()
            if inner:
                named = self._named(inner, deleted)
                ref = inner if named else ref
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            listed = ", ".join(r.info.run_id[:12] for r in named[:8])
            more = f" and {len(named) - 8} more" if len(named) > 8 else ""
            raise ConfigError(f"{len(named)} runs are named {ref!r} ({listed}{more}); give an id or a unique prefix")
        raise ConfigError(self._no_such_run(ref, deleted))

    def _named(self, name: str, deleted: bool) -> list[Any]:
        """The runs named exactly ``name``. A name with quotes or backslashes has no filter literal both MLflow and
        :mod:`.sqlread` read: those characters become LIKE's one-character wildcard and the match is checked here."""
        if any(c in name for c in "'\"\\"):
            pattern = "".join("_" if c in "'\"\\" else c for c in name)
            found = self.search_runs(filter=f"attributes.run_name LIKE '{pattern}'", trials=True, deleted=deleted)
            return [r for r in found if r.info.run_name == name]
        found = self.search_runs(filter=f"attributes.run_name = '{name}'", trials=True, deleted=deleted)
        return [r for r in found if r.info.run_name == name]

    def _no_such_run(self, ref: str, deleted: bool) -> str:
        recent = self.search_runs(limit=_NEAR_POOL, trials=True, deleted=deleted)
        names = {r.info.run_name: r.info.run_id for r in recent if r.info.run_name}
        close = difflib.get_close_matches(ref, list(names), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r} ({names[close[0]][:8]})? " if close else ""
        return f"no run {ref!r} in {self._shown_uri()}; {hint}list the runs with: qframe runs"

    def get(self, ref: str) -> RecordedRun:
        """The run a RUN reference names, with its params, metrics, tags, config and artifacts."""
        return RecordedRun(self, self.resolve(ref))

    # ------------------------------------------------------------------------------------------------ tables

    def search(
        self,
        experiment: str | None = None,
        filter: str | None = None,
        sort: str | None = None,
        limit: int | None = None,
        trials: bool = False,
        sweep: str | None = None,
    ) -> Any:
        """A DataFrame, one row a run: ``run_id, run_name, experiment, status, start_time, end_time, duration_s,
        model`` then ``metrics.*``, ``params.*`` and ``tags.*`` columns (as ``mlflow.search_runs`` names them)."""
        return runs_frame(self, self.search_runs(experiment, filter, sort, limit, trials, sweep))

    # ------------------------------------------------------------------------------------------------ deleting

    def delete(self, runs: list[Any], purge: bool = False) -> list[str]:
        """Soft-delete ``runs`` (MLflow's ``deleted`` lifecycle: restorable); ``purge``: remove them and their
        artifacts for good. A sweep's parent takes its trials with it. Returns the ids removed."""
        ids: list[str] = []
        for run in runs:
            ids.append(run.info.run_id)
            if is_sweep_parent(run):
                ids += [
                    t.info.run_id
                    for t in self.search_runs(
                        filter=f"tags.{PARENT_TAG} = '{run.info.run_id}'", trials=True, deleted=True
                    )
                ]
        ids = list(dict.fromkeys(ids))
        if purge:
            store = self.client._tracking_client.store
            hard_delete = getattr(store, "_hard_delete_run", None)
            if hard_delete is None:
                raise ConfigError(
                    f"--purge needs direct access to the database; {self._shown_uri()} is a tracking server: "
                    "delete the runs here, then run `mlflow gc` where the server's database is"
                )
        for run_id in ids:
            run = self._call(self.client.get_run, run_id)
            if run.info.lifecycle_stage != "deleted":
                self._call(self.client.delete_run, run_id)
            if purge:
                _delete_artifacts(run.info.artifact_uri, self.uri)
                self._call(hard_delete, run_id)
        return ids


def _quote(value: str) -> str:
    """A value inside an MLflow filter's single quotes."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _delete_artifacts(artifact_uri: str, tracking_uri: str) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    try:
        get_artifact_repository(artifact_uri, tracking_uri=tracking_uri).delete_artifacts()
    except (FileNotFoundError, OSError):  # nothing was logged
        pass


def duration_s(run: Any) -> float | None:
    info = run.info
    if not info.start_time:
        return None
    if info.end_time:
        return (info.end_time - info.start_time) / 1000
    return None


def model_of(run: Any) -> str:
    """The model a run fitted (``model.name``, or its ``_target_``); ``sweep`` for a sweep's parent run."""
    params = run.data.params
    if is_sweep_parent(run):
        return "sweep"
    if is_report(run):
        return REPORT_KIND
    return params.get("model.name") or params.get("model._target_", "").rsplit(".", 1)[-1] or ""


def runs_frame(store: RunStore, runs: list[Any]) -> Any:
    """The DataFrame of :meth:`RunStore.search`."""
    import pandas as pd

    rows = []
    for run in runs:
        info, data = run.info, run.data
        row: dict[str, Any] = {
            "run_id": info.run_id,
            "run_name": info.run_name,
            "experiment": store.experiment_name(info.experiment_id),
            "status": info.status,
            "start_time": info.start_time,
            "end_time": info.end_time,
            "duration_s": duration_s(run),
            "model": model_of(run),
        }
        row.update({f"metrics.{k}": v for k, v in data.metrics.items()})
        row.update({f"params.{k}": v for k, v in data.params.items()})
        row.update({f"tags.{k}": v for k, v in data.tags.items()})
        rows.append(row)
    base = ["run_id", "run_name", "experiment", "status", "start_time", "end_time", "duration_s", "model"]
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=base)
    for col in ("start_time", "end_time"):
        frame[col] = pd.to_datetime(frame[col], unit="ms", utc=True)
    rest = [c for c in frame.columns if c not in base]
    order = sorted(rest, key=lambda c: (("metrics.", "params.", "tags.").index(c.split(".", 1)[0] + "."), c))
    return frame[base + order]


# ---------------------------------------------------------------------------------------------------- one run

#: artifact loaders by extension; pickle is refused unless asked for
_LOADABLE = (".parquet", ".json", ".yaml", ".yml", ".csv", ".txt", ".npy", ".pkl", ".pickle")


@dataclass
class RecordedRun:
    """One recorded run: ``id``, ``name``, ``status``, ``params``, ``metrics``, ``tags``, ``config`` (the composed
    config it ran with, from its ``config.yaml``), :meth:`load` for an artifact and :meth:`load_model`."""

    store: RunStore
    run: Any

    @property
    def id(self) -> str:
        return self.run.info.run_id

    @property
    def name(self) -> str:
        return self.run.info.run_name

    @property
    def status(self) -> str:
        return self.run.info.status

    @property
    def experiment(self) -> str:
        return self.store.experiment_name(self.run.info.experiment_id)

    @property
    def params(self) -> dict[str, str]:
        return dict(self.run.data.params)

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.run.data.metrics)

    @property
    def tags(self) -> dict[str, str]:
        return {k: v for k, v in self.run.data.tags.items()}

    @property
    def config(self) -> dict[str, Any] | None:
        """The composed config the run ran with (its ``config.yaml``), None when it recorded none."""
        if "config.yaml" not in self.artifact_paths(""):
            return None
        return self.load("config.yaml")

    def artifacts(self, path: str = "") -> list[Any]:
        """Every artifact file (MLflow ``FileInfo``), recursively."""
        out = []
        for item in self._list(path):
            if item.is_dir:
                out += self.artifacts(item.path)
            else:
                out.append(item)
        return out

    def artifact_paths(self, path: str = "") -> list[str]:
        return [a.path for a in self._list(path)]

    def _list(self, path: str) -> list[Any]:
        """One directory of artifacts: read from disk for a local (``file:``) artifact store of a database store,
        as MLflow's ``LocalArtifactRepository.list_artifacts`` does; else with MLflow's client."""
        if self.store.reader is not None:
            found = local_artifacts(self.run.info.artifact_uri, path)
            if found is not None:
                return found
        return self.store._call(self.store.client.list_artifacts, self.id, path or None)

    def download(self, path: str, directory: Path | None = None) -> Path:
        """An artifact (file or directory) downloaded to ``directory`` (a fresh temporary one by default)."""
        import tempfile

        directory = Path(directory or tempfile.mkdtemp(prefix="qframe-artifact-"))
        return Path(self.store._call(self.store.client.download_artifacts, self.id, path, str(directory)))

    def _artifact_name(self, name: str) -> str:
        files = [a.path for a in self.artifacts()]
        if name in files:
            return name
        for ext in _LOADABLE:
            if name + ext in files:
                return name + ext
        close = difflib.get_close_matches(name, files, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DataError(f"run {self.id[:8]} has no artifact {name!r}; {hint}it has: {', '.join(files) or 'none'}")

    def load(self, name: str, allow_pickle: bool = False) -> Any:
        """An artifact by name (``"pred"`` finds ``pred.parquet``): Parquet and CSV as DataFrames, JSON, YAML,
        text, ``.npy`` arrays. A pickle runs code from the file when loaded: refused unless ``allow_pickle``."""
        path = self._artifact_name(name)
        suffix = Path(path).suffix.lower()
        if suffix in (".pkl", ".pickle") and not allow_pickle:
            raise DataError(
                f"artifact {path!r} of run {self.id[:8]} is a pickle: loading one runs whatever code it holds; "
                "pass allow_pickle=True only for a run you trust"
            )
        local = self.download(path)
        return read_artifact(local, allow_pickle)

    def load_model(self) -> Any:
        """The run's fitted model from its native files (``model/``): LightGBM's text file, the ridge's JSON, a
        torch model's ``state_dict`` (read with ``weights_only=True``). ``predict`` works as in the run."""
        from qframe.experiments.models import load_model

        files = [a.path for a in self.artifacts("model")]
        if not files:
            raise DataError(f"run {self.id[:8]} ({self.name}) recorded no model (no model/ artifacts)")
        return load_model(self.download("model"), self.params)


@dataclass(frozen=True)
class FileInfo:
    """``mlflow.entities.FileInfo``: an artifact's path (``/``-separated, relative to the run's root), whether it
    is a directory, its size in bytes (None for a directory)."""

    path: str
    is_dir: bool
    file_size: int | None


def local_artifacts(artifact_uri: str | None, path: str = "") -> list[FileInfo] | None:
    """The entries of ``path`` under a ``file:`` artifact URI, sorted by path as MLflow lists them (its temporary
    upload files left out); None for any other kind of artifact store, or a path outside the run's."""
    if not artifact_uri or not artifact_uri.startswith("file:"):
        return None
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    parsed = urlparse(artifact_uri)
    if parsed.netloc not in ("", "localhost"):
        return None
    root = Path(url2pathname(parsed.path))
    rel = os.path.normpath(path) if path else ""
    if rel.startswith("..") or os.path.isabs(rel):
        return None  # MLflow refuses it: its client says how
    directory = root / rel if rel else root
    if not directory.is_dir():
        return []
    out = []
    for name in os.listdir(directory):
        if name.startswith(".artifact.uploading."):  # mlflow.store.artifact.local_artifact_repo._TEMP_ARTIFACT_PREFIX
            continue
        full = directory / name
        relative = Path(rel, name).as_posix() if rel else name
        is_dir = full.is_dir()
        out.append(FileInfo(relative, is_dir, None if is_dir else full.stat().st_size))
    return sorted(out, key=lambda f: f.path)


def read_artifact(path: Path, allow_pickle: bool = False) -> Any:
    """A downloaded artifact file as an object (see :meth:`RecordedRun.load`)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path)
    if suffix == ".csv":
        import pandas as pd

        return pd.read_csv(path)
    if suffix == ".json":
        return json.loads(path.read_text())
    if suffix in (".yaml", ".yml"):
        import yaml

        return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if suffix == ".npy":
        import numpy as np

        return np.load(path, allow_pickle=False)
    if suffix in (".pkl", ".pickle"):
        if not allow_pickle:
            raise DataError(f"{path.name} is a pickle: pass allow_pickle=True only for a file you trust")
        import pickle

        with path.open("rb") as f:
            return pickle.load(f)  # noqa: S301 - the caller opted in
    if suffix in (".txt", ".md", ".log", ".diff", ".patch"):
        return path.read_text()
    raise DataError(f"{path.name}: qframe does not load {suffix or 'extension-less'} files; download it instead")
