"""qframe-example-plugin: registers a model, a search space and a recorder through qframe's hooks.

Only light imports here: qframe imports this module whenever it loads plugins (even for ``qframe plugins``).
The model and recorder classes live in their own modules, imported when a run asks for them.
"""

from __future__ import annotations

from qframe.core.hookspecs import hookimpl

#: the sweep space of ``rank_ensemble``, in Hydra's extended override grammar (as ``hydra.sweeper.params`` takes it)
RANK_ENSEMBLE_SPACE = {
    "model.alpha": "tag(log, interval(0.01, 100))",
    "model.n_members": "choice(3, 5, 9)",
    "model.feature_fraction": "interval(0.2, 0.9)",
}


def _rank_ensemble(**params):
    from qframe_example_plugin.model import RankEnsembleModel

    return RankEnsembleModel(**params)


def _jsonl_log(**params):
    from qframe_example_plugin.recorder import JsonlRecorder

    return JsonlRecorder(**params)


@hookimpl
def register_models(register):
    register("rank_ensemble", _rank_ensemble, "Ridge models on random feature subsets, rank-averaged (example plugin)")


@hookimpl
def register_search_spaces(register):
    register("rank_ensemble", RANK_ENSEMBLE_SPACE, "alpha, n_members and feature_fraction of rank_ensemble")


@hookimpl
def register_recorders(register):
    register("jsonl_log", _jsonl_log, "Append one JSON line per run (run id, model, objective, metrics) to a file")
