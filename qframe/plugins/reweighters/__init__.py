"""Built-in sample reweighters: ``none``, ``time_decay`` and ``equal_instrument`` (Qlib's ``Reweighter``)."""

from __future__ import annotations

from qframe.core.hookspecs import hookimpl
from qframe.plugins.reweighters.reweighters import EqualInstrument, NoReweighting, TimeDecay


@hookimpl
def register_reweighters(register):
    register("none", NoReweighting, "Every train row weighs the same (the default)")
    register("time_decay", TimeDecay, "Weight halves every half_life_days trading days back from the train end")
    register("equal_instrument", EqualInstrument, "Every instrument's rows weigh the same in total (1/n_i a row)")
