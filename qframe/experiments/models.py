"""A recorded run's model rebuilt from the native files its plugin saved (``save`` of qframe/plugins/models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qframe.core.errors import DataError


def load_model(directory: Path, params: dict[str, str]) -> Any:
    """LightGBM (``model.lgb.txt``), ridge (``model.linear.json``) or torch (``model.json`` + ``model.pt``, read
    with ``weights_only=True``): an object whose ``predict`` (``predict_panel`` for torch) gives the run's scores."""
    directory = Path(directory)
    if (directory / "model.lgb.txt").is_file():
        from qframe.plugins.models.lightgbm import LightGBMModel, lgb  # lgb: lightgbm, imported the light way

        model = LightGBMModel()
        model.booster = lgb.Booster(model_file=str(directory / "model.lgb.txt"))
        return model
    if (directory / "model.linear.json").is_file():
        import numpy as np

        from qframe.plugins.models.linear import LinearModel

        state = json.loads((directory / "model.linear.json").read_text())
        model = LinearModel(alpha=state["alpha"])
        for key in ("mean_", "scale_", "coef_"):
            setattr(model, key, np.asarray(state[key], dtype=np.float64))
        model.intercept_ = float(state["intercept_"])
        return model
    if (directory / "model.pt").is_file() and (directory / "model.json").is_file():
        from qframe.plugins.models.torch_models import load_model as load_torch

        return load_torch(directory)
    files = sorted(p.name for p in directory.iterdir())
    raise DataError(
        f"the run's model ({params.get('model.name') or params.get('model._target_', '?')}) is saved as "
        f"{', '.join(files) or 'nothing'}: qframe loads LightGBM, ridge and its torch models; read the files yourself"
    )
