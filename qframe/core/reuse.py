"""Re-evaluating a recorded run's predictions (``from_run=RUN``) instead of fitting a model.

The source run is resolved in the store the new run records to (a full id, a unique prefix, a run name, or ``last``:
the newest finished run that is not a sweep's parent run). Its ``pred.parquet`` is the test segment's scores; its
recorded ``config.yaml`` gives the ``model`` and ``handler`` sections of the new run (they made the predictions; the
handler's label is the one the IC is measured against). What is needed of the data is the market (the backtest) and
the raw test label, which is computed from the market's closes directly: no feature is read or computed.

The predictions must be for this config's data and test segment: the same (date, instrument) rows, and the same
market content (its fingerprint). Anything else is one :class:`DataError` naming the settings that differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qframe.core.context import RunLocation
from qframe.core.errors import ConfigError, DataError
from qframe.core.handler import label_horizon, resolve_segments, sample_rows, suspended_rule
from qframe.core.panel import Panel

#: the tag linking a re-evaluation to the run whose predictions it used
SOURCE_TAG = "qframe.from_run"
#: the config sections taken from the source run: what produced the predictions
ADOPTED = ("model", "handler")
#: taken from the source run too when it recorded one (a run from before reweighters had none: unweighted)
ADOPTED_IF_RECORDED = {"reweighter": {"name": "none"}}
#: the config sections whose settings must match the source's for its predictions to be this data's
MATCHED = ("dataset", "segments")
FINGERPRINT_TAG = "qframe.dataset_fingerprint"


@dataclass
class SourceRun:
    """A recorded run whose predictions are re-evaluated: its id, name, composed config, scores and data tag."""

    run_id: str
    name: str
    config: dict[str, Any]
    scores: pd.Series
    fingerprint: str | None = None

    @property
    def label(self) -> str:
        return f"{self.run_id[:8]} ({self.name})" if self.name else self.run_id[:8]


@dataclass
class ReusedInputs:
    """What a re-evaluation needs besides the market: the source, the segments' bounds and the raw test label."""

    source: SourceRun
    bounds: dict[str, tuple[pd.Timestamp, pd.Timestamp]]
    raw_test_label: pd.Series
    from_cache: bool = True
    #: no feature is computed: none is dropped
    dropped_features: dict[str, str] = field(default_factory=dict)

    @property
    def samples(self) -> dict[str, int]:
        return {"test": len(self.raw_test_label)}


def reference(cfg: dict[str, Any]) -> str | None:
    """The config's ``from_run`` as a string, None when the run fits its own model."""
    ref = cfg.get("from_run")
    if ref is None or ref is False:
        return None
    ref = str(ref).strip()
    if not ref:
        raise ConfigError("from_run is empty: give a run id, a unique prefix of one, 'last' or a run name")
    return ref


def open_source(ref: str, location: RunLocation) -> SourceRun:
    """The run ``ref`` names in ``location``'s store, with its recorded config and predictions."""
    from qframe.core import sqlite_store
    from qframe.experiments.store import RunStore, is_report, is_sweep_parent

    db = sqlite_store.sqlite_file(location.tracking_uri)
    if db is not None and not db.is_file():
        raise ConfigError(
            f"from_run={ref}: no MLflow store at {db} yet, so no run to re-evaluate; set workdir= (or tracking_uri=) "
            "to the one the source run recorded to"
        )
    store = RunStore(location.tracking_uri, location.workdir)
    if ref == "last":
        # not store.resolve("last"): inside a sweep the newest run is the sweep's own (running) parent
        found = store.search_runs(filter="attributes.status = 'FINISHED'", limit=20)
        found = [r for r in found if not is_sweep_parent(r) and not is_report(r)]
        if not found:
            raise ConfigError(f"from_run=last: no finished run in {location.tracking_uri} to re-evaluate")
        run = found[0]
    else:
        try:
            run = store.resolve(ref)
        except ConfigError as exc:
            raise ConfigError(f"from_run={ref}: {exc}") from None
    what = f"from_run={ref}: run {run.info.run_id[:8]} ({run.info.run_name}, {run.info.status})"
    if is_sweep_parent(run):
        raise ConfigError(f"{what} is a sweep's parent run, which predicts nothing; name one of its trials")
    config, frame = (_artifact(store, run, name, what) for name in ("config.yaml", "pred.parquet"))
    if not isinstance(config, dict) or not all(isinstance(config.get(k), dict) for k in ADOPTED):
        raise DataError(f"{what} recorded no config.yaml with its model and handler, so what made its predictions "
                        "is unknown")  # fmt: skip
    return SourceRun(
        run.info.run_id,
        run.info.run_name or "",
        config,
        _scores(frame, what),
        run.data.tags.get(FINGERPRINT_TAG),
    )


