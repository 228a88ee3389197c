"""``qframe runs``, continued: leaderboards logged as report runs, RUN names with spaces and quotes, the uncommitted
diff of a run made from a dirty checkout (once per sweep), the warnings of ``rerun``, a sweep's trials in listings,
and a torch model loaded back from its run. Real MLflow sqlite stores, real small runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

try:
    import tracking_services as services
except ImportError:
    sys.path.insert(0, str(Path(__file__).parent))
    import tracking_services as services

import qframe

SMALL = ["dataset.n_instruments=40", "dataset.n_days=320", "strategy.topk=5", "strategy.n_drop=1"]


def qframe_cmd(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return services.run_qframe(args, cwd)


def runs_cmd(args: list[str], workdir: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return qframe_cmd(["runs", *args, "--workdir", str(workdir)], cwd or workdir.parent)


def listed(workdir: Path, *args: str) -> list[dict]:
    proc = runs_cmd(["--json", *args], workdir)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_leaderboard_logged_as_a_report_run(tmp_path):
    wd = tmp_path / ".qframe"
    for group, ics in {"a": [0.01, 0.03], "b": [0.05]}.items():
        for ic in ics:
            with qframe.record(experiment="study", run_name=f"{group}-{ic}", workdir=wd) as rec:
                rec.log_params(**{"model.name": group})
                rec.log_metrics(IC=ic, ICIR=ic * 10)
    proc = runs_cmd(["leaderboard", "--experiment", "study", "--json", "--log"], wd)
    assert proc.returncode == 0, proc.stderr
    board = json.loads(proc.stdout)
    assert "logged as report run" in proc.stderr
    store = qframe.runs(workdir=wd)
    (report,) = [r for r in store.search_runs() if r.data.tags.get("qframe.kind") == "report"]
    run = store.get(report.info.run_id)
    assert run.status == "FINISHED" and run.experiment == "study" and run.name == "leaderboard by model.name"
    assert run.params["by"] == "model.name" and run.params["runs"] == "3"
    assert {"leaderboard.md", "leaderboard.csv", "leaderboard.png"} <= set(run.artifact_paths())
    logged = run.load("leaderboard.csv")
    assert list(logged["model.name"]) == [row["model.name"] for row in board] == ["b", "a"]
    np.testing.assert_allclose(logged["IC mean"], [0.05, 0.02])
    assert run.load("leaderboard.md").startswith("| model.name | runs | IC |")
    assert run.download("leaderboard.png").read_bytes()[:4] == b"\x89PNG"
    # listed with its kind, never ranked again (it has no model.name), never taken for `last`
    assert {r["name"]: r["model"] for r in listed(wd)}["leaderboard by model.name"] == "report"
    again = json.loads(runs_cmd(["leaderboard", "--json"], wd).stdout)
    assert [row["count"] for row in again] == [1, 2]
    assert store.resolve("last").info.run_name == "b-0.05"


def test_run_names_with_spaces_and_quotes(tmp_path):
    wd = tmp_path / ".qframe"
    names = ["my run", 'it\'s "quoted"', "back\\slash 50%_x"]
    ids = {}
    for name in [*names, "my_run", "myXrun"]:  # near misses a LIKE pattern would match
        with qframe.record(run_name=name, workdir=wd) as rec:
            ids[name] = rec.id
    store = qframe.runs(workdir=wd)
    for name in names:
        assert store.resolve(name).info.run_id == ids[name]
    # quoted once more, as a Hydra override wants a value with spaces: from_run='"my run"'
    assert store.resolve('"my run"').info.run_id == store.resolve("'my run'").info.run_id == ids["my run"]
    shown = runs_cmd(["show", "my run", "--json"], wd)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == ids["my run"]
    missing = runs_cmd(["show", "my runs"], wd)
    assert missing.returncode == 2 and "did you mean 'my run'" in missing.stderr


def test_from_run_named_with_spaces_through_hydra(tmp_path):
    wd = tmp_path / ".qframe"
    lean = ["evaluation.controls.enabled=false", "recording.plots=false"]
    source = qframe_cmd([*SMALL, *lean, "model=linear", "run_name='my source run'", f"workdir={wd}"], tmp_path)
    assert source.returncode == 0, source.stderr[-3000:]
    for ref in ("from_run='my source run'", "from_run='\"my source run\"'"):
        again = qframe_cmd([*SMALL, *lean, ref, f"workdir={wd}"], tmp_path)
        assert again.returncode == 0, (ref, again.stderr[-3000:])
    store = qframe.runs(workdir=wd)
    src = store.get("my source run")
    evaluations = store.search(filter=f"tags.qframe.from_run = '{src.id}'")
    assert len(evaluations) == 2 and set(evaluations["metrics.IC"]) == {src.metrics["IC"]}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)  # fmt: skip


def test_dirty_checkout_diff_once_per_sweep_trials_and_rerun_warnings(tmp_path):
    repo = tmp_path / "project"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "study.py").write_text("WINDOW = 20\n")
    _git(repo, "add", "study.py")
    _git(repo, "commit", "-q", "-m", "first")
    (repo / "study.py").write_text("WINDOW = 30  # uncommitted\n")
    wd = tmp_path / ".qframe"
    lean = ["evaluation.controls.enabled=false", "recording.plots=false"]
    source = qframe_cmd([*SMALL, *lean, "model=linear", "run_name=source", f"workdir={wd}"], repo)
    assert source.returncode == 0, source.stderr[-3000:]
    store = qframe.runs(workdir=wd)
    src = store.get("source")
    assert src.tags["qframe.git_dirty"] == "true"
    diff = src.load("uncommitted.diff")
    assert "+WINDOW = 30  # uncommitted" in diff and "-WINDOW = 20" in diff

    space = ["tuner=strategy", "strategy.topk=choice(3,5)", "strategy.n_drop=choice(1,2)"]
    data = [a for a in SMALL if a.startswith("dataset.")]
    sweep = qframe_cmd(["-m", *data, "from_run=source", *space, "hydra.sweeper.n_trials=2", f"workdir={wd}"], repo)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    parent = store.get(store.latest_sweep().info.run_id)
    assert parent.load("uncommitted.diff") == diff  # the sweep holds it once...
    trials = store.search_runs(sweep="last")
    assert len(trials) == 2
    for trial in trials:  # ...and its trials hold none
        assert "uncommitted.diff" not in store.get(trial.info.run_id).artifact_paths()

    # a sweep's trials are hidden from a listing unless asked for
    default = {r["id"] for r in listed(wd)}
    assert default == {src.id, parent.id}
    with_trials = {r["id"] for r in listed(wd, "--trials")}
    assert with_trials == default | {t.info.run_id for t in trials}
    assert {r["id"] for r in listed(wd, "--sweep", "last")} == {t.info.run_id for t in trials}
    assert {r["trial"] for r in listed(wd, "--sweep", parent.id)} == {"0", "1"}

    # rerun warns about what differs: the trial's recorded qframe version, and the diff its parent holds
    trial = trials[0].info.run_id
    store.client.set_tag(trial, "qframe.version", "0.0.1")
    again = runs_cmd(["rerun", trial], wd, cwd=repo)
    assert again.returncode == 0, again.stderr[-3000:]
    warnings = [line for line in again.stderr.splitlines() if line.startswith("qframe: warning: ")]
    assert any(f"qframe was 0.0.1, is {qframe.__version__}" in w for w in warnings), warnings
    (dirty,) = [w for w in warnings if "uncommitted changes" in w]
    assert f"uncommitted.diff of run {parent.id[:8]}" in dirty and "git apply" in dirty
    rerun = store.resolve("last")
    assert rerun.data.metrics["IC"] == src.metrics["IC"]
    assert rerun.data.metrics["excess_return_with_cost.information_ratio"] == pytest.approx(
        trials[0].data.metrics["excess_return_with_cost.information_ratio"], abs=0
    )


def test_torch_model_loaded_back_predicts_what_its_run_predicted(tmp_path):
    wd = tmp_path / ".qframe"
    args = ["model=mlp", "model.max_epochs=2", "model.progress=false", "model.num_threads=1", "run_name=net"]
    proc = qframe_cmd([*SMALL, *args, f"workdir={wd}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from qframe.core.registry import get_registry
    from qframe.core.workflow import _load_inputs

    run = qframe.runs(workdir=wd).get("net")
    pred = run.load("pred")
    _, prepared, _ = _load_inputs(run.config, get_registry(), wd / "cache")
    predicted = run.load_model().predict(prepared.segments["test"].X)
    predicted = np.asarray(predicted.to_numpy() if isinstance(predicted, pd.Series) else predicted)
    assert len(predicted) == len(pred)
    np.testing.assert_allclose(predicted, pred["score"].to_numpy(), rtol=1e-5, atol=1e-6)
