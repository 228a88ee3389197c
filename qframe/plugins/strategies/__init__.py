"""Built-in strategies."""

from __future__ import annotations

from qframe.core.hookspecs import hookimpl
from qframe.plugins.strategies.topk_dropout import TopkDropoutStrategy


@hookimpl
def register_strategies(register) -> None:
    register(
        "topk_dropout",
        TopkDropoutStrategy,
        "Qlib's TopK-dropout: hold the top-k scored names, swap at most n_drop a day (daily backtest)",
    )
