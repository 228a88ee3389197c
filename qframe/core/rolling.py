"""Rolling (walk-forward) retraining: ``trainer=rolling``, a run whose model is refitted window by window.

:func:`run_workflow` asks this module for two steps when the config's trainer is ``rolling``
(docs/rolling.md):

- :func:`load_inputs`: the market, the task list (:mod:`qframe.core.windows`, made before any work) and the feature
  panel, computed once (or read from the feature cache) and shared by every window;
- :func:`fit_predict`: each window fits its own processors on its own train span and its own model, and predicts
  only its test slice, in an isolated job (a forked child, :mod:`qframe.launch.pool`; Ray tasks with
  ``hydra/launcher=ray``). The slices are concatenated; the workflow judges them once, as any run's predictions.

Each finished window's predictions are kept under ``<cache>/rolling/<key>/`` (the key: everything that decides
them), so running the same command again after a failure or a kill fits only the windows not done yet. Every
window is a child MLflow run of the study's run, with its spans as params and its IC as metrics; the study's run
also gets ``windows.csv`` (the per-window table) and ``window_ic.png``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qframe.core.errors import ConfigError, QFrameError, reject_unknown_params
from qframe.core.panel import Panel
from qframe.core.progress import Progress
from qframe.core.registry import Registry, accepted_parameters
from qframe.core.windows import FAILURE_MODES, Window, check_windows, trainer_settings

TRAINERS = ("single", "rolling")
EXECUTORS = ("auto", "fork", "ray")
#: under the cache directory: one folder per rolling study (``qframe cache clear`` removes it with the rest)
ROLLING_DIR = "rolling"


class WindowFailed(QFrameError):
    """A window of a rolling study failed and ``trainer.on_window_failure`` is ``fail``."""


def trainer_name(cfg: dict[str, Any]) -> str:
    """The config's trainer (``single`` without a ``trainer`` section), checked."""
    name = str((cfg.get("trainer") or {}).get("name", "single"))
    if name not in TRAINERS:
        raise ConfigError(f"trainer={name!r}; valid options: {', '.join(TRAINERS)}")
    if name != "single" and cfg.get("from_run") is not None:
        raise ConfigError(
            f"from_run re-evaluates a recorded run's predictions and fits nothing: trainer={name} would change "
            "nothing; drop trainer=... (re-evaluate a rolling run with from_run=<its id> alone)"
        )
    return name


def is_rolling(cfg: dict[str, Any]) -> bool:
    return trainer_name(cfg) == "rolling"


def check_settings(cfg: dict[str, Any]) -> None:
    """The runner's own ``trainer`` keys, checked before any data is read."""
    trainer = cfg.get("trainer") or {}
    policy = trainer.get("on_window_failure", "fail")
    if policy not in FAILURE_MODES:
        raise ConfigError(f"trainer.on_window_failure={policy!r}; valid options: {', '.join(FAILURE_MODES)}")
    slots = trainer.get("slots", 1)
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        raise ConfigError(f"trainer.slots must be a whole number >= 1, got {slots!r}")
    executor = trainer.get("executor", "auto")
    if executor not in EXECUTORS:
        raise ConfigError(f"trainer.executor={executor!r}; valid options: {', '.join(EXECUTORS)}")


@dataclasses.dataclass
class RollingInputs:
    """What every window shares: the feature panel (unprocessed), the task list and the out-of-sample label.

    Shaped like :class:`qframe.core.handler.PreparedData` where the workflow reads it (``bounds``,
    ``raw_test_label``, ``dropped_features``, ``from_cache``, ``segments``).
    """

    panel: Panel
    windows: list[Window]
    bounds: dict[str, tuple[pd.Timestamp, pd.Timestamp]]
    raw_test_label: pd.Series
    dropped_features: dict[str, str]
    from_cache: bool
    fingerprint: str
    segments: dict[str, Any] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)


