"""Built-in models: LightGBM (Qlib's benchmark defaults) and ridge regression."""

from __future__ import annotations

from qframe.core.hookspecs import hookimpl


def _lightgbm(**params):
    # imported on use: lightgbm (and the scikit-learn it pulls in) costs ~1.5 s to import
    from qframe.plugins.models.lightgbm import LightGBMModel

    return LightGBMModel(**params)


def _linear(**params):
    from qframe.plugins.models.linear import LinearModel

    return LinearModel(**params)


def _torch_model(kind: str):
    # torch (~1 s to import) is loaded only when a torch model is created
    def create(**params):
        try:
            from qframe.plugins.models.torch_models import MODELS
        except ImportError as exc:
            from qframe.core.errors import ConfigError

            raise ConfigError(
                f"model {kind!r} needs PyTorch ({exc}); install it with: pip install -c constraints.txt 'qframe[torch]'"
            ) from exc
        return MODELS[kind](**params)

    return create


@hookimpl
def register_models(register):
    register("lightgbm", _lightgbm, "LightGBM gradient-boosted trees, early-stopped on the valid segment")
    register("linear", _linear, "Ridge regression on standardised features (closed form, fast)")
    register("mlp", _torch_model("mlp"), "PyTorch MLP (Qlib's DNNModelPytorch) on feature rows")
    register("gru", _torch_model("gru"), "PyTorch GRU over the last days (Alpha360 layout or model.window)")
    register("alstm", _torch_model("alstm"), "PyTorch attention LSTM (Qlib's ALSTM) over the last days")
