"""``_target_`` components (Hydra's convention) through the real ``qframe`` command, beside registered names.

The classes live in ``tests/adhoc_components.py``, put on the subprocess's PYTHONPATH: an importable module, no
plugin, no entry point.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import SMALL, qframe, runs_in

HERE = Path(__file__).resolve().parent
SYNTHETIC = "qframe.plugins.datasets.synthetic.SyntheticDataset"
TOPK = "qframe.plugins.strategies.topk_dropout.TopkDropoutStrategy"


def test_target_model_dataset_strategy_processor_and_recorder_in_one_run(tmp_path):
    run_id_file = tmp_path / "run_id.txt"
    proc = qframe(
        [
            "~dataset",
            f"+dataset={{_target_:{SYNTHETIC},n_instruments:40,n_days:320}}",
            "~model",
            "+model={_target_:adhoc_components.MeanOfFeatures,sign:-1}",
            "model.sign=2",  # a key of the inline section, overridden as any other
            "~strategy",
            f"+strategy={{_target_:{TOPK},topk:5,n_drop:1}}",
            "handler.processors=[{_target_:adhoc_components.Demean},fillna]",
            f"recorders=[{{_target_:adhoc_components.RunIdFile,path:{run_id_file}}},csv_log]",
        ],
        cwd=tmp_path,
        pythonpath=HERE,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = runs_in(tmp_path / ".qframe" / "mlflow.db")[1]
    assert run_id_file.read_text() == run.info.run_id  # the _target_ recorder ran with the result
    params = run.data.params
    assert params["model._target_"] == "adhoc_components.MeanOfFeatures" and params["model.sign"] == "2"
    assert params["fit.flip"] in ("1.0", "-1.0")  # the model's own info(): it was fitted
    assert params["dataset._target_"] == SYNTHETIC and params["strategy._target_"] == TOPK
    # the built-in csv_log names a _target_ component by its path
    row = (tmp_path / ".qframe" / "runs.csv").read_text().splitlines()[1]
    assert f",{SYNTHETIC},adhoc_components.MeanOfFeatures,{TOPK}," in row


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["~model", "+model={_target_:adhoc_components.NoSuchModel}"],
            "model._target_='adhoc_components.NoSuchModel': adhoc_components has no attribute 'NoSuchModel'",
        ),
        (
            ["~model", "+model={_target_:adhoc_components.MeanOfFeaturse}"],
            "adhoc_components has no attribute 'MeanOfFeaturse'; did you mean adhoc_components.MeanOfFeatures?",
        ),
        (
            ["~model", "+model={_target_:no_such_package.models.Ridge}"],
            "model._target_='no_such_package.models.Ridge': cannot import no_such_package: "
            "No module named 'no_such_package'",
        ),
        (
            ["~model", "+model={_target_:Ridge}"],
            "model._target_='Ridge' is not a dotted path module.Name (e.g. my_package.models.MyModel)",
        ),
        (
            ["~model", "+model={_target_:adhoc_components.NoPredict}"],
            "model 'adhoc_components.NoPredict' (model._target_) does not follow the Model contract: "
            "no method predict (or predict_panel); see qframe.core.contracts.Model and docs/plugins.md",
        ),
        (
            ["~model", "+model={_target_:adhoc_components.MeanOfFeatures,sing:1}"],
            "unknown parameter model.sing of model 'adhoc_components.MeanOfFeatures'; did you mean model.sign?",
        ),
        (
            ["~model", "+model={_target_:adhoc_components.RunIdFile}"],
            "does not follow the Model contract: no method fit (or fit_panel)",
        ),
        (
            ["recorders=[{_target_:adhoc_components.RunIdFile}]"],
            "recorder 'adhoc_components.RunIdFile' needs recorders[0].path, which is not set: add "
            "recorders[0].path=<value>",
        ),
        (
            ["handler.processors=[{_target_:adhoc_components.Demean,_partial_:true}]"],
            "handler.processors[0]._partial_ is not supported",
        ),
        (
            ["model={_target_:adhoc_components.MeanOfFeatures}"],
            "model={_target_:adhoc_components.MeanOfFeatures} gives the model section inline: delete the chosen "
            "model option first, '~model' '+model={_target_:adhoc_components.MeanOfFeatures}'",
        ),
        (
            ["model=linear", "+model._target_=adhoc_components.MeanOfFeatures"],
            "model sets both name='linear' and _target_='adhoc_components.MeanOfFeatures'; keep one",
        ),
    ],
    ids=[
        "no-attribute",
        "typo",
        "no-module",
        "not-dotted",
        "breaks-contract",
        "unknown-param",
        "wrong-kind",
        "missing-param",
        "hydra-only-key",
        "inline-without-delete",
        "name-and-target",
    ],
)
def test_a_bad_target_is_one_line_and_exit_2(tmp_path, args, message):
    proc = qframe([*SMALL, *args], cwd=tmp_path, pythonpath=HERE)
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("qframe: error: ") and message in line, line
    if not args[0].startswith("handler."):  # processors are made with the features, once the market is loaded
        assert not (tmp_path / ".qframe" / "cache").exists()  # refused before any data was read