def plan(
    cfg: dict[str, Any], calendar: pd.DatetimeIndex, registry: Registry | None = None
) -> tuple[list[Window], tuple[int, int], int]:
    """The study's windows on ``calendar`` (from the ``trainer.generator`` registered by
    ``register_task_generators``), its out-of-sample span (positions) and the label horizon.

    The span is the test segment of ``segments`` (the single run's: both are judged on the same days).
    """
    from qframe.core.handler import label_horizon, resolve_segments
    from qframe.core.registry import get_registry

    horizon = label_horizon(cfg["handler"].get("label") or {})
    test_lo, test_hi = resolve_segments(calendar, cfg.get("segments") or {})["test"]
    dates = calendar.to_numpy()
    oos = (
        int(np.searchsorted(dates, test_lo.to_datetime64(), "left")),
        int(np.searchsorted(dates, test_hi.to_datetime64(), "right")),
    )
    settings = trainer_settings(cfg.get("trainer"))
    name = str((cfg.get("trainer") or {}).get("generator") or "rolling")
    item = (registry or get_registry()).get("task_generator", name)
    accepted = accepted_parameters(item.obj)
    if accepted is not None:
        reject_unknown_params(f"task generator {name!r}", "trainer", settings, accepted)
    windows = list(item.obj(calendar, oos, horizon, **settings))
    return check_windows(windows, oos, horizon, item.owner()), oos, horizon


def load_inputs(
    cfg: dict[str, Any],
    registry: Registry,
    cache_dir: Path,
    progress: Progress,
    strategy: Any = None,
    dataset: tuple[str, Any] | None = None,
) -> tuple[Any, RollingInputs, dict[str, float]]:
    """The market, the windows and the shared feature panel of a rolling study (the features once, cached)."""
    from qframe.core.handler import feature_threads, make_feature_set, panel_of
    from qframe.core.workflow import _check_strategy, _load_market

    t0 = time.perf_counter()
    market = _load_market(cfg, registry, cache_dir, progress, dataset)
    timings = {"data": time.perf_counter() - t0}
    windows, (lo, hi), horizon = plan(cfg, market.calendar, registry)
    cal = market.calendar
    progress.start("windows", f"{len(windows)} windows")
    first = windows[0].describe(cal)["train"]
    progress.finish(f"{len(windows)} windows, test {cal[lo].date()}..{cal[hi - 1].date()}; first train {first}")
    bounds = {
        "train": (cal[windows[0].train[0]], cal[windows[-1].train[1] - 1]),
        "valid": (cal[windows[0].valid[0]], cal[windows[-1].valid[1] - 1]),
        "test": (cal[lo], cal[hi - 1]),
    }
    if strategy is not None:
        market.notes.extend(_check_strategy(strategy, market, bounds["test"]))
    t0 = time.perf_counter()
    name, feature_set = make_feature_set(registry, cfg["handler"]["features"])
    use_cache = cfg["handler"].get("cache", True)
    progress.start("features", f"{name}: once for all {len(windows)} windows")
    cache = cache_dir if use_cache else None
    panel, dropped, hit = panel_of(market, feature_set, name, horizon, cache, "drop", feature_threads(cfg["handler"]))
    timings["features"] = time.perf_counter() - t0
    if not panel.names:
        raise ConfigError("no feature could be computed from this data; it needs at least a close series")
    progress.finish(f"{name}, {len(panel):,} rows x {len(panel.names)}" + (", from the cache" if hit else ""))
    test = _rows(panel, lo, hi)
    raw_test_label = test.series(test.y, "label")
    inputs = RollingInputs(panel, windows, bounds, raw_test_label, dropped, hit, market.fingerprint())
    return market, inputs, timings


def _rows(panel: Panel, lo: int, hi: int) -> Panel:
    """The rows of calendar positions ``[lo, hi)`` (rows are sorted by day: a view)."""
    return panel.rows(*np.searchsorted(panel.day, [lo, hi], "left"))


# ---------------------------------------------------------------------------------------------------------------------
# one window


