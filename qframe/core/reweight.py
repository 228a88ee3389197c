"""Sample weights for the fit: the ``reweighter`` section, the check that the model takes them, and the weights.

A reweighter (:class:`~qframe.core.contracts.Reweighter`, registered by ``register_reweighters``) returns raw
relative weights for the train rows; :func:`sample_weights` checks them and scales them to mean 1. The model gets
them as its fit's ``sample_weight`` keyword; the valid rows stay unweighted (see :func:`sample_weights`).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from qframe.core.components import build_component
from qframe.core.errors import ConfigError
from qframe.core.registry import Registry

#: the reweighter of a config without a ``reweighter`` section: no weights, the fit unchanged
NONE = "none"
#: the keyword a model's ``fit`` / ``fit_panel`` names to take the weights
KEYWORD = "sample_weight"


def build_reweighter(cfg: dict[str, Any], registry: Registry) -> tuple[str, Any]:
    """(name, reweighter) of ``cfg``'s ``reweighter`` section (``none`` when it has none), made and checked."""
    return build_component(registry, "reweighter", cfg.get("reweighter") or NONE, "reweighter")


def fit_method(model: Any) -> Any:
    """The method the workflow fits ``model`` with: ``fit_panel`` when it has one, else ``fit``."""
    return getattr(model, "fit_panel", None) or model.fit


def takes_weights(model: Any) -> bool:
    """Whether ``model``'s fit method names a ``sample_weight`` parameter (``**kwargs`` does not count: a model
    that swallowed the weights unread would be a weighted run that is not one)."""
    try:
        return KEYWORD in inspect.signature(fit_method(model)).parameters
    except (TypeError, ValueError):
        return False


def check_model(model: Any, model_name: str, reweighter_name: str) -> None:
    """Refuse, before any data is read, a reweighter other than ``none`` for a model whose fit takes no weights:
    silently ignoring them would record a weighted run that was not weighted."""
    if reweighter_name == NONE or takes_weights(model):
        return
    method = "fit_panel" if hasattr(model, "fit_panel") else "fit"
    raise ConfigError(
        f"reweighter={reweighter_name}: model {model_name!r} cannot take sample weights (its {method} has no "
        f"{KEYWORD} parameter); use reweighter=none, or a model that honours them (lightgbm, linear, mlp, gru, alstm)"
    )


def sample_weights(reweighter: Any, reweighter_name: str, train: Any) -> np.ndarray | None:
    """The weights of ``train``'s rows from ``reweighter``, scaled to mean 1 over its labelled rows; None when it
    weighs nothing (``none``).

    Mean 1 keeps a weighted fit on the scale of the unweighted one: the loss, the gradient steps of a learning rate,
    LightGBM's hessian-based limits (``min_sum_hessian_in_leaf``, the L1/L2 penalties) and the ridge ``alpha`` mean
    what they mean without weights, and weights that are all equal give exactly the unweighted fit. Only the train
    rows are weighted: the valid segment judges early stopping on the out-of-sample data as the test segment is
    judged (every day and instrument alike), and a time decay measured from the train span's end means nothing there.
    """
    raw = reweighter.reweight(train)
    if raw is None:
        return None
    owner = f"reweighter {reweighter_name!r}"
    weights = np.asarray(raw, dtype=np.float64)
    if weights.shape != (len(train),):
        raise ConfigError(f"{owner} returned weights of shape {weights.shape} for {len(train):,} train rows; "
                          "it must return one weight per row")  # fmt: skip
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ConfigError(f"{owner} returned a weight that is negative, NaN or infinite; weights must be finite "
                          "and >= 0")  # fmt: skip
    labelled = np.isfinite(train.y)
    total = float(weights[labelled].sum())
    if not total > 0:
        raise ConfigError(f"{owner} gave every labelled train row weight 0: nothing would be fitted; check its "
                          "settings (reweighter.*)")  # fmt: skip
    return weights * (labelled.sum() / total)


def summary(weights: np.ndarray | None, train: Any) -> dict[str, float]:
    """What the weights did, for the run's ``fit.*`` params: the effective sample size against the rows."""
    if weights is None:
        return {}
    w = weights[np.isfinite(train.y)]
    # Kish's effective sample size: how many equally weighted rows the weighted fit is worth
    effective = float(w.sum() ** 2 / (w * w).sum()) if len(w) else 0.0
    return {"weights_min": round(float(w.min()), 6), "weights_max": round(float(w.max()), 6),
            "weights_effective_rows": round(effective, 1)}  # fmt: skip
