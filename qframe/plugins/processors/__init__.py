"""Built-in data processors (Qlib's DropnaLabel, Fillna, CSRankNorm, CSZScoreNorm, ZScoreNorm, RobustZScoreNorm,
FilterCol)."""

from __future__ import annotations

from qframe.core.hookspecs import hookimpl
from qframe.core.lazy import lazy


def _processor(cls: str):
    return lazy(f"qframe.plugins.processors.processors:{cls}")


@hookimpl
def register_processors(register):
    register("dropna_label", _processor("DropnaLabel"), "Drop rows whose label is NaN (learn segments only)")
    register("fillna", _processor("Fillna"), "Replace NaN with a constant (default 0)")
    register("cs_rank_norm", _processor("CSRankNorm"), "Per-date percentile rank, centred and scaled to unit variance")
    register("cs_zscore_norm", _processor("CSZScoreNorm"), "Per-date z-score (or robust median/MAD z-score)")
    register("zscore_norm", _processor("ZScoreNorm"), "Z-score with mean/std fitted on the train segment")
    register(
        "robust_zscore_norm",
        _processor("RobustZScoreNorm"),
        "Median/MAD z-score fitted on the train segment, clipped to +-3",
    )
    register("filter_col", _processor("FilterCol"), "Keep only the features named in col_list (in their column order)")
