"""Plugins installed as real packages: the example plugin and a deliberately broken one, driven through ``qframe``.

The module fixture pip-installs ``examples/qframe-example-plugin`` (non-editable, no build isolation) into the
test environment, so a fresh clone's test run needs no extra set-up step.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "qframe-example-plugin"
SMALL = ["dataset.n_instruments=40", "dataset.n_days=320", "strategy.topk=5", "strategy.n_drop=1"]


def pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "-q", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def qframe(args, cwd, env_extra=None, timeout=300):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "qframe", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def example_plugin():
    """The example plugin, installed from its path as a regular (non-editable) package for this module."""
    was_installed = installed("qframe-example-plugin")
    pip("install", "--no-deps", "--no-build-isolation", "--force-reinstall", str(EXAMPLE))
    yield EXAMPLE
    if not was_installed:
        pip("uninstall", "-y", "qframe-example-plugin")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("installed-workdir")


def test_plugins_command_lists_the_example_plugin(example_plugin, tmp_path):
    proc = qframe(["plugins", "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    infos = {i["name"]: i for i in json.loads(proc.stdout)}
    example = infos["example"]
    assert example["source"] == "entry point" and example["package"] == "qframe-example-plugin"
    assert example["version"] == importlib.metadata.version("qframe-example-plugin")
    assert example["hooks"] == ["register_models", "register_recorders", "register_search_spaces"]
    items = {(i["kind"], i["name"]): i["description"] for i in example["items"]}
    assert set(items) == {("model", "rank_ensemble"), ("search_space", "rank_ensemble"), ("recorder", "jsonl_log")}
    assert all(items.values())
    assert example["conf_dir"].endswith("qframe_example_plugin/conf") and "site-packages" in example["conf_dir"]
    assert infos["qframe.plugins.models"]["source"] == "built-in"

    text = qframe(["plugins", "--hook", "register_recorders"], cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "example 0.1.0 (entry point, package qframe-example-plugin)" in text.stdout
    assert "recorder jsonl_log" in text.stdout and "qframe.plugins.models" not in text.stdout


def test_plugins_command_is_fast_and_imports_no_heavy_library(example_plugin, tmp_path):
    code = (
        "import sys, time; t = time.perf_counter(); from qframe.cli import main\n"
        "try:\n    main(['plugins'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted({'mlflow', 'lightgbm', 'sklearn', 'torch', 'matplotlib'} & set(sys.modules))\n"
        "print('HEAVY', heavy, 'SECONDS', time.perf_counter() - t)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY [] SECONDS" in proc.stdout, proc.stdout[-500:]


def test_example_model_runs_end_to_end_and_its_recorder_writes_a_line(example_plugin, workdir, tmp_path):
    help_text = qframe(["--help"], cwd=tmp_path)
    model_line = next(line for line in help_text.stdout.splitlines() if line.startswith("model:"))
    assert "rank_ensemble" in model_line  # the plugin's config group option shows in Hydra's group listing

    log = tmp_path / "runs.jsonl"
    proc = qframe(
        [*SMALL, "model=rank_ensemble", "model.n_members=3", f"recorders=[{{name:jsonl_log,path:{log}}}]"],
        cwd=tmp_path,
        env_extra={"QFRAME_HOME": str(workdir)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = log.read_text().splitlines()
    record = json.loads(line)
    assert record["model"] == "rank_ensemble" and record["run_id"] in proc.stdout
    assert set(record["metrics"]) >= {"IC", "Rank IC", "excess_return_with_cost.information_ratio"}

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    run = client.get_run(record["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["model.n_members"] == "3"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} == {"model/model.rank_ensemble.json"}


def test_load_plugins_env_hides_external_plugins(example_plugin, tmp_path):
    hidden = qframe(["plugins", "--json"], cwd=tmp_path, env_extra={"QFRAME_LOAD_PLUGINS": ""})
    assert hidden.returncode == 0, hidden.stderr
    names = {i["name"] for i in json.loads(hidden.stdout)}
    assert "example" not in names and "qframe.plugins.models" in names

    run = qframe(["model=rank_ensemble"], cwd=tmp_path, env_extra={"QFRAME_LOAD_PLUGINS": ""})
    assert run.returncode == 2
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("qframe: error: unknown model 'rank_ensemble'; valid options: ")
    assert "rank_ensemble" not in line.split("valid options:")[1]

    by_package = qframe(["plugins", "--json"], cwd=tmp_path, env_extra={"QFRAME_LOAD_PLUGINS": "qframe-example-plugin"})
    assert "example" in {i["name"] for i in json.loads(by_package.stdout)}


BROKEN_PYPROJECT = """
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "qframe-broken-plugin"
version = "0.0.1"

[project.entry-points.qframe]
broken_import = "qframe_broken_plugin.imports"
broken_register = "qframe_broken_plugin.registers"

[tool.hatch.build.targets.wheel]
packages = ["qframe_broken_plugin"]
"""


@pytest.fixture
def broken_plugin(tmp_path_factory):
    """A package with two broken entry points: one fails to import, one raises while registering; the env entries
    that make it visible. Installed into a directory of its own and put on PYTHONPATH of this test's processes only
    (importlib.metadata finds its entry points there): installed into the shared venv, its two warnings would reach
    every qframe process the other xdist worker starts meanwhile."""
    src = tmp_path_factory.mktemp("broken-src")
    (src / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    pkg = src / "qframe_broken_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "imports.py").write_text("import qframe_no_such_dependency  # noqa\n")
    (pkg / "registers.py").write_text(
        "from qframe.core.hookspecs import hookimpl\n\n\n"
        "@hookimpl\ndef register_models(register):\n    raise ValueError('cannot reach the model server')\n"
    )
    site = tmp_path_factory.mktemp("broken-site")
    pip("install", "--no-deps", "--no-build-isolation", "--target", str(site), str(src))
    return {"PYTHONPATH": str(site)}


def test_broken_plugin_costs_one_warning_and_qframe_still_runs(example_plugin, broken_plugin, workdir, tmp_path):
    proc = qframe([*SMALL, "model=linear"], cwd=tmp_path, env_extra={"QFRAME_HOME": str(workdir), **broken_plugin})
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("qframe: warning:")]
    assert len(warnings) == 2, proc.stderr[-3000:]
    (imp,) = [w for w in warnings if "broken_import" in w]
    (reg,) = [w for w in warnings if "broken_register" in w]
    assert "qframe-broken-plugin" in imp and "ModuleNotFoundError" in imp and "qframe_no_such_dependency" in imp
    assert "qframe-broken-plugin" in reg and "cannot reach the model server" in reg
    assert "information_ratio" in proc.stdout

    listing = qframe(["plugins", "--json"], cwd=tmp_path, env_extra=broken_plugin)
    assert listing.returncode == 0
    infos = {i["name"]: i for i in json.loads(listing.stdout)}
    assert "ModuleNotFoundError" in infos["broken_import"]["error"]
    assert "example" in infos and infos["example"]["error"] is None
