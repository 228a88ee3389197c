"""Ask/tell over hyperopt: one suggestion at a time, pending trials known to the algorithm, failures never told.

hyperopt has no public ask/tell API; this drives its ``suggest`` functions the way ``fmin`` does internally: a
``Trials`` object holds every trial document, pending ones in state RUNNING (TPE treats them as "taken"), finished
ones DONE with ``{"status": "ok", "loss": ...}``. A failed trial is stored in state ERROR, which ``Trials.refresh``
drops, so no loss of a failed trial ever reaches the algorithm. After its start-up phase ``tpe.suggest`` returns one
document per call, so asking is one call per trial.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qframe.core.errors import ConfigError
from qframe.tuning.space import Space


def resolve_backend(name: str, n_startup_trials: int | None) -> Callable:
    """The search algorithm of the registered tuner backend ``name`` (ConfigError listing the valid ones).

    The backend is called as its contract (:class:`qframe.core.contracts.TunerBackend`) says: with keyword
    arguments only, each one it takes.
    """
    from qframe.core.registry import accepted_parameters, get_registry

    registry = get_registry()
    try:
        item = registry.get("tuner_backend", name)
    except ConfigError as exc:
        raise ConfigError(f"hydra.sweeper.algo: {exc}") from None
    settings = {"n_startup_trials": n_startup_trials}
    accepted = accepted_parameters(item.obj)
    taken = settings if accepted is None else {k: v for k, v in settings.items() if k in accepted}
    return registry.create("tuner_backend", name, config_key="hydra.sweeper", **taken)


class Optimizer:
    """hyperopt Trials + a suggest function, driven one trial at a time."""

    def __init__(self, space: Space, suggest: Callable, seed: int) -> None:
        import logging

        from hyperopt import Trials
        from hyperopt.base import Domain

        # hyperopt logs every suggestion at INFO ("TPE using 3/3 trials..."): noise next to the progress line
        logging.getLogger("hyperopt").setLevel(logging.WARNING)

        self.space = space
        self.expr = space.hyperopt()
        self.domain = Domain(lambda _: 0.0, self.expr)
        self.trials = Trials()
        self.suggest = suggest
        self.seed = int(seed)

    def _labels(self) -> list[str]:
        return [p.key for p in self.space.params]

    def ask(self, tid: int) -> tuple[dict[str, Any], dict[str, list]]:
        """Suggest trial ``tid``: (its parameters, typed, by override key; hyperopt's raw ``vals`` to store, from
        which :meth:`params_of` rebuilds them)."""
        import numpy as np

        # a seed per trial id: a resumed sweep draws what an uninterrupted one would have drawn next
        rng = np.random.default_rng([self.seed, tid])
        self.trials.refresh()
        docs = self.suggest([tid], self.domain, self.trials, int(rng.integers(2**31 - 1)))
        if not docs:
            raise RuntimeError("the search algorithm returned no suggestion")
        doc = docs[0]
        vals = {k: [_plain(x) for x in v] for k, v in doc["misc"]["vals"].items()}
        self._insert(tid, vals, state="running")
        return self.params_of(vals), vals

    def params_of(self, vals: dict[str, list]) -> dict[str, Any]:
        """A trial's parameters by override key, typed (choice indices resolved to the chosen values, ints as
        int), from hyperopt's raw ``vals`` (label -> list of at most one raw value)."""
        from hyperopt import space_eval

        point = {k: v[0] for k, v in vals.items() if v}
        evaluated = space_eval(self.expr, point)
        return {p.key: p.cast(evaluated[p.key]) for p in self.space.params}

    def _insert(self, tid: int, vals: dict[str, list], state: str, loss: float | None = None) -> None:
        from hyperopt import JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_RUNNING, STATUS_FAIL, STATUS_OK, STATUS_RUNNING

        idxs = {k: ([tid] if v else []) for k, v in vals.items()}
        misc = {"tid": tid, "cmd": self.domain.cmd, "workdir": None, "idxs": idxs, "vals": vals}
        if state == "ok":
            result, code = {"status": STATUS_OK, "loss": float(loss)}, JOB_STATE_DONE
        elif state == "failed":
            result, code = {"status": STATUS_FAIL}, JOB_STATE_ERROR
        else:
            result, code = {"status": STATUS_RUNNING}, JOB_STATE_RUNNING
        (doc,) = self.trials.new_trial_docs([tid], [None], [result], [misc])
        doc["state"] = code
        self.trials.insert_trial_doc(doc)
        self.trials.refresh()

    def tell(self, tid: int, loss: float | None) -> None:
        """Finish trial ``tid`` with ``loss`` (None: failed, hidden from the algorithm)."""
        from hyperopt import JOB_STATE_DONE, JOB_STATE_ERROR, STATUS_FAIL, STATUS_OK

        for doc in self.trials._dynamic_trials:
            if doc["tid"] == tid:
                if loss is None:
                    doc["state"], doc["result"] = JOB_STATE_ERROR, {"status": STATUS_FAIL}
                else:
                    doc["state"], doc["result"] = JOB_STATE_DONE, {"status": STATUS_OK, "loss": float(loss)}
                break
        self.trials.refresh()

    def restore(self, tid: int, vals: dict[str, list], loss: float | None, running: bool = False) -> None:
        """Re-insert a trial from saved state (resume)."""
        if running:
            self._insert(tid, vals, "running")
        elif loss is None:
            self._insert(tid, vals, "failed")
        else:
            self._insert(tid, vals, "ok", loss)


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x
