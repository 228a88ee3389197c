"""The fork launcher's job configs: a composed template plus value overrides equals Hydra's own composition."""

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from qframe.app import conf_dir
from qframe.launch.compose import JobComposer


@pytest.fixture(scope="module")
def loader_and_master(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("sweep")
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration(
            "config", ["tuner=lightgbm", f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.n_trials=3"], RunMode.MULTIRUN
        )
        yield loader, master


def hydra_composed(loader, master, overrides, idx):
    cfg = loader.load_sweep_config(master, overrides)
    with open_dict(cfg.hydra):
        cfg.hydra.job.id = cfg.hydra.job.num = idx
    return OmegaConf.to_container(cfg, resolve=False)


@pytest.mark.parametrize(
    "overrides",
    [
        # a hyperopt trial: values, a force-added key, the tuner group, fixed values, the trial's identity
        [
            "model.learning_rate=0.051057141228751046",
            "model.num_leaves=229",
            "++model.min_data_in_leaf=123",
            "tuner=lightgbm",
            "dataset.n_instruments=60",
            "++hydra.job.env_set.QFRAME_TRIAL_NUMBER='3'",
        ],
        # a group choice with a value inside the chosen config
        ["model=linear", "model.alpha=0.3", "strategy.topk=7", "tuner=lightgbm"],
        # add, delete, quoted strings, lists
        ["+extra_key=3", "~recorders", "run_name='a b'", "segments.fractions=[0.5,0.25,0.25]", "tuner=lightgbm"],
        # a hydra setting (composed) next to values
        ["strategy.topk=7", "hydra.job.chdir=false", "tuner=lightgbm", "++hydra.job.env_set.QFRAME_SWEEP='1'"],
        # a model whose config chooses its handler (Alpha360), and one told another handler
        ["model=gru", "model.hidden_size=32", "tuner=lightgbm"],
        ["model=alstm", "handler=alpha158", "model.window=20", "tuner=lightgbm"],
    ],
)
def test_template_plus_values_equals_hydras_composition(loader_and_master, overrides):
    loader, master = loader_and_master
    composer = JobComposer(loader, master)
    planned = composer.plan(overrides)
    ours = OmegaConf.to_container(planned.config(5, in_place=False), resolve=False)
    assert ours == hydra_composed(loader, master, overrides, 5)
    # the template is left as composed (only a forked child edits its own copy in place)
    again = OmegaConf.to_container(composer.plan(overrides).config(5, in_place=False), resolve=False)
    assert again == ours


def test_off_the_fast_path_every_job_is_composed_by_hydra(loader_and_master):
    loader, master = loader_and_master
    composer = JobComposer(loader, master, fast_path=False)
    overrides = ["model=linear", "model.alpha=0.3", "tuner=lightgbm", "++hydra.job.env_set.QFRAME_TRIAL_NUMBER='3'"]
    ours = OmegaConf.to_container(composer.plan(overrides).config(5), resolve=False)
    assert ours == hydra_composed(loader, master, overrides, 5)
    fast = JobComposer(loader, master).plan(overrides).config(5, in_place=False)
    assert ours == OmegaConf.to_container(fast, resolve=False)
    assert composer.templates == {}  # nothing composed ahead of the job


def test_one_template_per_set_of_structural_overrides(loader_and_master):
    loader, master = loader_and_master
    composer = JobComposer(loader, master)
    for lr in (0.01, 0.02, 0.03):
        cfg = composer.plan([f"model.learning_rate={lr}", "tuner=lightgbm", f"++hydra.job.env_set.N='{lr}'"]).config(
            0, in_place=False
        )
        assert cfg.model.learning_rate == lr and cfg.hydra.job.env_set.N == str(lr)
    assert len(composer.templates) == 1
    composer.plan(["model=linear", "model.alpha=1.0", "tuner=lightgbm"])
    assert len(composer.templates) == 2


def test_a_bad_value_override_fails_as_in_hydra(loader_and_master):
    loader, master = loader_and_master
    with pytest.raises(ConfigCompositionException, match="Could not override 'model.no_such_key'"):
        loader.load_sweep_config(master, ["model.no_such_key=1", "tuner=lightgbm"])
    planned = JobComposer(loader, master).plan(["model.no_such_key=1", "tuner=lightgbm"])
    with pytest.raises(ConfigCompositionException, match="Could not override 'model.no_such_key'"):
        planned.config(0, in_place=False)


@pytest.mark.parametrize("model", ["gru", "alstm"])
def test_a_sequence_model_gets_alpha360_unless_a_handler_is_chosen(loader_and_master, model):
    from hydra import compose

    def handler(*overrides):
        cfg = OmegaConf.to_container(compose("config", list(overrides)), resolve=True)["handler"]
        return cfg["features"]["name"], [p["name"] for p in cfg["processors"]]

    # Qlib's benchmark layout: 6 series x 60 days, RobustZScoreNorm then Fillna
    assert handler(f"model={model}") == ("alpha360", ["robust_zscore_norm", "fillna"])
    assert handler(f"model={model}", "handler.features.window=30") == ("alpha360", ["robust_zscore_norm", "fillna"])
    # a handler the user chose wins, wherever it stands on the command line
    assert handler(f"model={model}", "handler=alpha158", "model.window=20")[0] == "alpha158"
    assert handler("handler=alpha158", f"model={model}")[0] == "alpha158"
    # the other models keep the default handler
    assert handler("model=lightgbm")[0] == handler("model=mlp")[0] == "alpha158"