def run_window(cfg: dict[str, Any], panel: Panel, window: Window, checkpoints: str) -> tuple[pd.Series, dict]:
    """Fit ``window``'s processors and model on its train span (early stopping on valid) and predict its test
    slice: (scores, fit info). Runs in the window's own process; builds every component from ``cfg``."""
    from qframe.core import reweight
    from qframe.core.components import build_component
    from qframe.core.handler import lookback_of, make_processors, process_segments
    from qframe.core.registry import get_registry
    from qframe.core.tracking import location_tags
    from qframe.core.workflow import _fit, _predict

    started = time.perf_counter()
    registry = get_registry()
    model_name, model = build_component(registry, "model", cfg["model"], "model")
    reweighter = reweight.build_reweighter(cfg, registry)
    processors, learn = make_processors(registry, cfg["handler"])
    raw = {s: _rows(panel, lo, hi) for s, (lo, hi) in window.spans().items()}
    for s, part in raw.items():
        if len(part) == 0:
            raise ConfigError(f"window {window.index}: its {s} span holds no sample in the universe")
    out = process_segments(raw, processors, learn)
    train, valid, test = out["train"], out["valid"], out["test"]
    if len(train) == 0:
        raise ConfigError(f"window {window.index}: the train span is empty after processing (every label NaN?)")
    weights = reweight.sample_weights(reweighter[1], reweighter[0], train)
    t0 = time.perf_counter()
    # the framework's share of the window before its fit: components, slices, processors, weights
    prepared = t0 - started
    _fit(model, train, valid, Path(checkpoints), Progress(), weights)
    fitted = time.perf_counter() - t0
    t0 = time.perf_counter()
    # a windowed model looks back from the test slice into the unfiltered features, as in a single run
    predictions = _predict(model, test, lookback_of(panel, window.test[0], processors))
    scores = test.series(predictions, "score")
    info = {
        **{k: v for k, v in (model.info() or {}).items() if isinstance(v, (int, float, str, bool))},
        **reweight.summary(weights, train),
        "train_rows": len(train),
        "valid_rows": len(valid),
        "prepare_seconds": round(prepared, 4),
        "fit_seconds": round(fitted, 4),
        "predict_seconds": round(time.perf_counter() - t0, 4),
        # where the window ran (qframe.host, qframe.pid, qframe.node): its child run's tags, not fit params
        **location_tags(),
    }
    return scores, info


def _window_cfg(cfg: dict[str, Any], slots: int) -> dict[str, Any]:
    """The config each window fits with. The thread rule: with ``slots`` > 1 windows at once, a model whose
    ``num_threads`` is null gets ``cores // slots`` threads (an explicit count wins), as a parallel sweep's jobs."""
    from qframe.launch.threads import threads_per_job

    cfg = copy.deepcopy(cfg)
    model = cfg.get("model")
    if slots > 1 and isinstance(model, dict) and "num_threads" in model and model["num_threads"] is None:
        model["num_threads"] = threads_per_job(slots)
    return cfg


# ---------------------------------------------------------------------------------------------------------------------
# executors


def executor_of(cfg: dict[str, Any]) -> str:
    """``fork`` or ``ray``: ``trainer.executor``. ``auto`` is the app's to resolve from the Hydra launcher
    (:func:`qframe.app.resolve_executor`); one that reaches this module unresolved (a direct ``run_workflow``
    call, no launcher) means forked jobs."""
    choice = str((cfg.get("trainer") or {}).get("executor", "auto"))
    return "fork" if choice == "auto" else choice


def _fork_executor(cfg: dict, panel: Panel, windows: list[Window], checkpoints: Path, slots: int) -> Iterator[Any]:
    from qframe.launch.pool import fork_map

    def task(window: Window) -> tuple[pd.Series, dict]:
        return run_window(cfg, panel, window, str(checkpoints / f"window-{window.index}"))

    return fork_map(task, [(w.index, w) for w in windows], slots=slots)


def _ray_executor(cfg: dict, panel: Panel, windows: list[Window], checkpoints: Path, slots: int) -> Iterator[Any]:
    """The windows as Ray tasks: on the cluster this process is connected to, else on a local Ray instance started
    (and stopped) here with ``slots`` CPUs. The panel goes to Ray's object store once, for every task."""
    import ray

    from qframe.launch.pool import Outcome

    started_here = not ray.is_initialized()
    if started_here:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local instance of this process only
        ray.init(num_cpus=slots, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_window)
        shared = ray.put(dataclasses.replace(panel, release=None))
        refs = {remote.remote(cfg, shared, w, str(checkpoints / f"window-{w.index}")): w.index for w in windows}
        started = time.perf_counter()
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                index = refs.pop(ref)
                try:
                    yield Outcome(index, True, value=ray.get(ref), seconds=time.perf_counter() - started)
                except Exception as exc:  # noqa: BLE001 - a task's failure is the window's
                    cause = getattr(exc, "cause", None) or exc
                    yield Outcome(index, False, error=f"{type(cause).__name__}: {cause}".splitlines()[0])
    finally:
        if started_here:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------------------------------
# the study


def study_dir(cfg: dict[str, Any], inputs: RollingInputs, cache_dir: Path) -> Path:
    """Where the study keeps its finished windows: keyed by everything that decides their predictions."""
    from qframe.core.cache import cache_key

    trainer = trainer_settings(cfg.get("trainer"))
    parts = {k: cfg.get(k) for k in ("dataset", "handler", "segments", "model", "reweighter", "seed")}
    key = cache_key("rolling", parts, trainer, inputs.fingerprint)
    return cache_dir / ROLLING_DIR / key


