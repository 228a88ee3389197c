"""The plugin docs/plugins.md describes, built from the page's code blocks as written, installed, and used.

A fenced block is a file of the plugin when the line just before it names one in backquotes (`` `pyproject.toml` ``,
`` `src/qframe_myplugin/model.py`: ``, ``Add to `src/qframe_myplugin/__init__.py`:``); blocks naming the same file
are joined in the page's order. The package is pip-installed into a throwaway directory put on PYTHONPATH (the shared
venv is left alone), and every hook's item goes through the real ``qframe`` command: ``qframe plugins``, one run
with the plugin's dataset, handler (feature set and processor), model, strategy, recorder and reweighter, and one
hyperopt sweep with its search space and tuner backend. So the page cannot drift from what works.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_plugins_installed import qframe

from qframe.core.hookspecs import KINDS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"
PLUGIN_FILE = re.compile(r"`(pyproject\.toml|src/qframe_myplugin/[\w./]+)`")
FENCE = re.compile(r"^```(\w*)\s*$")

#: every item the page's plugin registers, one per hook
ITEMS = {
    ("dataset", "random_walk"),
    ("feature_set", "momentum"),
    ("processor", "winsorize"),
    ("model", "mymodel"),
    ("strategy", "top_quantile"),
    ("recorder", "last_run"),
    ("reweighter", "recent_days"),
    ("search_space", "mymodel"),
    ("tuner_backend", "wide_tpe"),
    ("task_generator", "monthly"),
}
RUN = [
    "dataset=random_walk",
    "handler=momentum",
    "model=mymodel",
    "strategy=top_quantile",
    "recorders=[last_run]",
    "reweighter=recent_days",
]


def documented_files(text: str) -> dict[str, str]:
    """Plugin path -> content, from the code blocks whose preceding line names the file."""
    files: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not FENCE.match(lines[i]):
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((line for line in reversed(lines[:i]) if line.strip()), "")
        named = PLUGIN_FILE.search(before)
        if named:
            body = "\n".join(lines[i + 1 : end]) + "\n"
            files[named[1]] = files[named[1]] + "\n\n" + body if named[1] in files else body
        i = end + 1
    return files


def test_the_page_has_a_file_for_every_hook():
    files = documented_files(DOC.read_text())
    init = files["src/qframe_myplugin/__init__.py"]
    assert [hook for hook in KINDS.values() if f"def {hook}(register)" not in init] == []
    for module in ("model", "dataset", "features", "processors", "strategy", "recorder", "reweighter"):
        assert f"src/qframe_myplugin/{module}.py" in files
    for group, option in (
        ("model", "mymodel"),
        ("dataset", "random_walk"),
        ("handler", "momentum"),
        ("reweighter", "recent_days"),
    ):
        assert f"src/qframe_myplugin/conf/{group}/{option}.yaml" in files
    assert {"pyproject.toml", "src/qframe_myplugin/conf/tuner/mymodel.yaml"} <= set(files)


@pytest.fixture(scope="module")
def documented_plugin(tmp_path_factory) -> Path:
    """The page's plugin, written out and pip-installed into its own directory; returns that directory."""
    src = tmp_path_factory.mktemp("myplugin-src")
    for path, content in documented_files(DOC.read_text()).items():
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text(content)
    site = tmp_path_factory.mktemp("myplugin-site")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", site, src],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return site


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """One working directory for the module's commands (its ./.qframe holds the runs)."""
    return tmp_path_factory.mktemp("myplugin-project")


def with_plugin(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(site)}


def test_hook_items_are_listed_with_their_plugin(documented_plugin, project):
    proc = qframe(["plugins", "--json"], cwd=project, env_extra=with_plugin(documented_plugin))
    assert proc.returncode == 0, proc.stderr
    info = {i["name"]: i for i in json.loads(proc.stdout)}["myplugin"]
    assert info["source"] == "entry point" and info["error"] is None
    assert info["hooks"] == sorted(KINDS.values())
    assert {(i["kind"], i["name"]) for i in info["items"]} == ITEMS
    assert all(i["error"] is None and i["description"] for i in info["items"])


def test_documented_run_uses_the_dataset_features_processor_model_strategy_recorder_and_reweighter(
    documented_plugin, project
):
    proc = qframe(RUN, cwd=project, env_extra=with_plugin(documented_plugin))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_id = re.search(r"^MLflow run ([0-9a-f]{32})", proc.stdout, re.M)[1]
    record = json.loads((project / ".qframe" / "last_run.json").read_text())  # the recorder's file
    assert record["run_id"] == run_id and "Rank IC" in record["metrics"]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / '.qframe' / 'mlflow.db'}")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset.name"] == "random_walk" and run.data.params["strategy.name"] == "top_quantile"
    assert run.data.params["fit.n_features"] == "3"  # the momentum windows 5, 20, 60, winsorized on the way
    # the reweighter's settings, and its weights (last 60 train days 3x, scaled to mean 1) reached the fit
    assert run.data.params["reweighter.name"] == "recent_days" and run.data.params["reweighter.days"] == "60"
    low, high = (float(run.data.params[f"fit.weights_{k}"]) for k in ("min", "max"))
    assert high == pytest.approx(3 * low, rel=1e-4)
    assert {a.path for a in client.list_artifacts(run_id, "model")} == {"model/mymodel.json"}


def test_documented_sweep_uses_the_search_space_and_tuner_backend(documented_plugin, project):
    proc = qframe(
        ["-m", "tuner=mymodel", "hydra.sweeper.n_trials=3"], cwd=project, env_extra=with_plugin(documented_plugin)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results,) = (project / ".qframe" / "multirun").glob("*/*/optimization_results.yaml")
    summary = yaml.safe_load(results.read_text())
    assert summary["algo"] == "wide_tpe" and summary["completed"] == 3, summary
    assert {p.split("=")[0] for p in summary["best_params"]} == {"model.alpha", "strategy.quantile"}
