"""Built-in strategies."""

from __future__ import annotations

from qframe.core.hookspecs import hookimpl
from qframe.core.lazy import lazy


@hookimpl
def register_strategies(register) -> None:
    register(
        "topk_dropout",
        lazy("qframe.plugins.strategies.topk_dropout:TopkDropoutStrategy"),
        "Qlib's TopK-dropout: hold the top-k scored names, swap at most n_drop a day (daily backtest)",
    )