def _done(directory: Path, window: Window) -> tuple[pd.Series, dict] | None:
    pred, meta = directory / f"window-{window.index:03d}.parquet", directory / f"window-{window.index:03d}.json"
    if not (pred.is_file() and meta.is_file()):
        return None
    info = json.loads(meta.read_text())
    if info.get("test") != list(window.test):
        return None
    frame = pd.read_parquet(pred)
    return frame.set_index(["datetime", "instrument"])["score"], info["info"]


def _keep(directory: Path, window: Window, scores: pd.Series, info: dict) -> None:
    from qframe.core.atomic import atomic_path

    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / f"window-{window.index:03d}.parquet") as tmp:
        scores.rename("score").to_frame().reset_index().to_parquet(tmp, index=False)
    with atomic_path(directory / f"window-{window.index:03d}.json") as tmp:  # written last: the window is done
        tmp.write_text(json.dumps({"test": list(window.test), "info": info}, default=str))


def fit_predict(
    cfg: dict[str, Any],
    model_name: str,
    inputs: RollingInputs,
    location: Any,
    tracked: Any,
    progress: Progress,
    timings: dict[str, float],
    plots: bool = True,
) -> tuple[dict[str, int], dict[str, Any], pd.Series]:
    """Every window's fit and prediction (those already done are read back); (samples, info, scores), the scores
    the concatenation of the windows' test slices. A failed window fails the run (``on_window_failure: fail``,
    after the finished ones are kept) or is left out (``skip``). Each window's child run is recorded as it
    finishes, while the next window fits; ``plots``: the study's run also gets ``window_ic.png``."""
    check_settings(cfg)
    trainer = cfg.get("trainer") or {}
    slots = int(trainer.get("slots", 1))
    policy = trainer.get("on_window_failure", "fail")
    cal = inputs.panel.calendar
    directory = study_dir(cfg, inputs, location.cache_dir)
    run = tracked.run
    recorder = _WindowRecorder(tracked, inputs)
    results: dict[int, tuple[pd.Series, dict]] = {}
    for w in inputs.windows:
        kept = _done(directory, w)
        if kept is not None:
            results[w.index] = kept
            recorder.done(w, kept, None)
    resumed = len(results)
    pending = [w for w in inputs.windows if w.index not in results]
    failures: dict[int, str] = {}
    executor = executor_of(cfg)
    t0 = time.perf_counter()
    progress.start("fit", f"{model_name}: {len(pending)} window(s) on {executor}, {slots} at a time")
    checkpoints = location.workdir / "checkpoints" / run.info.run_id
    window_cfg = _window_cfg(cfg, slots)
    by_index = {w.index: w for w in inputs.windows}
    run_all = _ray_executor if executor == "ray" else _fork_executor
    outcomes = run_all(window_cfg, inputs.panel, pending, checkpoints, slots)
    try:
        for outcome in outcomes:
            window = by_index[outcome.key]
            if outcome.ok:
                scores, info = outcome.value
                _keep(directory, window, scores, info)
                results[outcome.key] = (scores, info)
                recorder.done(window, outcome.value, outcome.seconds)
            else:
                failures[outcome.key] = outcome.error or "failed"
                recorder.failed(window, failures[outcome.key], outcome.seconds)
                if policy == "fail":
                    break
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()  # what still runs after a failure is stopped
    timings["fit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    recorder.finish(plots)
    timings["windows record"] = time.perf_counter() - t0
    progress.finish(f"{len(results)} of {len(inputs.windows)} windows ({resumed} resumed, {len(failures)} failed)")
    if failures and (policy == "fail" or not results):
        index, why = next(iter(failures.items()))
        test = by_index[index].describe(cal)["test"]
        raise WindowFailed(
            f"rolling window {index} (test {test}) failed: {why}; the {len(results)} finished window(s) are kept: run "
            "the same command again to resume with the others, or set trainer.on_window_failure=skip to leave "
            "failed windows out"
        )
    scores = pd.concat([results[k][0] for k in sorted(results)])
    samples = {
        "train": int(sum(r[1].get("train_rows", 0) for r in results.values())),
        "valid": int(sum(r[1].get("valid_rows", 0) for r in results.values())),
        "test": len(scores),
    }
    info = {
        "windows": len(inputs.windows),
        "windows_skipped": len(failures),
        "windows_resumed": resumed,
        "executor": executor,
        "window_mode": trainer.get("window", "sliding"),
        "step": trainer.get("step"),
    }
    if failures:
        progress.note(f"{len(failures)} window(s) failed and were skipped: {sorted(failures)}")
    return samples, info, scores


class _WindowRecorder:
    """The windows' rows of ``windows.csv`` (spans, status, IC and Rank IC of the test slice, rows, times) and
    their child MLflow runs (spans as params and tags, IC as metrics, FAILED for a failed window), one window at a
    time as it finishes; :meth:`finish` logs the table (and ``window_ic.png``) to the study's run."""

    def __init__(self, tracked: Any, inputs: RollingInputs) -> None:
        from mlflow.tracking import MlflowClient

        self.tracked = tracked
        self.inputs = inputs
        self.client = MlflowClient(tracked.uri)
        self.rows: dict[int, dict[str, Any]] = {}

    def done(self, window: Window, result: tuple[pd.Series, dict], seconds: float | None) -> None:
        from qframe.core.evaluation import signal_analysis

        scores, info = result
        _, summary = signal_analysis(scores, self.inputs.raw_test_label.reindex(scores.index))
        row = self._row(window, "done", seconds)
        row.update(IC=summary["IC"], RankIC=summary["Rank IC"], predictions=len(scores))
        row.update({k: info.get(k) for k in ("prepare_seconds", "fit_seconds", "predict_seconds", "train_rows")})
        self._child_run(window, row, info)

    def failed(self, window: Window, error: str, seconds: float | None) -> None:
        self._child_run(window, {**self._row(window, "failed", seconds), "error": error}, None)

    def _row(self, window: Window, status: str, seconds: float | None) -> dict[str, Any]:
        row = {"window": window.index, **window.describe(self.inputs.panel.calendar), "status": status}
        self.rows[window.index] = row
        row["seconds"] = seconds
        return row

    def _child_run(self, window: Window, row: dict[str, Any], info: dict | None) -> None:
        from mlflow.entities import Metric, Param

        run = self.tracked.run
        index = window.index
        spans = {s: row[s] for s in ("train", "valid", "test")}
        tags = {
            "mlflow.parentRunId": run.info.run_id,
            "mlflow.runName": f"window-{index:03d}",
            "qframe.window": str(index),
            "qframe.kind": "window",
            **{f"qframe.window.{s}": v for s, v in spans.items()},
        }
        # where the window ran (qframe.host, qframe.pid, qframe.node) are tags; the rest of its fit info params
        tags.update({k: str(v) for k, v in (info or {}).items() if k.startswith("qframe.")})
        child = self.client.create_run(run.info.experiment_id, tags=tags)
        params = [Param(f"window.{s}", v) for s, v in spans.items()] + [Param("window.index", str(index))]
        params += [Param(f"fit.{k}", str(v)[:500]) for k, v in (info or {}).items() if not k.startswith("qframe.")]
        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(row[k]), now, 0) for k in ("IC", "RankIC") if row.get(k) is not None and np.isfinite(row[k])
        ]
        self.client.log_batch(child.info.run_id, metrics=metrics, params=params, tags=[])
        self.client.set_terminated(child.info.run_id, "FINISHED" if info is not None else "FAILED")

    def finish(self, plots: bool) -> pd.DataFrame:
        """``windows.csv`` (a row for every window: those never run as ``not run``) and, with ``plots``,
        ``window_ic.png``, logged to the study's run."""
        from qframe.core.scratch import artifact_dir

        cal = self.inputs.panel.calendar
        rows = [
            self.rows.get(w.index) or {"window": w.index, **w.describe(cal), "status": "not run", "seconds": None}
            for w in self.inputs.windows
        ]
        table = pd.DataFrame(rows)
        with artifact_dir() as out:
            table.to_csv(out / "windows.csv", index=False)
            if plots and (table["status"] == "done").any():
                _plot_window_ic(table, out / "window_ic.png")
            self.tracked.log_artifacts(out)
        return table


def _plot_window_ic(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = table[table["status"] == "done"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    x = np.arange(len(done))
    ax.bar(x - 0.2, done["IC"], width=0.4, label="IC")
    ax.bar(x + 0.2, done["RankIC"], width=0.4, label="Rank IC")
    ax.set_xticks(x, [t.split("..")[0] for t in done["test"]], rotation=45, ha="right", fontsize=7)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_title("IC of each rolling window's test slice")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
