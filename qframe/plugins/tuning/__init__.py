"""Built-in tuner backends (hyperopt algorithms) and named search spaces for the sweeper.

hyperopt's ATPE is not offered: it fits LightGBM models inside the sweep process, which would start an OpenMP
thread pool there and make every later forked trial hang (GNU libgomp is not fork-safe).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from qframe.core.hookspecs import hookimpl

#: LightGBM hyperparameters (ranges around Qlib's benchmark settings)
LIGHTGBM_SPACE = {
    "model.learning_rate": "tag(log, interval(0.005, 0.3))",
    "model.num_leaves": "int(interval(16, 256))",
    "model.max_depth": "int(interval(3, 12))",
    "model.colsample_bytree": "interval(0.5, 1.0)",
    "model.subsample": "interval(0.5, 1.0)",
    "model.lambda_l1": "tag(log, interval(0.01, 1000.0))",
    "model.lambda_l2": "tag(log, interval(0.01, 1000.0))",
    # not in conf/model/lightgbm.yaml: ++ adds it (LightGBM default 20)
    "++model.min_data_in_leaf": "int(interval(10, 500))",
}

#: TopK-dropout strategy settings
STRATEGY_SPACE = {
    "strategy.topk": "choice(20, 30, 50)",
    "strategy.n_drop": "int(interval(1, 10))",
}


# the backends import hyperopt (~2 s) when a sweep calls them, not when plugins load
def _tpe(n_startup_trials: int | None = None) -> Callable:
    from hyperopt import tpe

    if n_startup_trials is None:
        return tpe.suggest
    return functools.partial(tpe.suggest, n_startup_jobs=n_startup_trials)


def _rand() -> Callable:
    from hyperopt import rand

    return rand.suggest


def _anneal() -> Callable:
    from hyperopt import anneal

    return anneal.suggest


@hookimpl
def register_tuner_backends(register) -> None:
    register("tpe", _tpe, "hyperopt Tree-structured Parzen Estimator (n_startup_trials random trials first)")
    register("rand", _rand, "hyperopt random search")
    register("anneal", _anneal, "hyperopt simulated annealing around the best trials")


@hookimpl
def register_search_spaces(register) -> None:
    register("lightgbm", LIGHTGBM_SPACE, "LightGBM: learning rate, leaves, depth, sampling, L1/L2, min leaf size")
    register("strategy", STRATEGY_SPACE, "TopK-dropout: topk and n_drop")
    register("lightgbm_strategy", {**LIGHTGBM_SPACE, **STRATEGY_SPACE}, "LightGBM and TopK-dropout together")
