"""Processors with Qlib's semantics, vectorised over the panel.

Stateless processors (cross-sectional ones, Fillna, DropnaLabel) need no fit;
stateful ones learn their parameters in :meth:`fit`, which the handler calls
on the train segment only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qframe.core.errors import ConfigError
from qframe.core.panel import Panel

_FIELDS = ("feature", "label")


class Processor:
    """Base class: ``fit`` on train, ``transform`` any segment."""

    stateful = False

    def __init__(self, fields: str = "feature") -> None:
        if fields not in _FIELDS:
            valid = ", ".join(_FIELDS)
            raise ConfigError(f"processor {type(self).__name__}: fields={fields!r}; valid options: {valid}")
        self.fields = fields

    def fit(self, panel: Panel) -> None:  # noqa: B027 - stateless processors have nothing to fit
        """Learn parameters from the train segment."""

    def transform(self, panel: Panel) -> Panel:
        values = panel.X if self.fields == "feature" else panel.y[:, None]
        out = self._apply(values.astype(np.float32, copy=True), panel)
        if self.fields == "feature":
            return Panel(out, panel.y, panel.day, panel.inst, panel.names, panel.calendar, panel.instruments)
        return Panel(panel.X, out[:, 0], panel.day, panel.inst, panel.names, panel.calendar, panel.instruments)

    def _apply(self, values: np.ndarray, panel: Panel) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        """Fitted parameters (empty for stateless processors)."""
        return {}


class DropnaLabel(Processor):
    """Drop rows whose label is NaN; Qlib applies it to the learn segments only."""

    def __init__(self, fields: str = "label") -> None:
        super().__init__(fields)

    def transform(self, panel: Panel) -> Panel:
        keep = ~np.isnan(panel.y)
        return panel if keep.all() else panel.subset(keep)


class Fillna(Processor):
    """Replace NaN with ``fill_value``."""

    def __init__(self, fields: str = "feature", fill_value: float = 0.0) -> None:
        super().__init__(fields)
        self.fill_value = float(fill_value)

    def _apply(self, values: np.ndarray, panel: Panel) -> np.ndarray:
        np.nan_to_num(values, copy=False, nan=self.fill_value)
        return values


def _group_nanmean_std(values: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-date NaN-aware mean and std (ddof=1, as pandas) of each column; rows sorted by date."""
    finite = ~np.isnan(values)
    filled = np.where(finite, values, 0).astype(np.float64)
    starts = bounds[:-1]
    count = np.add.reduceat(finite, starts, axis=0).astype(np.float64)
    total = np.add.reduceat(filled, starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        sizes = np.diff(bounds)
        centred = np.where(finite, filled - np.repeat(mean, sizes, axis=0), 0)
        var = np.add.reduceat(centred * centred, starts, axis=0) / (count - 1)
    return mean, np.sqrt(var)


class CSZScoreNorm(Processor):
    """Per-date z-score: (x - mean) / std, or with ``method="robust"`` (x - median) / (1.4826 * MAD)."""

    def __init__(self, fields: str = "feature", method: str = "zscore") -> None:
        super().__init__(fields)
        if method not in ("zscore", "robust"):
            raise ConfigError(f"cs_zscore_norm: method={method!r}; valid options: zscore, robust")
        self.method = method

    def _apply(self, values: np.ndarray, panel: Panel) -> np.ndarray:
        bounds = panel.date_bounds()
        sizes = np.diff(bounds)
        if self.method == "zscore":
            mean, std = _group_nanmean_std(values, bounds)
            with np.errstate(invalid="ignore", divide="ignore"):
                return ((values - np.repeat(mean, sizes, axis=0)) / np.repeat(std, sizes, axis=0)).astype(np.float32)
        frame = pd.DataFrame(values)
        keys = np.repeat(np.arange(len(sizes)), sizes)
        median = frame.groupby(keys).transform("median").to_numpy()
        mad = pd.DataFrame(np.abs(values - median)).groupby(keys).transform("median").to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            return ((values - median) / (mad * 1.4826)).astype(np.float32)


class CSRankNorm(Processor):
    """Per-date percentile rank, centred and scaled: (rank_pct - 0.5) * 3.46 (unit variance for uniform ranks)."""

    def _apply(self, values: np.ndarray, panel: Panel) -> np.ndarray:
        ranks = pd.DataFrame(values).groupby(panel.day).rank(pct=True).to_numpy()
        return ((ranks - 0.5) * 3.46).astype(np.float32)


class ZScoreNorm(Processor):
    """(x - mean) / std with mean and std (ddof=0) fitted on the train segment."""

    stateful = True

    def fit(self, panel: Panel) -> None:
        values = panel.X if self.fields == "feature" else panel.y[:, None]
        self.mean_ = np.nanmean(values, axis=0, dtype=np.float64)
        std = np.nanstd(values, axis=0, dtype=np.float64)
        self.std_ = np.where((std == 0) | np.isnan(std), 1.0, std)

    def _apply(self, values: np.ndarray, panel: Panel) -> np.ndarray:
        if not hasattr(self, "mean_"):
            raise RuntimeError("ZScoreNorm.transform called before fit")
        return ((values - self.mean_) / self.std_).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "std": self.std_}


class RobustZScoreNorm(Processor):
    """(x - median) / (1.4826 * MAD) fitted on the train segment, clipped to [-3, 3] by default."""

    stateful = True

    def __init__(self, fields: str = "feature", clip_outlier: bool = True) -> None:
        super().__init__(fields)
        self.clip_outlier = bool(clip_outlier)

    def fit(self, panel: Panel) -> None:
        values = panel.X if self.fields == "feature" else panel.y[:, None]
        self.median_ = np.nanmedian(values, axis=0).astype(np.float64)
        self.scale_ = (np.nanmedian(np.abs(values - self.median_), axis=0) + 1e-12) * 1.4826

    def _apply(self, values: np.ndarray, panel: Panel) -> np.ndarray:
        if not hasattr(self, "median_"):
            raise RuntimeError("RobustZScoreNorm.transform called before fit")
        out = (values - self.median_) / self.scale_
        if self.clip_outlier:
            np.clip(out, -3, 3, out=out)
        return out.astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"median": self.median_, "scale": self.scale_}


class FilterCol(Processor):
    """Keep only the features named in ``col_list``, in the panel's column order (Qlib's FilterCol).

    A name the panel lacks is a :class:`ConfigError` (Qlib ignores it silently; a typo would shrink the model's
    input without a word).
    """

    def __init__(self, col_list: list[str] | tuple[str, ...] = (), fields: str = "feature") -> None:
        super().__init__(fields)
        if fields != "feature":
            raise ConfigError("processor FilterCol: fields must be 'feature' (it selects feature columns)")
        self.col_list = [str(c) for c in col_list]
        if not self.col_list:
            raise ConfigError("processor FilterCol: col_list is empty; name the features to keep")

    def transform(self, panel: Panel) -> Panel:
        missing = [c for c in self.col_list if c not in panel.names]
        if missing:
            raise ConfigError(
                f"processor FilterCol: {', '.join(missing)} not among the {len(panel.names)} features; "
                "check handler.features (windows, include) or the col_list"
            )
        wanted = set(self.col_list)
        keep = [j for j, name in enumerate(panel.names) if name in wanted]
        if len(keep) == len(panel.names):
            return panel
        names = [panel.names[j] for j in keep]
        return Panel(panel.X[:, keep], panel.y, panel.day, panel.inst, names, panel.calendar, panel.instruments)
