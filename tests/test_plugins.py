"""Plugin hooks in-process: a throwaway plugin per hook (pm.register / pm.unregister), its item used from config.

Installed packages (the example plugin, a broken one) are tested in ``test_plugins_installed.py``.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from qframe.config_groups import merged_config_groups
from qframe.core import hookspecs
from qframe.core.discovery import get_plugin_manager, get_plugins
from qframe.core.errors import ConfigError
from qframe.core.hookspecs import hookimpl
from qframe.core.registry import build_registry, get_registry, reset_registry
from qframe.plugins_cli import list_plugins

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["dataset.n_instruments=40", "dataset.n_days=320", "strategy.topk=5", "strategy.n_drop=1", "model=linear"]


@contextmanager
def plugged(plugin: object, name: str):
    """Register ``plugin`` on the process-wide plugin manager for the block; the registry is rebuilt around it."""
    pm = get_plugin_manager()
    pm.register(plugin, name=name)
    reset_registry()
    try:
        yield get_registry()
    finally:
        pm.unregister(name=name)
        reset_registry()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One workdir for the module's runs, so the feature cache is shared."""
    return tmp_path_factory.mktemp("plugins-workdir")


def compose(workdir: Path, *overrides: str) -> dict:
    """The resolved config the ``qframe`` command would build (search-path plugin included)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from qframe.app import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = hydra_compose("config", overrides=[*SMALL, f"workdir={workdir}", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


def run(cfg: dict):
    from qframe.core.workflow import run_workflow

    return run_workflow(cfg)


# --------------------------------------------------------------------------------------------------------------------
# one test per hook: test_hook_<hook name>


def test_hook_register_datasets(workdir):
    from qframe.plugins.datasets.synthetic import SyntheticDataset

    made = []

    def tiny_market(**params):
        made.append(params)
        return SyntheticDataset(n_instruments=30, n_days=300, seed=7, **params)

    class Plugin:
        @hookimpl
        def register_datasets(self, register):
            register("tiny_market", tiny_market, "30 x 300 synthetic market")

    with plugged(Plugin(), "throwaway-datasets") as reg:
        assert reg.get("dataset", "tiny_market").plugin == "throwaway-datasets"
        cfg = compose(workdir)
        cfg["dataset"] = {"name": "tiny_market", "signal_ic": 0.2}
        result = run(cfg)
    assert made == [{"signal_ic": 0.2}]
    assert result.settings["samples"]["train"] > 0 and np.isfinite(result.metrics["IC"])


class Momentum:
    """A real two-column feature set: 5- and 20-day close momentum."""

    def __init__(self, windows: tuple[int, ...] = (5, 20)) -> None:
        self.windows = list(windows)

    def config(self) -> dict:
        return {"windows": self.windows}

    def compute(self, market):
        from qframe.core.features import FeatureResult

        close = market.fields["close"]
        cols = []
        for w in self.windows:
            past = np.full_like(close, np.nan)
            past[w:] = close[:-w]
            cols.append((close / past - 1).astype(np.float32))
        names = [f"MOM{w}" for w in self.windows]
        return FeatureResult(names, np.stack(cols, axis=2), {}, market.calendar, market.instruments)


def test_hook_register_feature_sets(workdir):
    class Plugin:
        @hookimpl
        def register_feature_sets(self, register):
            register("momentum", Momentum, "close momentum over a few windows")

    with plugged(Plugin(), "throwaway-features"):
        cfg = compose(workdir)
        cfg["handler"]["features"] = {"name": "momentum", "windows": [3, 10, 30]}
        result = run(cfg)
    assert result.settings["model_info"]["n_coef"] == 3  # the ridge saw exactly the plugin's three features


def test_hook_register_processors(workdir):
    from qframe.plugins.processors.processors import Processor

    calls = []

    class Clip(Processor):
        def __init__(self, bound: float = 3.0, fields: str = "feature") -> None:
            super().__init__(fields)
            self.bound = bound

        def _apply(self, values, panel):
            calls.append(len(values))
            return np.clip(values, -self.bound, self.bound)

    class Plugin:
        @hookimpl
        def register_processors(self, register):
            register("clip", Clip, "clip features to +-bound")

    with plugged(Plugin(), "throwaway-processors"):
        cfg = compose(workdir, "handler.processors=[{name:clip,bound:2.5}]")
        result = run(cfg)
    assert len(calls) == 3  # fitted on train, applied to train, valid and test
    assert result.run_id


def test_hook_register_models(workdir, tmp_path):
    """The model is chosen with ``model=<option>`` from the plugin's own config group (search-path plugin)."""

    class MeanFeature:
        def __init__(self, sign: float = 1.0) -> None:
            self.sign = sign

        def fit(self, X, y, X_valid, y_valid):
            self.fitted = True

        def predict(self, X):
            return self.sign * np.nan_to_num(np.nanmean(X, axis=1))

        def save(self, directory):
            path = Path(directory) / "mean_feature.json"
            path.write_text(f'{{"sign": {self.sign}}}')
            return [path]

        def info(self):
            return {"sign": self.sign}

    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "mean_feature.yaml").write_text("name: mean_feature\nsign: -1.0\n")

    class Plugin:
        qframe_conf_dir = str(tmp_path / "conf")

        @hookimpl
        def register_models(self, register):
            register("mean_feature", MeanFeature, "score = mean of the features")

    with plugged(Plugin(), "throwaway-models"):
        assert "mean_feature" in merged_config_groups(ROOT / "conf")["model"]
        cfg = compose(workdir, "model=mean_feature")
        assert cfg["model"] == {"name": "mean_feature", "sign": -1.0}
        result = run(cfg)
    assert result.settings["model_info"] == {"sign": -1.0}


