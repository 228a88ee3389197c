"""One research run: data -> features -> model -> signal analysis -> backtest -> risk, recorded in MLflow.

:func:`run_workflow` takes a plain, fully resolved config dict (the Hydra app
resolves it), so the core knows nothing of Hydra.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from qframe.core.components import build_component
from qframe.core.context import FitCache, RunContext, RunLocation, SharedInputs
from qframe.core.controls import check_objective, control_metric_names, control_settings, run_controls
from qframe.core.errors import ConfigError, DegenerateResult
from qframe.core.evaluation import ACCUMULATION_MODES
from qframe.core.handler import dropped_summary, prepare, suspended_rule
from qframe.core.markets import FROM_MARKET, annualization_setting, applied_rules, market_summary
from qframe.core.progress import Progress
from qframe.core.recorders import make_recorders, run_recorders
from qframe.core.registry import Registry, get_registry

log = logging.getLogger("qframe")

SIGNAL_METRICS = ("IC", "ICIR", "Rank IC", "Rank ICIR")
RISK_BLOCKS = ("benchmark", "excess_return_without_cost", "excess_return_with_cost")
RISK_STATS = ("mean", "std", "annualized_return", "information_ratio", "max_drawdown")


def metric_names() -> list[str]:
    """Every metric a run records (the valid values of ``objective``)."""
    return [*SIGNAL_METRICS, *(f"{b}.{s}" for b in RISK_BLOCKS for s in RISK_STATS), *control_metric_names()]


@dataclass
class RunResult:
    """What a finished run produced."""

    metrics: dict[str, float]
    objective_name: str
    objective: float
    run_id: str
    tracking_uri: str
    experiment_id: str
    artifact_uri: str
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


def _component(cfg: dict[str, Any], registry: Registry, key: str) -> tuple[str, Any]:
    """(name, object) of the ``dataset``, ``model`` or ``strategy`` section: a registered name or a ``_target_``."""
    return build_component(registry, key, cfg.get(key), key)


def _check_settings(cfg: dict[str, Any], default_plots: bool) -> tuple[str, int | None, str, bool]:
    objective = cfg.get("objective") or "excess_return_with_cost.information_ratio"
    if objective not in metric_names():
        valid = ", ".join(metric_names())
        raise ConfigError(f"objective={objective!r} is not a recorded metric; valid options: {valid}")
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError(f"seed={seed!r}: give a non-negative integer, or null for each component's own seed")
    ev = cfg.get("evaluation") or {}
    periods = annualization_setting(ev.get("annualization", FROM_MARKET))  # None: the market's
    mode = ev.get("accumulation", "sum")
    if mode not in ACCUMULATION_MODES:
        raise ConfigError(f"evaluation.accumulation={mode!r}; valid options: {', '.join(ACCUMULATION_MODES)}")
    plots = (cfg.get("recording") or {}).get("plots", "auto")
    if not (isinstance(plots, bool) or plots == "auto"):
        raise ConfigError(f"recording.plots={plots!r}; valid options: true, false, auto")
    if plots == "auto":
        plots = default_plots
    return objective, periods, mode, plots


# ---------------------------------------------------------------------------------------------------------------------
# inputs shared by the runs of a sweep


def _inputs_key(cfg: dict[str, Any], location: RunLocation) -> str:
    from qframe.core import reuse
    from qframe.core.cache import cache_key
    from qframe.core.windows import trainer_settings

    parts = {k: cfg.get(k) for k in ("dataset", "handler", "segments")}
    if isinstance(parts["handler"], dict):  # how many threads compute the features does not change them
        parts["handler"] = {k: v for k, v in parts["handler"].items() if k != "num_threads"}
    # what decides a rolling study's windows; not how they run (slots, executor, on_window_failure)
    trainer = cfg.get("trainer") or {}
    parts["trainer"] = {k: trainer.get(k) for k in ("name", "generator")} | trainer_settings(trainer)
    ref = reuse.reference(cfg)
    if ref is not None:  # a re-evaluation's inputs: the source's predictions and the test label, no features
        parts["from_run"] = ref
    return cache_key("inputs", parts, str(location.workdir))


def _load_market(
    cfg: dict[str, Any],
    registry: Registry,
    cache_dir: Path,
    progress: Progress,
    dataset: tuple[str, Any] | None = None,
) -> Any:
    """The market of ``cfg`` (from the dataset's cache when it has one); ``dataset``: (name, loader), if made."""
    dataset_name, dataset = dataset or _component(cfg, registry, "dataset")
    progress.start("data", f"loading dataset {dataset_name!r}")
    market = dataset.load(cache_dir=cache_dir)
    T, N = market.shape
    span = f"{market.calendar[0].date()}..{market.calendar[-1].date()}"
    progress.finish(f"{market.name}: {N} instruments x {T} days, {span}")
    return market


def _check_strategy(strategy: Any, market: Any, test: tuple[pd.Timestamp, pd.Timestamp]) -> list[str]:
    """The strategy's own check of the market it will trade (optional ``check_market``): notes, or an error."""
    check = getattr(strategy, "check_market", None)
    return list(check(market, *test)) if callable(check) else []


def _load_inputs(
    cfg: dict[str, Any],
    registry: Registry,
    cache_dir: Path,
    progress: Progress | None = None,
    strategy: Any = None,
    dataset: tuple[str, Any] | None = None,
    before_compute: Callable[[], None] | None = None,
) -> tuple[Any, Any, dict[str, float]]:
    """The market and prepared segments of ``cfg`` (from the caches when possible), and the time each took.

    ``strategy`` checks the market (e.g. a topk above the tradable universe) before any feature is computed;
    ``before_compute`` is called before features are computed (not when they come from the cache).
    """
    progress = progress or Progress()
    t0 = time.perf_counter()
    market = _load_market(cfg, registry, cache_dir, progress, dataset)
    timings = {"data": time.perf_counter() - t0}

    def check(bounds: dict[str, tuple[pd.Timestamp, pd.Timestamp]]) -> None:
        if strategy is not None:
            market.notes.extend(_check_strategy(strategy, market, bounds["test"]))

    segments = cfg.get("segments") or {}
    prepared = prepare(market, registry, cfg["handler"], segments, cache_dir, progress, check, before_compute)
    timings.update(prepared.timings)
    return market, prepared, timings


def preload_inputs(cfg: dict[str, Any], location: RunLocation, registry: Registry | None = None) -> SharedInputs:
    """Load ``cfg``'s market, features and processed segments into this process, for the runs forked from it.

    Called once in a sweep's parent process (the app's prefork step); the result reaches each trial through its
    :class:`RunContext`: a trial whose ``dataset``, ``handler``, ``segments`` and ``workdir`` match starts with its
    inputs in memory, copy-on-write, instead of reading the caches and re-running the processors. Nothing here
    leaves a thread pool running (the feature threads are joined before the features return): the process forks
    afterwards. The tracking store is opened and its experiment resolved
    here too.
    """
    from qframe.core import reuse, rolling, tracking

    registry = registry or get_registry()
    ref = reuse.reference(cfg)
    if ref is not None:  # a sweep over one run's predictions (from_run): the source and test label, once
        source = reuse.open_source(ref, location)
        adopted = reuse.adopt(cfg, source)
        market = _load_market(adopted, registry, location.cache_dir, Progress())
        prepared = reuse.load_inputs(adopted, market, source)
    elif rolling.is_rolling(cfg):  # a rolling study's features and windows, once for every run forked
        market, prepared, _ = rolling.load_inputs(cfg, registry, location.cache_dir, Progress())
    else:
        market, prepared, _ = _load_inputs(cfg, registry, location.cache_dir)
    source_tags, experiment_id = tracking.preload(location)
    return SharedInputs(_inputs_key(cfg, location), market, prepared, location, source_tags, experiment_id)


def _shared_inputs(cfg: dict[str, Any], context: RunContext) -> tuple[Any, Any] | None:
    """The context's preloaded inputs when they are this config's, as containers of the run's own."""
    from qframe.core.reuse import ReusedInputs

    shared = context.shared
    if shared is None or shared.key != _inputs_key(cfg, context.location):
        return None
    market, prepared = shared.market, shared.prepared
    # a run appends notes and drops segments as it goes: it gets its own containers, sharing the arrays
    market = copy.copy(market)
    market.notes = list(market.notes)
    prepared = copy.copy(prepared)
    if not isinstance(prepared, ReusedInputs):
        prepared.segments = dict(prepared.segments)
    prepared.from_cache = True
    return market, prepared


def _check_prediction(model: Any, model_name: str, scores: pd.Series) -> None:
    """Refuse predictions that carry no ranking: none finite, or one constant for every instrument of a day."""
    from qframe.core.evaluation import cross_sectional_spread, is_constant

    if not np.isfinite(scores.to_numpy()).any():
        raise DegenerateResult(
            f"model {model_name!r} produced no finite prediction on the test segment",
            tags={"qframe.degenerate": "no finite prediction"},
        )
    spread, scale = cross_sectional_spread(scores)
    if is_constant(spread, scale):
        hint = getattr(model, "constant_hint", None)
        why = hint() if callable(hint) else "it found no structure (too much regularisation for this sample?)"
        raise DegenerateResult(
            f"model {model_name!r} predicts one constant on the test segment (daily spread {spread:.1e} against "
            f"values of {scale:.1e}), so IC and the backtest would mean nothing: {why}",
            tags={"qframe.degenerate": "constant prediction", "qframe.prediction_spread": f"{spread:.3g}"},
        )


def _fit(
    model: Any,
    train: Any,
    valid: Any,
    checkpoints: Path,
    progress: Progress,
    sample_weight: np.ndarray | None = None,
    fit_cache: FitCache | None = None,
) -> None:
    """``fit_panel`` for models that need dates and instruments (sequences, daily IC) and a work area, else
    ``fit``; the model hears of its progress when its method takes ``progress``, gets ``sample_weight`` (one
    weight per train row) when there is one (:func:`qframe.core.reweight.check_model` made sure it takes it), and
    ``fit_cache`` (where to keep what later fits on the same data can reuse) when it takes one."""
    method = getattr(model, "fit_panel", None)
    args = (train, valid, checkpoints) if method is not None else (train.X, train.y, valid.X, valid.y)
    method = method or model.fit
    try:
        accepted = inspect.signature(method).parameters
    except (TypeError, ValueError):
        accepted = {}
    kwargs: dict[str, Any] = {"progress": progress} if "progress" in accepted else {}
    if sample_weight is not None:
        kwargs["sample_weight"] = sample_weight
    if fit_cache is not None and "fit_cache" in accepted:
        kwargs["fit_cache"] = fit_cache
    method(*args, **kwargs)


def _predict(model: Any, test: Any, lookback: Callable[[int], Any] | None) -> np.ndarray:
    """The model's scores of the test rows; a model with a look-back window (``window`` > 1 days) gets the days
    before the test rows from the unfiltered features (``lookback(k)``: :attr:`PreparedData.lookback`), not from
    the learn segments DropnaLabel has thinned: a prediction window never loses a day that has features."""
    if not hasattr(model, "predict_panel"):
        return model.predict(test.X)
    window = getattr(model, "window", None)
    if isinstance(window, int) and window > 1 and lookback is not None:
        return model.predict_panel(test, history=[lookback(window - 1)])
    return model.predict_panel(test)


def _fit_predict(
    model: Any,
    model_name: str,
    prepared: Any,
    location: RunLocation,
    run: Any,
    progress: Progress,
    timings: dict,
    reweighter: tuple[str, Any] | None = None,
    fit_cache: FitCache | None = None,
) -> tuple[dict[str, int], dict[str, Any], pd.Series]:
    """Fit on train (early stopping on valid), its rows weighted by ``reweighter`` ((name, reweighter); None:
    unweighted), and predict the test segment: (samples, fit info, scores). A model's ``fit_timings`` (seconds by
    part of its fit, e.g. LightGBM's binning) join ``timings`` as ``fit <part>``."""
    from qframe.core import reweight

    train, valid, test = (prepared.segments[s] for s in ("train", "valid", "test"))
    samples = {s: len(p) for s, p in prepared.segments.items()}

    t0 = time.perf_counter()
    progress.start("fit", f"{model_name} on {len(train):,} rows")
    weights = reweight.sample_weights(reweighter[1], reweighter[0], train) if reweighter else None
    _fit(model, train, valid, location.workdir / "checkpoints" / run.info.run_id, progress, weights, fit_cache)
    timings["fit"] = time.perf_counter() - t0
    timings.update({f"fit {part}": float(s) for part, s in (getattr(model, "fit_timings", None) or {}).items()})
    info = {**(model.info() or {}), **reweight.summary(weights, train)}
    progress.finish(f"{model_name}" + "".join(f", {k.replace('_', ' ')} {v}" for k, v in list(info.items())[:2]))
    # the learn segments are copies (DropnaLabel) no longer needed: free them before predicting and recording
    del train, valid
    prepared.segments.pop("train")
    prepared.segments.pop("valid")

    t0 = time.perf_counter()
    predictions = _predict(model, test, getattr(prepared, "lookback", None))
    scores = test.series(predictions, "score")
    timings["predict"] = time.perf_counter() - t0
    return samples, info, scores


def _source_of(cfg: dict[str, Any], location: RunLocation, preloaded: tuple[Any, Any] | None) -> Any:
    """The recorded run whose predictions ``cfg`` re-evaluates (``from_run``): preloaded by a sweep, or opened."""
    from qframe.core import reuse

    ref = reuse.reference(cfg)
    if ref is None:
        return None
    if preloaded is not None and isinstance(preloaded[1], reuse.ReusedInputs):
        return preloaded[1].source
    return reuse.open_source(ref, location)


def run_workflow(
    cfg: dict[str, Any],
    context: RunContext | None = None,
    registry: Registry | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run the whole workflow for ``cfg``; the MLflow run is FAILED if anything raises.

    ``context`` says where the run records and whether it is a sweep's trial (default: a single run located by
    ``cfg``'s ``workdir``, ``tracking_uri``, ``experiment_name`` and ``artifact_root``). Every component is built,
    and so checked, before any data is read. ``progress`` hears of each stage. With ``from_run`` set, the predictions
    of that recorded run are evaluated instead of fitting a model (:mod:`qframe.core.reuse`).
    """
    from qframe.core import reuse, reweight, rolling, tracking
    from qframe.core.data_report import data_report
    from qframe.core.evaluation import risk_report, signal_analysis

    context = context or RunContext.for_config(cfg)
    registry = registry or get_registry()
    progress = progress or Progress()
    objective_name, periods, mode, plots = _check_settings(cfg, context.default_plots)
    controls = control_settings(cfg.get("evaluation"), context.trial.in_sweep)
    check_objective(objective_name, controls, context.trial.in_sweep)
    # trainer=rolling: windows refitted in isolated jobs, their test slices judged here as one (core/rolling.py)
    walk_forward = rolling.is_rolling(cfg)
    if walk_forward:
        rolling.check_settings(cfg)
    location = context.location
    params = tracking.flatten(cfg)
    shared = context.shared
    preloaded = _shared_inputs(cfg, context)

    def tracked_run() -> tracking.DeferredRun:
        experiment_id = shared.experiment_of(location) if shared is not None else None
        return tracking.DeferredRun(location, cfg.get("run_name"), params, context.trial, experiment_id)

    try:
        source = _source_of(cfg, location, preloaded)
        if source is not None:  # the model and handler that made the predictions, as recorded
            cfg = reuse.adopt(cfg, source)
            params = tracking.flatten(cfg)
        # built before any work, so a typo, a wrong type or an unknown parameter costs nothing
        dataset_name, dataset = _component(cfg, registry, "dataset")
        suspended_rule(cfg.get("handler") or {})
        if source is None:
            model_name, model = _component(cfg, registry, "model")
            reweighter = reweight.build_reweighter(cfg, registry)
            reweight.check_model(model, model_name, reweighter[0])
        else:
            model_name, model, reweighter = reuse.model_name(cfg), None, None
        strategy_name, strategy = _component(cfg, registry, "strategy")
        recorders = make_recorders(registry, cfg.get("recorders"))  # called with the result
        rules = applied_rules(cfg, (dataset_name, dataset), (strategy_name, strategy), periods)
        periods = rules["annualization"]
        params.update(
            {f"market_rules.{k}": str(rules[k]) for k in ("name", "limit_threshold", "trade_unit", "annualization")}
        )
    except ConfigError:
        if context.trial.parent_run_id is not None:
            # a sweep's trial keeps a (FAILED) run with its params, so its parent run lists every trial
            with tracked_run():
                raise
        raise
    location.workdir.mkdir(parents=True, exist_ok=True)

    timings: dict[str, float] = {}
    with tracked_run() as tracked:
        if preloaded is not None:
            market, prepared = preloaded
            market.notes.extend(_check_strategy(strategy, market, prepared.bounds["test"]))
        elif source is not None:
            t0 = time.perf_counter()
            market = _load_market(cfg, registry, location.cache_dir, progress, (dataset_name, dataset))
            timings["data"] = time.perf_counter() - t0
            progress.start("predictions", f"of run {source.label}, checked against the test segment")
            prepared = reuse.load_inputs(cfg, market, source)
            market.notes.extend(_check_strategy(strategy, market, prepared.bounds["test"]))
            progress.finish(f"{len(source.scores):,} predictions of {model_name} (run {source.label})")
        elif walk_forward:
            market, prepared, loaded = rolling.load_inputs(
                cfg, registry, location.cache_dir, progress, strategy, (dataset_name, dataset)
            )
            timings.update(loaded)
        else:
            # the tracking set-up thread settles first: it would take the GIL from the feature threads
            market, prepared, loaded = _load_inputs(
                cfg, registry, location.cache_dir, progress, strategy, (dataset_name, dataset), tracked.settle
            )
            timings.update(loaded)

        tags = {
            **tracking.run_tags(market.fingerprint(), shared.source_tags if shared else None),
            "qframe.market_rules": market_summary(rules),
        }
        if source is not None:
            tags[reuse.SOURCE_TAG] = source.run_id
        run = tracked.start(tags={**tags, **context.tags})
        experiment_id = run.info.experiment_id
        timings["tracking setup"] = tracked.waited  # what was left of the store set-up after data and features

        if source is not None:  # no fit, no prediction: the source run's, checked against this test segment
            samples, info, scores = prepared.samples, {}, source.scores
        elif walk_forward:  # each window has its own model, in its own job: the run keeps their predictions
            samples, info, scores = rolling.fit_predict(
                cfg, model_name, prepared, location, tracked, progress, timings, plots
            )
            model = None
        else:
            # what a fit derives from the data alone is kept for the next fits on the same data: the runs of a
            # multirun (a sweep's trials, a grid's jobs) share it, and so do single runs with the cache on
            multirun = shared is not None or context.trial.in_sweep
            keep = multirun or (cfg.get("handler") or {}).get("cache", True)
            fit_cache = FitCache(location.cache_dir, _inputs_key(cfg, location)) if keep else None
            samples, info, scores = _fit_predict(
                model, model_name, prepared, location, run, progress, timings, reweighter, fit_cache
            )
        try:
            _check_prediction(model, model_name, scores)
        except DegenerateResult:
            # what there is to look at stays with the FAILED run: the config, the predictions and the model
            data = data_report(market, prepared.dropped_features, market_rules=rules)
            _log_artifacts(tracked, cfg, model, scores, None, None, mode, page=None, data=data)
            raise

        t0 = time.perf_counter()
        progress.start("evaluation", f"IC on {len(scores):,} predictions, backtest of {strategy_name}")
        daily_ic, ic_summary = signal_analysis(scores, prepared.raw_test_label)
        timings["signal analysis"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        test_lo, test_hi = prepared.bounds["test"]
        report = strategy.backtest(scores, market, start=test_lo, end=test_hi)
        positions = getattr(strategy, "last_positions", None)  # read now: the controls backtest again
        if isinstance(positions, pd.DataFrame) and len(positions) == len(report):
            report["holdings"] = (positions.to_numpy() > 0).sum(axis=1)
        no_benchmark = bool(report["bench"].isna().all())
        if no_benchmark:
            report["bench"] = 0.0
            market.notes.append("no benchmark in the data: excess returns are measured against 0")
        risk = risk_report(report, N=periods, mode=mode)
        if no_benchmark:  # a zero series has no risk figures: n/a, not 0 / 0
            risk["benchmark"] = dict.fromkeys(RISK_STATS, float("nan"))
        timings["backtest + risk"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        checks = run_controls(
            controls, strategy, strategy_name, market, scores, report, risk, periods, mode, (test_lo, test_hi)
        )
        market.notes.extend(checks.notes)
        if controls.any:
            timings["controls"] = time.perf_counter() - t0
        progress.finish(f"{len(daily_ic)} test days")

        metrics = {k: float(ic_summary[k]) for k in SIGNAL_METRICS}
        for block in RISK_BLOCKS:
            for stat in RISK_STATS:
                metrics[f"{block}.{stat}"] = float(risk[block][stat])
        metrics.update(checks.metrics)

        t0 = time.perf_counter()
        progress.start("recording", f"MLflow run {run.info.run_id[:8]}")
        data = data_report(market, prepared.dropped_features, market_rules=rules)
        page = None
        if plots:  # the run report (report.html and its figures) goes with the plots
            from qframe.core.tearsheet import live_inputs

            page = live_inputs(run, cfg, scores, daily_ic, report, market, metrics, checks, mode, periods, data)
        _log_artifacts(tracked, cfg, model, scores, report, daily_ic, mode, page, checks, data)
        timings["recording"] = time.perf_counter() - t0
        # metrics, the model's fit info and the stage times in one write
        tracked.log(
            metrics={k: v for k, v in metrics.items() if math.isfinite(v)}
            | {f"time.{k.replace(' + ', '_').replace(' ', '_')}": v for k, v in timings.items()},
            params={f"fit.{k}": v for k, v in info.items()},
        )
        progress.finish("plots, report.html" if plots else "")

    objective = metrics.get(objective_name, float("nan"))
    result = RunResult(
        metrics=metrics,
        objective_name=objective_name,
        objective=objective if math.isfinite(objective) else float("nan"),
        run_id=run.info.run_id,
        tracking_uri=location.tracking_uri,
        experiment_id=experiment_id,
        artifact_uri=run.info.artifact_uri,
        timings=timings,
        notes=list(dict.fromkeys(market.notes)) + dropped_summary(prepared.dropped_features),
        settings={
            "annualization": periods,
            "market": rules,
            "accumulation": mode,
            "segments": {s: (lo.date().isoformat(), hi.date().isoformat()) for s, (lo, hi) in prepared.bounds.items()},
            "features_from_cache": prepared.from_cache,
            "samples": samples,
            "model_info": info,
            "stages": progress.summary(),
            "controls": checks.lines,
            "data_report": data,
            "from_run": {"run_id": source.run_id, "name": source.name, "model": model_name} if source else None,
        },
    )
    run_recorders(recorders, result, cfg)
    return result


def _log_artifacts(tracked, cfg, model, scores, report, daily_ic, mode, page=None, checks=None, data=None) -> None:
    """The run's files: config, predictions, backtest report, daily IC, the model, the controls' daily excess
    returns (``controls.parquet``) if they ran, the run report (``report.html``, the two plots and ``figures/``) from
    ``page`` (its :class:`~qframe.core.tearsheet.ReportInputs`; None: none), and ``data`` (the data report) as
    data_report.json."""
    from qframe.core.scratch import artifact_dir

    with artifact_dir() as out:
        # libyaml's emitter when PyYAML has it (~5x the pure-Python one)
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        (out / "config.yaml").write_text(yaml.dump(cfg, Dumper=dumper, sort_keys=False))
        if data is not None:
            (out / "data_report.json").write_text(json.dumps(data, indent=1, default=str))
        scores.to_frame().reset_index().to_parquet(out / "pred.parquet", index=False)
        if report is not None:
            report.reset_index().to_parquet(out / "backtest_report.parquet", index=False)
        if daily_ic is not None:
            daily_ic.reset_index().to_parquet(out / "ic.parquet", index=False)
        if checks is not None and checks.daily is not None:
            checks.daily.reset_index().to_parquet(out / "controls.parquet", index=False)
        if model is not None:  # a re-evaluation (from_run) has the source run's predictions, not its model
            model_dir = out / "model"
            model_dir.mkdir()
            model.save(model_dir)
        if page is not None:
            from qframe.core.tearsheet import write_report

            write_report(page, out)
        tracked.log_artifacts(out)
