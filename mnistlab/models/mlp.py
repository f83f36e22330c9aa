"""The multilayer perceptron: 784 (channels x image size^2) -> 128 -> 64 -> 10 by default."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from mnistlab.errors import ConfigError
from mnistlab.models.layers import ACTIVATIONS, choice, name_layers


class MLP(nn.Module):
    """Fully connected network 784 (channels x image size^2) -> hidden... -> 10 (classes); dropout after each hidden activation."""

    def __init__(
        self,
        hidden: Sequence[int] = (128, 64),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
    ):
        super().__init__()
        act = choice("model.activation", activation, ACTIVATIONS)
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ConfigError(f"model.hidden must be a non-empty list of positive sizes, got {list(hidden)}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * image_size * image_size
        for size in map(int, hidden):
            layers.append(nn.Linear(width, size, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers += [act(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)
        name_layers(self, [f"fc{i + 1}" for i in range(len(hidden))] + ["out"])

    def forward(self, x):
        return self.net(x)