def test_hook_register_task_generators(workdir):
    """A plugin's task generator, chosen with ``trainer.generator=<name>``, makes a rolling study's windows: the
    test span in two halves, each fitted in its own job on the 190 days before it (the recorded child runs)."""
    from mlflow.tracking import MlflowClient

    from qframe.core.windows import Window

    class Halves:
        @hookimpl
        def register_task_generators(self, register):
            def halves(calendar, oos, horizon, /, **settings):
                lo, hi = oos
                windows = []
                for k, (t0, t1) in enumerate([(lo, (lo + hi) // 2), ((lo + hi) // 2, hi)]):
                    end = t0 - horizon
                    windows.append(Window(k, (end - 190, end - 40), (end - 40, end), (t0, t1)))
                return windows

            register("halves", halves, "the test span in two windows")

    overrides = ["trainer=rolling", "trainer.generator=halves", "model=linear", "evaluation.controls.enabled=false"]
    with plugged(Halves(), "halves"):
        result = run(compose(workdir, *overrides, "recording.plots=false"))
        with pytest.raises(ConfigError, match="unknown task_generator 'thirds'"):
            run(compose(workdir, *overrides[:1], "trainer.generator=thirds"))
    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    tests = sorted(r.data.params["window.test"] for r in runs)
    assert len(tests) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert tests[0].split("..")[1] < tests[1].split("..")[0]


def test_hook_register_reweighters(workdir, tmp_path):
    """A plugin's reweighter, chosen with ``reweighter=<option>`` from its own config group: it weighs the train
    rows, the model's fit gets them scaled to mean 1, and the run records the reweighter and its settings."""
    from mlflow.tracking import MlflowClient

    from qframe.plugins.models.linear import LinearModel

    seen: dict[str, np.ndarray] = {}

    class Recent:
        def __init__(self, days: int = 10) -> None:
            self.days = int(days)

        def reweight(self, train):
            seen["days"] = train.day.copy()
            return np.where(train.day > train.day.max() - self.days, 3.0, 1.0)

    class WatchedRidge(LinearModel):
        def fit(self, X, y, X_valid, y_valid, sample_weight=None):
            seen["weights"] = sample_weight
            super().fit(X, y, X_valid, y_valid, sample_weight=sample_weight)

    conf = tmp_path / "conf" / "reweighter"
    conf.mkdir(parents=True)
    (conf / "recent.yaml").write_text("name: recent\ndays: 20\n")

    class Plugin:
        qframe_conf_dir = str(tmp_path / "conf")

        @hookimpl
        def register_reweighters(self, register):
            register("recent", Recent, "the last days count 3x")

        @hookimpl
        def register_models(self, register):
            register("watched_ridge", WatchedRidge, "ridge that keeps its weights")

    with plugged(Plugin(), "throwaway-reweighters"):
        assert "recent" in merged_config_groups(ROOT / "conf")["reweighter"]
        cfg = compose(workdir, "reweighter=recent", "model=linear")
        assert cfg["reweighter"] == {"name": "recent", "days": 20}
        cfg["model"] = {"name": "watched_ridge"}
        result = run(cfg)
    days, weights = seen["days"], seen["weights"]
    recent = days > days.max() - 20
    assert len(weights) == result.settings["samples"]["train"] and weights.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(weights, np.where(recent, 3.0, 1.0) / np.where(recent, 3.0, 1.0).mean())
    params = MlflowClient(tracking_uri=result.tracking_uri).get_run(result.run_id).data.params
    assert params["reweighter.name"] == "recent" and params["reweighter.days"] == "20"
    assert 0 < float(params["fit.weights_effective_rows"]) < len(weights)


def test_hook_register_strategies(workdir):
    from qframe.plugins.strategies.topk_dropout import TopkDropoutStrategy

    seen = []

    def top3(**params):
        seen.append(params)
        return TopkDropoutStrategy(topk=3, n_drop=1, **params)

    class Plugin:
        @hookimpl
        def register_strategies(self, register):
            register("top3", top3, "TopK-dropout holding 3 names")

    with plugged(Plugin(), "throwaway-strategies"):
        cfg = compose(workdir)
        cfg["strategy"] = {"name": "top3", "open_cost": 0.001}
        result = run(cfg)
    assert seen == [{"open_cost": 0.001}]
    assert np.isfinite(result.metrics["excess_return_with_cost.mean"])


def test_hook_register_recorders(workdir):
    received = []

    class Collect:
        def __init__(self, tag: str = "") -> None:
            self.tag = tag

        def __call__(self, result, cfg):
            received.append((self.tag, result.run_id, cfg["model"]["name"]))

    class Plugin:
        @hookimpl
        def register_recorders(self, register):
            register("collect", Collect, "keep results in a list")

    with plugged(Plugin(), "throwaway-recorders"):
        cfg = compose(workdir, "recorders=[collect,{name:collect,tag:second}]")
        result = run(cfg)
    assert received == [("", result.run_id, "linear"), ("second", result.run_id, "linear")]


def test_hook_register_search_spaces(workdir):
    """A registered space is a dict of Hydra sweep expressions whose keys exist in the composed config."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    space = {"model.alpha": "tag(log, interval(0.001, 10))", "strategy.topk": "choice(3, 5, 8)"}

    class Plugin:
        @hookimpl
        def register_search_spaces(self, register):
            register("ridge_and_topk", space, "ridge penalty and portfolio size")
            register("lazy", lambda: {"model.alpha": "interval(0.1, 1)"}, "a space built on demand")

    with plugged(Plugin(), "throwaway-spaces") as reg:
        assert reg.get("search_space", "ridge_and_topk").obj == space
        assert callable(reg.get("search_space", "lazy").obj)
        cfg = compose(workdir)
        overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in space.items()])
        for override in overrides:
            assert override.is_sweep_override()
            section, key = override.key_or_group.split(".")
            assert key in cfg[section]
        with pytest.raises(ConfigError, match="'ridge_and_topk' is a search_space, not a model"):
            reg.get("model", "ridge_and_topk")


def test_hook_register_tuner_backends():
    """The sweep's own path (resolve_backend, then the optimizer's ask/tell) drives a plugin's backend: called
    with keyword arguments only, those it takes. A real sweep with a backend: test_plugins_documented.py."""
    from hyperopt import rand

    from qframe.tuning.optimizer import Optimizer, resolve_backend
    from qframe.tuning.space import parse_space

    made = []

    def counted_random(**settings):  # the documented form: factory(**params)
        made.append(settings)
        return rand.suggest

    def fixed_random():  # takes nothing: qframe passes nothing
        made.append("fixed")
        return rand.suggest

    class Plugin:
        @hookimpl
        def register_tuner_backends(self, register):
            register("counted_random", counted_random, "hyperopt random search, counted")
            register("fixed_random", fixed_random, "hyperopt random search, no settings")

    space = parse_space({"model.alpha": "interval(0.1, 1)", "strategy.topk": "choice(3, 5)"})
    with plugged(Plugin(), "throwaway-tuners") as reg:
        for name in ("counted_random", "fixed_random"):
            opt = Optimizer(space, resolve_backend(name, 7), seed=0)
            values, _ = opt.ask(0)
            opt.tell(0, 0.5)
            assert 0.1 <= values["model.alpha"] <= 1 and values["strategy.topk"] in (3, 5)
        assert made == [{"n_startup_trials": 7}, "fixed"]
        assert reg.get("tuner_backend", "counted_random").plugin == "throwaway-tuners"
    assert "counted_random" not in get_registry().names("tuner_backend")


# --------------------------------------------------------------------------------------------------------------------
# bad input


def test_wrong_kind_in_config_names_the_kind_and_plugin(workdir):
    class Plugin:
        @hookimpl
        def register_recorders(self, register):
            register("audit_log", lambda **p: lambda result, cfg: None, "noop")

    with plugged(Plugin(), "throwaway-audit"):
        cfg = compose(workdir, "model.name=audit_log")
        with pytest.raises(ConfigError, match="'audit_log' is a recorder, not a model.*throwaway-audit"):
            run(cfg)
        cfg = compose(workdir, "recorders=[linear]")
        with pytest.raises(ConfigError, match="'linear' is a model, not a recorder"):
            run(cfg)
        cfg = compose(workdir, "recorders=[{alpha:1}]")
        with pytest.raises(ConfigError, match=r"recorders\[0\] must be a recorder name.*audit_log"):
            run(cfg)


class _NoPredict:
    def fit(self, X, y, X_valid, y_valid): ...

    def save(self, directory):
        return []

    def info(self):
        return {}


class _PredictWithoutX(_NoPredict):
    def predict(self):
        return []


class _TransformOnly:
    def transform(self, panel):
        return panel


class _StrategyWithoutDates:
    def backtest(self, scores):
        return None


class _LoadIsAPath:
    def __init__(self):
        self.load = "/data/market.parquet"


CONTRACT_SUFFIX = "; see qframe.core.contracts.{} and docs/plugins.md"


@pytest.mark.parametrize(
    ("kind", "obj", "overrides", "problem"),  # overrides: command-line ones, or config sections replaced
    [
        # a class: checked when the registry is built, reported when a run uses it
        ("model", _NoPredict, ["model.name=broken"], "Model contract: no method predict (or predict_panel)"),
        # a factory: its product is checked when the run makes it
        (
            "model",
            lambda **params: _PredictWithoutX(),
            ["model.name=broken"],
            "Model contract: qframe calls predict(X), which its signature () does not accept",
        ),
        (
            "processor",
            _TransformOnly,
            ["handler.processors=[broken]"],
            "Processor contract: no method fit (needed unless stateful = False)",
        ),
        (
            "strategy",
            _StrategyWithoutDates,
            [{"strategy": {"name": "broken"}}],
            "Strategy contract: qframe calls backtest(scores, market, start=..., end=...), which its signature "
            "(scores) does not accept",
        ),
        (
            "recorder",
            lambda **params: "runs.csv",
            ["recorders=[broken]"],
            "Recorder contract: not callable as recorder(result, cfg)",
        ),
        (
            "dataset",
            lambda **params: _LoadIsAPath(),
            [{"dataset": {"name": "broken"}}],
            "Dataset contract: load is a str, not a method",
        ),
    ],
    ids=["class-without-method", "factory-product-signature", "processor-fit", "strategy", "recorder", "dataset"],
)
def test_an_item_breaking_its_contract_fails_the_run_naming_plugin_item_and_what_is_missing(
    workdir, kind, obj, overrides, problem
):
    class Acme:
        pass

    hook = hookspecs.KINDS[kind]
    setattr(Acme, hook, hookimpl(lambda self, register: register("broken", obj, "breaks its contract")))
    with plugged(Acme(), "acme") as reg:
        cfg = compose(workdir, *(o for o in overrides if isinstance(o, str)))
        for replaced in (o for o in overrides if isinstance(o, dict)):
            cfg.update(replaced)
        with pytest.raises(ConfigError) as err:
            run(cfg)
        contract = problem.split(" contract")[0]
        assert str(err.value) == (
            f"plugin 'acme' {kind} 'broken' does not follow the {problem}{CONTRACT_SUFFIX.format(contract)}"
        )
        listed = {i["name"]: i for i in {p.name: p for p in list_plugins(registry=reg)}["acme"].items}
        # a class is listed with its problem; a factory's product is known only when a run makes it
        assert (listed["broken"]["error"] is not None) == isinstance(obj, type)


def test_a_search_space_breaking_its_contract_fails_the_sweep_naming_it():
    from qframe.tuning.sweep_config import named_spaces

    class Spaces:
        @hookimpl
        def register_search_spaces(self, register):
            register("bounds", {"model.alpha": [0.1, 10]}, "bounds instead of an expression")
            register("lazy_list", lambda: ["model.alpha=interval(0.1, 10)"], "a list of overrides")

    with plugged(Spaces(), "acme-spaces"):
        with pytest.raises(ConfigError) as err:
            named_spaces(["bounds"])
        assert str(err.value) == (
            "hydra.sweeper.spaces: plugin 'acme-spaces' search_space 'bounds' does not follow the SearchSpace "
            "contract: entry 'model.alpha': [0.1, 10] is not a sweep expression string (e.g. 'interval(0.1, 1)')"
            + CONTRACT_SUFFIX.format("SearchSpace")
        )
        with pytest.raises(ConfigError, match="'lazy_list' does not follow the SearchSpace contract: it is a list"):
            named_spaces(["lazy_list"])


def test_a_tuner_backend_breaking_its_contract_fails_the_sweep_naming_it():
    from qframe.tuning.optimizer import resolve_backend

    class Backends:
        @hookimpl
        def register_tuner_backends(self, register):
            register("settings_only", lambda n_startup_trials=None: {"n": n_startup_trials}, "returns its settings")

    with plugged(Backends(), "acme-backends"):
        with pytest.raises(ConfigError) as err:
            resolve_backend("settings_only", 5)
    assert str(err.value) == (
        "plugin 'acme-backends' tuner_backend 'settings_only' does not follow the TunerBackend contract: not callable "
        "as algorithm(new_ids, domain, trials, seed)" + CONTRACT_SUFFIX.format("TunerBackend")
    )


def test_processors_are_fitted_only_when_stateful(workdir):
    """The Processor contract: ``fit`` then ``transform``; ``stateful = False`` skips ``fit`` (and may omit it)."""
    fitted = []

    class Demean:  # fit and transform only, as docs/plugins.md writes one: stateful by default
        def fit(self, panel):
            fitted.append(len(panel))
            self.mean_ = np.nanmean(panel.X, axis=0)

        def transform(self, panel):
            from qframe.core.panel import Panel

            X = (panel.X - self.mean_).astype(np.float32)
            return Panel(X, panel.y, panel.day, panel.inst, panel.names, panel.calendar, panel.instruments)

    class Negate:
        stateful = False

        def transform(self, panel):
            from qframe.core.panel import Panel

            return Panel(-panel.X, panel.y, panel.day, panel.inst, panel.names, panel.calendar, panel.instruments)

    class Plugin:
        @hookimpl
        def register_processors(self, register):
            register("demean", Demean, "subtract the train means")
            register("negate", Negate, "flip every feature")

    with plugged(Plugin(), "throwaway-stateful"):
        result = run(compose(workdir, "handler.processors=[demean,negate]"))
    assert len(fitted) == 1 and result.run_id  # once, on the train segment; Negate has no fit to call


def test_item_without_name_or_object_names_the_plugin():
    class NoName:
        @hookimpl
        def register_models(self, register):
            register(None, object, "anonymous")

    class NoObject:
        @hookimpl
        def register_strategies(self, register):
            register("ghost")

    pm = get_plugin_manager()
    for plugin, name, pattern in (
        (NoName(), "nameless-plugin", "plugin 'nameless-plugin' registered a model without a name"),
        (NoObject(), "objectless-plugin", "plugin 'objectless-plugin' registered strategy 'ghost' without an object"),
    ):
        pm.register(plugin, name=name)
        try:
            with pytest.raises(ConfigError, match=pattern):
                build_registry(get_plugins())
        finally:
            pm.unregister(name=name)


def test_duplicate_name_across_plugins_is_an_error_naming_both():
    class Shadow:
        @hookimpl
        def register_datasets(self, register):
            register("synthetic", object, "shadows the built-in")

    with pytest.raises(ConfigError, match="dataset 'synthetic' is registered twice.*datasets.*'shadow-plugin'"):
        with plugged(Shadow(), "shadow-plugin"):
            pass


def test_plugin_raising_while_registering_costs_one_warning(capsys):
    class Faulty:
        @hookimpl
        def register_models(self, register):
            register("half_done", object, "registered before the crash")
            raise RuntimeError("boom in register_models")

    with plugged(Faulty(), "faulty-plugin") as reg:
        assert "half_done" not in reg.names("model")  # all or nothing per plugin
        assert {"lightgbm", "linear"} <= set(reg.names("model"))
        infos = {i.name: i for i in list_plugins(registry=reg)}
        assert "boom in register_models" in infos["faulty-plugin"].error
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(r"qframe: warning: plugin 'faulty-plugin' skipped: .*boom", err[0])
    get_plugins().failures[:] = [f for f in get_plugins().failures if f.plugin != "faulty-plugin"]


def test_misspelt_hook_is_reported_once(capsys):
    class Typo:
        @hookimpl
        def register_model(self, register):  # singular: not a qframe hook
            register("never", object, "never registered")

    with plugged(Typo(), "typo-plugin") as reg:
        build_registry(get_plugins())
        assert "never" not in reg.names("model")
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "qframe: warning: plugin 'typo-plugin' implements unknown hook(s) register_model, which qframe never calls; "
        "valid hooks: " + ", ".join(hookspecs.hookspec_names())
    ]


def test_plugin_config_option_clashing_with_builtin_is_an_error(tmp_path, capsys):
    from qframe import cli

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "linear.yaml").write_text("name: linear\nalpha: 5\n")

    class Clash:
        qframe_conf_dir = str(tmp_path)

        @hookimpl
        def register_models(self, register):
            register("clash_model", object, "irrelevant")

    with plugged(Clash(), "clashing-plugin"):
        with pytest.raises(ConfigError, match="plugin 'clashing-plugin' ships config model/linear.yaml.*built-in"):
            merged_config_groups(ROOT / "conf")
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["model=linear"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qframe: error: plugin 'clashing-plugin' ships config model/linear")


# --------------------------------------------------------------------------------------------------------------------
# every hook is tested and documented


def test_every_hookspec_is_tested_and_documented():
    names = hookspecs.hookspec_names()
    assert len(names) >= 8
    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_plugins*.py"))
    docs = (ROOT / "docs" / "plugins.md").read_text()
    untested = [n for n in names if f"def test_hook_{n}(" not in tests]
    undocumented = [n for n in names if f"### `{n}(register)`" not in docs]
    assert not untested, f"hooks without a test_hook_<name> test: {untested}"
    assert not undocumented, f"hooks without a '### `<name>(register)`' section in docs/plugins.md: {undocumented}"