def _artifact(store: Any, run: Any, name: str, what: str) -> Any:
    """One artifact of ``run``, read as :meth:`qframe.experiments.store.RecordedRun.load` reads it.

    Straight from the artifact repository of the run's artifact URI: MLflow's ``runs:/`` path would read the run
    back from the store for every listing and download (~0.15 s on a fresh sqlite store).
    """
    import tempfile
    from pathlib import Path

    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from qframe.experiments.store import read_artifact

    local = _local_artifact(run.info.artifact_uri, name)
    if local is not None:
        return read_artifact(local)  # a file store's artifact is read where it lies
    repo = get_artifact_repository(run.info.artifact_uri, tracking_uri=store.uri)
    with tempfile.TemporaryDirectory(prefix="qframe-from-run-") as directory:
        try:
            local = repo.download_artifacts(name, directory)
        except (MlflowException, OSError):
            has = ", ".join(store.get(run.info.run_id).artifact_paths("")) or "none"
            raise DataError(f"{what} has no {name} to re-evaluate (its artifacts: {has})") from None
        return read_artifact(Path(local))


def _local_artifact(artifact_uri: str, name: str) -> Any:
    """The path of artifact ``name`` when the run's artifacts are local files and it exists there, else None."""
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    parsed = urlparse(artifact_uri)
    if parsed.scheme not in ("", "file") or (parsed.scheme == "file" and parsed.netloc not in ("", "localhost")):
        return None
    path = Path(unquote(parsed.path)) / name
    return path if path.is_file() else None


def _scores(frame: pd.DataFrame, what: str) -> pd.Series:
    """``pred.parquet`` (columns datetime, instrument, score) as the scores Series a run evaluates."""
    missing = [c for c in ("datetime", "instrument", "score") if c not in frame.columns]
    if missing:
        raise DataError(f"{what}: its pred.parquet lacks column(s) {', '.join(missing)} (has {list(frame.columns)})")
    index = pd.MultiIndex.from_arrays(
        [pd.DatetimeIndex(frame["datetime"]), pd.Index(frame["instrument"])], names=["datetime", "instrument"]
    )
    return pd.Series(frame["score"].to_numpy(dtype=np.float64), index=index, name="score")


def check_overrides(overrides: list[str]) -> None:
    """Refuse command-line settings of the sections a re-evaluation takes from its source run (they would do
    nothing): ``model=...``, ``model.x=...``, ``handler...``, ``reweighter...``."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    ignored = [k for k in keys if k.split(".", 1)[0].split("@", 1)[0] in (*ADOPTED, *ADOPTED_IF_RECORDED)]
    if ignored:
        raise ConfigError(
            f"from_run re-evaluates a recorded run's predictions, made by its own model, handler and reweighter: "
            f"{', '.join(ignored)} would change nothing; drop it, or run without from_run to fit a new model"
        )


def adopt(cfg: dict[str, Any], source: SourceRun) -> dict[str, Any]:
    """``cfg`` with the source's ``model``, ``handler`` (and ``reweighter``) sections and ``from_run`` set to its
    full id."""
    recorded = {k: source.config.get(k, default) for k, default in ADOPTED_IF_RECORDED.items()}
    return {**cfg, **{k: source.config[k] for k in ADOPTED}, **recorded, "from_run": source.run_id}


def model_name(cfg: dict[str, Any]) -> str:
    """The name of the (adopted) model section: ``name``, else its ``_target_``'s last part."""
    model = cfg.get("model") or {}
    return str(model.get("name") or str(model.get("_target_", "model")).rsplit(".", 1)[-1])


