"""The top-level ``seed``: it seeds the model, the controls and a tuner's sampler; a component's own seed wins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tracking_services as services
except ImportError:
    sys.path.insert(0, str(Path(__file__).parent))
    import tracking_services as services

import qframe
from qframe.core.errors import ConfigError

SMALL = ["dataset.n_instruments=40", "dataset.n_days=320", "strategy.topk=5", "strategy.n_drop=1"]
TREES = ["model=lightgbm_small", "model.num_boost_round=20"]


def composed(overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from qframe.app import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides), resolve=True)


def sampler_seed(overrides: list[str]) -> int:
    from hydra import compose, initialize_config_dir

    from qframe.app import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("config", overrides, return_hydra_config=True).hydra.sweeper.seed


@pytest.mark.parametrize("model", ["lightgbm", "lightgbm_small", "mlp", "gru", "alstm"])
def test_seed_reaches_every_seeded_part_and_an_explicit_one_wins(model):
    default = composed([f"model={model}"])
    assert default["seed"] is None and default["model"]["seed"] == 0 and default["evaluation"]["controls"]["seed"] == 0
    seeded = composed([f"model={model}", "seed=7"])
    assert seeded["model"]["seed"] == 7 and seeded["evaluation"]["controls"]["seed"] == 7
    explicit = composed([f"model={model}", "seed=7", "model.seed=3", "evaluation.controls.seed=4"])
    assert explicit["model"]["seed"] == 3 and explicit["evaluation"]["controls"]["seed"] == 4


def test_seed_reaches_a_tuners_sampler():
    assert sampler_seed(["tuner=strategy"]) == 0
    assert sampler_seed(["tuner=lightgbm", "seed=5"]) == 5
    assert sampler_seed(["tuner=mlp", "seed=5", "hydra.sweeper.seed=2"]) == 2


def test_same_seed_same_objective_other_seed_other_objective(tmp_path):
    from qframe.core.workflow import run_workflow

    def objective(*overrides: str) -> float:
        cfg = composed([*SMALL, *TREES, *overrides, f"workdir={tmp_path}", "evaluation.controls.enabled=false"])
        return run_workflow(cfg).metrics["IC"]

    first, again, other = objective("seed=1"), objective("seed=1"), objective("seed=2")
    assert first == again
    assert other != first  # LightGBM's feature and row sampling follow the seed
    assert objective("seed=2", "model.seed=1") == first  # the model's own seed wins
    with pytest.raises(ConfigError, match="seed='x'"):
        objective("seed=x")


def test_models_by_seeds_grid_then_leaderboard(tmp_path):
    wd = tmp_path / ".qframe"

    def qframe_cmd(*args: str) -> subprocess.CompletedProcess:
        return services.run_qframe(list(args), tmp_path)

    grid = qframe_cmd("-m", "model=lightgbm_small,linear", "seed=1,2", *SMALL, f"workdir={wd}")
    assert grid.returncode == 0, grid.stderr[-3000:]
    runs = qframe.runs(tracking_uri=f"sqlite:///{wd / 'mlflow.db'}").search(sweep="last")
    assert len(runs) == 4 and set(runs["status"]) == {"FINISHED"}
    ic = {(r["params.model.name"], r["params.seed"]): r["metrics.IC"] for _, r in runs.iterrows()}
    assert ic[("lightgbm", "1")] != ic[("lightgbm", "2")]  # the seed reached the trees
    assert ic[("linear", "1")] == ic[("linear", "2")]  # the ridge has nothing random
    board = qframe_cmd("runs", "leaderboard", "--sweep", "last", "--by", "model.name", "--json", "--workdir", str(wd))
    assert board.returncode == 0, board.stderr
    rows = json.loads(board.stdout)
    assert sorted((row["model.name"], row["count"]) for row in rows) == [("lightgbm", 2), ("linear", 2)]
