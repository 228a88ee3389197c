"""Built-in sample reweighters: ``none``, ``time_decay`` and ``equal_instrument`` (Qlib's ``Reweighter``)."""

from __future__ import annotations

from qframe.core.hookspecs import hookimpl
from qframe.core.lazy import lazy


@hookimpl
def register_reweighters(register):
    module = "qframe.plugins.reweighters.reweighters"
    register("none", lazy(f"{module}:NoReweighting"), "Every train row weighs the same (the default)")
    register(
        "time_decay",
        lazy(f"{module}:TimeDecay"),
        "Weight halves every half_life_days trading days back from the train end",
    )
    register(
        "equal_instrument",
        lazy(f"{module}:EqualInstrument"),
        "Every instrument's rows weigh the same in total (1/n_i a row)",
    )