def label_of_test(market: Any, handler_cfg: dict[str, Any], bounds: dict[str, Any]) -> pd.Series:
    """The raw label of the test segment's rows, as :func:`qframe.core.handler.prepare` makes it (its rows,
    ``handler.suspended`` included; the handler's label), without computing any feature."""
    from qframe.core.features import label

    horizon = label_horizon(handler_cfg.get("label") or {})
    dates = market.calendar.to_numpy()
    lo, hi = bounds["test"]
    a = int(np.searchsorted(dates, lo.to_datetime64(), "left"))
    b = int(np.searchsorted(dates, hi.to_datetime64(), "right"))
    rows = sample_rows(market, suspended_rule(handler_cfg))[a:b]
    day, inst = np.nonzero(rows)  # row-major: sorted by date, then instrument, as the panel
    y = label(market, horizon=horizon)[a:b][rows].astype(np.float32)
    empty = np.empty((len(y), 0), dtype=np.float32)
    panel = Panel(empty, y, (day + a).astype(np.int32), inst.astype(np.int32), [], market.calendar, market.instruments)
    return panel.series(panel.y, "label")


def load_inputs(cfg: dict[str, Any], market: Any, source: SourceRun) -> ReusedInputs:
    """The test segment of ``cfg`` (adopted: the source's handler) on ``market``, checked against the source's
    predictions; the predictions put in the segment's row order."""
    bounds = resolve_segments(market.calendar, cfg.get("segments") or {})
    raw = label_of_test(market, cfg["handler"], bounds)
    source.scores = check_predictions(source, raw, market, cfg, bounds)
    return ReusedInputs(source, bounds, raw)


def check_predictions(
    source: SourceRun, raw_test_label: pd.Series, market: Any, cfg: dict[str, Any], bounds: dict[str, Any]
) -> pd.Series:
    """The source's scores on exactly the rows of the test segment (``raw_test_label``'s index, in its order);
    DataError when they are for other rows or other data."""
    scores, want = source.scores, raw_test_label.index
    if not scores.index.equals(want):
        if len(scores) != len(want) or not scores.index.sort_values().equals(want.sort_values()):
            raise DataError(_mismatch(source, scores, want, cfg, bounds))
        scores = scores.reindex(want)
    if source.fingerprint is not None and source.fingerprint != market.fingerprint():
        raise DataError(
            f"from_run: run {source.label} predicted on other data than this config's dataset gives (dataset "
            f"fingerprint {source.fingerprint[:12]}, here {market.fingerprint()[:12]}), on the same rows"
            f"{_differences(source, cfg)}"
        )
    return scores


def _span(index: pd.MultiIndex, dates: bool = True) -> str:
    if len(index) == 0:
        return "no rows"
    days = index.get_level_values(0)
    span = f"{days.min().date()}..{days.max().date()}, " if dates else ""
    return f"{span}{index.get_level_values(1).nunique()} instruments, {len(index):,} rows"


def _mismatch(source: SourceRun, scores: pd.Series, want: pd.MultiIndex, cfg: dict[str, Any], bounds: Any) -> str:
    lo, hi = bounds["test"]
    missing = len(want.difference(scores.index))
    extra = len(scores.index.difference(want))
    return (
        f"from_run: the predictions of run {source.label} are not this config's test segment: they cover "
        f"{_span(scores.index)}; this config's test segment, {lo.date()}..{hi.date()}, has {_span(want, dates=False)} "
        f"({missing:,} of its rows not predicted, {extra:,} predictions outside it){_differences(source, cfg)}"
    )


def _differences(source: SourceRun, cfg: dict[str, Any]) -> str:
    """``; the source ran with dataset.n_instruments=40 (here 300): pass them`` for the matched sections."""
    from qframe.core.tracking import flatten

    then = flatten({k: source.config.get(k) or {} for k in MATCHED})
    now = flatten({k: cfg.get(k) or {} for k in MATCHED})
    differ = [k for k in sorted(set(then) | set(now)) if then.get(k) != now.get(k)]
    if not differ:
        return "; its dataset and segments settings are the same as here: the data itself changed since"
    shown = ", ".join(f"{k}={then.get(k, '<unset>')} (here {now.get(k, '<unset>')})" for k in differ[:6])
    more = f" and {len(differ) - 6} more" if len(differ) > 6 else ""
    return f"; the source ran with {shown}{more}: pass the same settings (qframe runs show {source.run_id[:8]})"
