"""The objectives of the torch models: the training loss of a batch (torch) and the validation scores (numpy).

The validation IC is the evaluation's own (:func:`qframe.core.evaluation.mean_daily_ic`), so early stopping on
``ic`` watches the number the test segment is judged by. ``loss: ic`` trains on :func:`ic_loss`, the same
per-day Pearson correlation written in torch so that it stays differentiable.
"""

from __future__ import annotations

import numpy as np
import torch

from qframe.core.evaluation import mean_daily_ic

LOSSES = ("mse", "ic")


def ic_loss(
    pred: torch.Tensor, y: torch.Tensor, group: torch.Tensor, n_groups: int, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Minus the mean per-group Pearson correlation of ``pred`` and ``y`` (``group`` codes in [0, n_groups)).

    Groups of fewer than 2 rows are left out; a small epsilon keeps a group without spread finite. With ``weight``
    (one per row), each group's correlation is the weighted one and the groups are averaged weighted by their rows'
    mean weight, so weights all equal give the unweighted loss and a time decay weighs whole days.
    """
    ones = torch.ones_like(pred)
    count = torch.zeros(n_groups, dtype=pred.dtype, device=pred.device).index_add_(0, group, ones)
    if weight is None:
        mean_p = torch.zeros_like(count).index_add_(0, group, pred) / count
        mean_y = torch.zeros_like(count).index_add_(0, group, y) / count
        dp, dy = pred - mean_p[group], y - mean_y[group]
        cov = torch.zeros_like(count).index_add_(0, group, dp * dy)
        var_p = torch.zeros_like(count).index_add_(0, group, dp * dp)
        var_y = torch.zeros_like(count).index_add_(0, group, dy * dy)
        corr = cov / torch.sqrt(var_p * var_y + 1e-12)
        return -corr[count >= 2].mean()
    weight = weight.to(pred.dtype)
    total = torch.zeros_like(count).index_add_(0, group, weight)
    safe = total.clamp_min(1e-12)  # a group of zero weight: its correlation is left out below
    mean_p = torch.zeros_like(count).index_add_(0, group, weight * pred) / safe
    mean_y = torch.zeros_like(count).index_add_(0, group, weight * y) / safe
    dp, dy = pred - mean_p[group], y - mean_y[group]
    cov = torch.zeros_like(count).index_add_(0, group, weight * dp * dy)
    var_p = torch.zeros_like(count).index_add_(0, group, weight * dp * dp)
    var_y = torch.zeros_like(count).index_add_(0, group, weight * dy * dy)
    corr = cov / torch.sqrt(var_p * var_y + 1e-12)
    keep = (count >= 2) & (total > 0)
    group_weight = total[keep] / count[keep]
    return -(corr[keep] * group_weight).sum() / group_weight.sum()


def training_loss(
    pred: torch.Tensor, y: torch.Tensor, day: np.ndarray | None, loss: str, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """The ``loss`` ("mse" or "ic") of one batch; ``day`` holds its rows' day codes (None: one cross-section).

    ``weight`` (one per row; None: alike) makes the mse the weighted mean ``sum w (pred - y)^2 / sum w`` of the
    batch (on the scale of the unweighted loss whatever the batch's weights add up to, so a learning rate means the
    same with and without weights), and the ic loss the weighted one of :func:`ic_loss`.
    """
    if loss == "ic":
        if day is None:
            day = np.zeros(len(pred), dtype=np.int64)
        _, group = np.unique(day, return_inverse=True)
        codes = torch.from_numpy(group.astype(np.int64)).to(pred.device)
        return ic_loss(pred, y, codes, int(group.max()) + 1, weight)
    if weight is None:
        return torch.mean((pred - y) ** 2)
    weight = weight.to(pred.dtype)
    return torch.sum(weight * (pred - y) ** 2) / weight.sum().clamp_min(1e-12)


def validation_scores(pred: np.ndarray, y: np.ndarray, day: np.ndarray | None, loss: str) -> tuple[float, float]:
    """(valid loss, valid mean daily IC) of predictions on the labelled rows; for ``loss: ic`` the loss is -IC."""
    ic = mean_daily_ic(pred, y, day)
    if loss == "ic":
        return -ic, ic
    y = y.astype(np.float64)
    ok = np.isfinite(y)
    mse = float(np.mean((pred[ok] - y[ok]) ** 2)) if ok.any() else float("nan")
    return mse, ic
