"""The networks of the torch models: an MLP (Qlib's DNNModelPytorch), a GRU and an attention LSTM (Qlib's ALSTM).

Each network is built from a plain JSON-able config (``build_net``), so a saved model is
its state_dict plus that config, never a pickled module. Sequence networks take
``(batch, days, d_feat)``, oldest day first.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

ACTIVATIONS = {"leaky_relu": lambda: nn.LeakyReLU(0.1), "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


class MLPNet(nn.Module):
    """Input dropout, then per hidden layer Linear -> (BatchNorm) -> activation -> (dropout), then Linear -> 1."""

    def __init__(
        self,
        input_dim: int,
        hidden_sizes: list[int],
        activation: str = "leaky_relu",
        dropout: float = 0.05,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        width = input_dim
        for size in hidden_sizes:
            layers.append(nn.Linear(width, size))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(-1)


class GRUNet(nn.Module):
    """A stacked GRU over the days; the last day's hidden state -> Linear -> 1 (Qlib's GRU)."""

    def __init__(self, d_feat: int, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.rnn = nn.GRU(d_feat, hidden_size, num_layers=num_layers, batch_first=True, dropout=dropout)
        self.fc_out = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc_out(out[:, -1, :]).squeeze(-1)


class ALSTMNet(nn.Module):
    """Qlib's ALSTM: Linear+tanh input map, a recurrent layer, temporal attention; last state ++ attended state -> 1."""

    def __init__(
        self, d_feat: int, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0, rnn_type: str = "gru"
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_feat, hidden_size), nn.Tanh())
        rnn = nn.GRU if rnn_type == "gru" else nn.LSTM
        self.rnn = rnn(hidden_size, hidden_size, num_layers=num_layers, batch_first=True, dropout=dropout)
        self.att_net = nn.Sequential(
            nn.Linear(hidden_size, hidden_size // 2),
            nn.Dropout(dropout),
            nn.Tanh(),
            nn.Linear(hidden_size // 2, 1, bias=False),
            nn.Softmax(dim=1),
        )
        self.fc_out = nn.Linear(hidden_size * 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.net(x))
        attended = torch.sum(out * self.att_net(out), dim=1)
        return self.fc_out(torch.cat((out[:, -1, :], attended), dim=1)).squeeze(-1)


def build_net(kind: str, spec: dict[str, Any]) -> nn.Module:
    """The network of ``kind`` ("mlp", "gru", "alstm") from its JSON config."""
    if kind == "mlp":
        return MLPNet(
            spec["input_dim"], list(spec["hidden_sizes"]), spec["activation"], spec["dropout"], spec["batch_norm"]
        )
    if kind == "gru":
        return GRUNet(spec["d_feat"], spec["hidden_size"], spec["num_layers"], spec["dropout"])
    if kind == "alstm":
        return ALSTMNet(spec["d_feat"], spec["hidden_size"], spec["num_layers"], spec["dropout"], spec["rnn_type"])
    raise ValueError(f"unknown network kind {kind!r}")
