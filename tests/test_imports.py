"""What a fresh process imports: only the libraries the command uses (every run and every sweep worker pays them).

Each test starts a new interpreter and reads its ``sys.modules`` at exit: an eager import anywhere in the chain
(``qframe.cli``, the built-in plugins, ``hydra_plugins/``, the workflow) shows up here.
"""

import os
import subprocess
import sys
import textwrap

#: libraries a command must not import unless it uses them (scipy.stats: what scikit-learn costs most of)
HEAVY = ("lightgbm", "torch", "sklearn", "scipy.stats", "matplotlib", "mlflow", "hyperopt", "ray")
#: what a command that reads no data must not import either: the plugins register their components by import path
DATA = ("pandas", "numpy", "pyarrow")
SMALL = ["dataset.n_instruments=40", "dataset.n_days=320", "strategy.topk=5", "strategy.n_drop=1"]


def python(code: str, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def qframe_imports(
    args: list[str], cwd, libraries: tuple[str, ...] = HEAVY
) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``qframe ARGS`` in a fresh interpreter; (the process, which of ``libraries`` it had imported)."""
    code = f"""
        import atexit, sys
        atexit.register(lambda: print("HEAVY", sorted(set({libraries!r}) & set(sys.modules))))
        from qframe.cli import main
        sys.argv = ["qframe", *{args!r}]
        main()
    """
    proc = python(code, cwd)
    line = next((line for line in proc.stdout.splitlines() if line.startswith("HEAVY ")), None)
    assert line is not None, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc, set(eval(line[len("HEAVY ") :]))  # noqa: S307 - our own printed list literal


def test_help_and_composing_a_config_import_no_heavy_library(tmp_path):
    help_run, imported = qframe_imports(["--help"], tmp_path)
    assert help_run.returncode == 0 and "model: " in help_run.stdout, help_run.stderr[-2000:]
    assert imported == set()
    # the default config (model=lightgbm, plots on) composed and printed: composing imports none of what it names
    composed, imported = qframe_imports(["--cfg", "job"], tmp_path)
    assert composed.returncode == 0 and "name: lightgbm" in composed.stdout, composed.stderr[-2000:]
    assert imported == set()


def test_help_and_error_lines_import_no_data_library(tmp_path):
    """``--help``, ``--version`` and a bad option's error line load the plugins but import neither pandas nor numpy."""
    help_run, imported = qframe_imports(["--help"], tmp_path, HEAVY + DATA)
    assert help_run.returncode == 0 and "qframe plugins" in help_run.stdout, help_run.stderr[-2000:]
    assert imported == set()
    version, imported = qframe_imports(["--version"], tmp_path, HEAVY + DATA)
    assert version.returncode == 0 and version.stdout.startswith("qframe "), version.stderr[-2000:]
    assert imported == set()
    bad, imported = qframe_imports(["model=nosuch"], tmp_path, HEAVY + DATA)
    assert bad.returncode == 2, (bad.stdout[-2000:], bad.stderr[-2000:])
    assert bad.stderr.startswith("qframe: error: unknown model 'nosuch'") and "Traceback" not in bad.stderr
    assert imported == set()


def test_registering_the_plugins_imports_no_component(tmp_path):
    """The registry lists every built-in (names, descriptions, parameters) without importing pandas, numpy or
    LightGBM; making one component imports its module then, and its parameters are still checked."""
    proc = python(
        f"""
        import sys
        from qframe.core.registry import get_registry

        registry = get_registry()
        names = {{kind: registry.names(kind) for kind in ("dataset", "model", "processor", "strategy")}}
        print("NAMES", names["dataset"], "lightgbm" in names["model"], "dropna_label" in names["processor"])
        print("BEFORE", sorted(set({HEAVY + DATA!r}) & set(sys.modules)))
        from qframe.core.errors import ConfigError
        try:
            registry.create("dataset", "qlib", provider_uri="x", markt="csi300")
        except ConfigError as exc:
            print("REFUSED", exc)
        print("AFTER", "pandas" in sys.modules, "qframe.plugins.datasets.qlib_bin" in sys.modules)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "NAMES ['csv', 'qlib', 'synthetic'] True True" in out, out
    assert "BEFORE []" in out, out
    assert "dataset.markt" in out and "market" in out.split("REFUSED", 1)[1], out
    assert "AFTER True True" in out, out


#: what MLflow's own import brings that a run never uses: its AI gateway's web framework (qframe.core.mlflow_import)
GATEWAY = ("fastapi", "starlette", "mlflow.gateway.utils")
#: what opening a current sqlite store does not need: alembic (its schema check, qframe.core.sqlite_store)
MIGRATIONS = ("alembic",)


def test_a_run_imports_only_what_it_uses(tmp_path):
    """A ridge run without plots records to MLflow and imports neither LightGBM, torch, scikit-learn, matplotlib nor
    MLflow's FastAPI gateway; a run on the existing store (at MLflow's head) does not import alembic either (the
    first may, to make this MLflow version's template store)."""
    args = [*SMALL, "model=linear", "recording.plots=false"]
    for libraries in (HEAVY + GATEWAY, HEAVY + GATEWAY + MIGRATIONS):
        run, imported = qframe_imports(args, tmp_path, libraries)
        assert run.returncode == 0, run.stderr[-3000:]
        assert "MLflow run" in run.stdout
        assert imported == {"mlflow"}


def test_mlflow_imported_without_its_gateway_keeps_the_gateway_and_genai_apis(tmp_path):
    """The deferred ``mlflow.gateway`` runs its ``__init__`` on first use; ``mlflow.genai`` and the SQL store import
    as before; an MLflow version not known to qframe is imported as it is."""
    proc = python(
        f"""
        import sys
        from qframe.core import mlflow_import

        mlflow = mlflow_import.import_mlflow()
        import mlflow.store.tracking.sqlalchemy_store  # the run's store: imports genai's scorers and judges
        print("BEFORE", sorted(set({GATEWAY!r}) & set(sys.modules)))
        from mlflow.gateway import get_gateway_uri  # the deferred __init__ runs here
        from mlflow.genai import make_judge, evaluate

        print("AFTER", sorted(set({GATEWAY!r}) & set(sys.modules)), callable(get_gateway_uri), callable(evaluate))
        print("GENAI", mlflow.genai.scorers.Scorer.__name__, mlflow.gateway.constants.GatewayCaller.JUDGE.value)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["BEFORE"] == "[]"
    assert lines["AFTER"] == f"{sorted(GATEWAY)} True True"
    assert lines["GENAI"] == "Scorer judge"
    other = python(
        """
        import sys
        from qframe.core import mlflow_import

        mlflow_import.KNOWN_VERSIONS = ("0.0.",)
        mlflow_import.import_mlflow()
        print("LOADED", "fastapi" in sys.modules)
        """,
        tmp_path,
    )
    assert other.returncode == 0 and "LOADED True" in other.stdout, other.stderr[-3000:]


def test_quiet_gc_freezes_what_the_first_block_imported_and_restores_the_collector(tmp_path):
    proc = python(
        """
        import gc
        from qframe.core.mlflow_import import quiet_gc

        with quiet_gc():
            disabled = not gc.isenabled()
            held = [[i] for i in range(1000)]  # tracked containers made inside the block
        frozen = gc.get_freeze_count()
        print("FIRST", disabled, gc.isenabled(), frozen >= len(held))
        with quiet_gc():  # a later block (a worker's next run): the collector as usual
            print("LATER", gc.isenabled(), gc.get_freeze_count() == frozen)
        gc.disable()
        with quiet_gc():
            pass
        print("OFF", gc.isenabled())
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "FIRST True True True" in proc.stdout and "LATER True True" in proc.stdout, proc.stdout
    assert "OFF False" in proc.stdout, proc.stdout


def test_the_console_script_freezes_its_objects_before_exit_and_an_in_process_call_does_not(tmp_path):
    """``qframe`` (the console script, ``main()``) leaves its objects out of the exit's collection; ``main(argv)``
    called by other code does not change the caller's collector."""
    proc = python(
        """
        import gc, sys
        from qframe.cli import main

        try:
            main(["--version"])
        except SystemExit:
            pass
        print("CALL", gc.get_freeze_count())
        sys.argv = ["qframe", "--version"]
        try:
            main()
        except SystemExit:
            print("SCRIPT", gc.get_freeze_count() > 0)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CALL 0" in proc.stdout and "SCRIPT True" in proc.stdout, proc.stdout


def test_lightgbm_model_fits_without_importing_scikit_learn(tmp_path):
    proc = python(
        """
        import sys
        import numpy as np
        from qframe.plugins.models.lightgbm import LightGBMModel, lgb

        rng = np.random.default_rng(0)
        X = rng.normal(size=(2000, 4)).astype(np.float32)
        y = (X[:, 0] + rng.normal(0, 0.5, 2000)).astype(np.float32)
        model = LightGBMModel(num_boost_round=20, early_stopping_rounds=5, num_threads=1)
        model.fit(X[:1500], y[:1500], X[1500:], y[1500:])
        corr = np.corrcoef(model.predict(X[1500:]), y[1500:])[0, 1]
        print("LOADED", sorted({"sklearn", "scipy.stats"} & set(sys.modules)), "CORR", round(corr, 2))
        import sklearn  # the block was for lightgbm's own import only
        print("SKLEARN", sklearn.__version__, "API", lgb.compat.SKLEARN_INSTALLED)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = next(line for line in proc.stdout.splitlines() if line.startswith("LOADED"))
    assert loaded.startswith("LOADED [] CORR"), loaded
    assert float(loaded.split()[-1]) > 0.5, loaded  # the trees learnt the planted feature
    assert "SKLEARN 1." in proc.stdout and "API False" in proc.stdout, proc.stdout


def test_lightgbm_imported_first_by_other_code_keeps_its_scikit_learn_api(tmp_path):
    """A plugin that imports lightgbm (or scikit-learn) before qframe's model does gets lightgbm's full API."""
    proc = python(
        """
        import numpy as np
        import sklearn  # noqa: F401
        from qframe.plugins.models.lightgbm import lgb

        X = np.random.default_rng(0).normal(size=(200, 3))
        model = lgb.LGBMRegressor(n_estimators=3, verbose=-1).fit(X, X[:, 0])
        print("PRED", model.predict(X[:2]).shape)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "PRED (2,)" in proc.stdout


def test_help_lists_the_config_groups_from_one_repository(tmp_path):
    """``--help`` builds Hydra's config repository a few times instead of twice per group, and prints the same text
    as Hydra's own listing."""
    code = """
        import sys
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        import qframe.hydra_help as hydra_help

        built = []
        create = ConfigLoaderImpl._parse_overrides_and_create_caching_repo
        ConfigLoaderImpl._parse_overrides_and_create_caching_repo = lambda *a: built.append(1) or create(*a)
        if sys.argv[1] == "hydra":
            reuse = hydra_help.one_repository_for_group_listings
            hydra_help.one_repository_for_group_listings = lambda enabled: reuse(False)
        import atexit
        atexit.register(lambda: print("BUILT", len(built)))
        from qframe.cli import main
        sys.argv = ["qframe", "--help"]
        main()
    """
    texts, built = {}, {}
    for mode in ("qframe", "hydra"):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), mode],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        text, _, count = proc.stdout.rpartition("BUILT ")
        texts[mode], built[mode] = text, int(count)
    assert "model: " in texts["qframe"] and texts["qframe"] == texts["hydra"]
    assert built["qframe"] <= 3 < 20 <= built["hydra"], built


def test_lazy_factory_calls_and_describes_its_target():
    import inspect

    import pytest

    from qframe.core.errors import reject_unknown_params
    from qframe.core.lazy import lazy

    factory = lazy("qframe.core.errors:reject_unknown_params")
    assert inspect.signature(factory) == inspect.signature(reject_unknown_params)
    assert factory.resolve() is reject_unknown_params and repr(factory).startswith("lazy(")
    with pytest.raises(ValueError, match="package.module:attribute"):
        lazy("qframe.core.errors.reject_unknown_params")
    with pytest.raises(AttributeError):
        lazy("qframe.core.errors:no_such_thing")()
