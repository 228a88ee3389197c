"""Built-in data processors (Qlib's DropnaLabel, Fillna, CSRankNorm, CSZScoreNorm, ZScoreNorm, RobustZScoreNorm,
FilterCol)."""

from __future__ import annotations

from qframe.core.hookspecs import hookimpl
from qframe.plugins.processors.processors import (
    CSRankNorm,
    CSZScoreNorm,
    DropnaLabel,
    Fillna,
    FilterCol,
    RobustZScoreNorm,
    ZScoreNorm,
)


@hookimpl
def register_processors(register):
    register("dropna_label", DropnaLabel, "Drop rows whose label is NaN (learn segments only)")
    register("fillna", Fillna, "Replace NaN with a constant (default 0)")
    register("cs_rank_norm", CSRankNorm, "Per-date percentile rank, centred and scaled to unit variance")
    register("cs_zscore_norm", CSZScoreNorm, "Per-date z-score (or robust median/MAD z-score)")
    register("zscore_norm", ZScoreNorm, "Z-score with mean/std fitted on the train segment")
    register("robust_zscore_norm", RobustZScoreNorm, "Median/MAD z-score fitted on the train segment, clipped to +-3")
    register("filter_col", FilterCol, "Keep only the features named in col_list (in their column order)")
