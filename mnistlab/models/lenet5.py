"""LeNet-5 (LeCun et al. 1998), layer by layer in plain ``nn`` modules."""

from __future__ import annotations

from torch import nn

from mnistlab.errors import ConfigError
from mnistlab.models.layers import ACTIVATIONS, POOLINGS, choice, name_layers


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) on 28x28 input padded by 2 to the paper's 32x32.

    C1 6@5x5 -> S2 pool -> C3 16@5x5 (full connection) -> S4 pool -> C5 120 -> F6 84 -> output 10.
    Other datasets change only the ends: ``in_channels`` of C1, ``num_classes`` outputs, and for another
    ``image_size`` C5 spans S4's larger maps (at 28, the paper's 5x5).
    ``batch_norm`` adds BatchNorm after C1, C3, C5 and F6, before the activation;
    ``dropout`` applies to the inputs of F6 and of the output layer.

    Two exact equivalences make the CPU step faster (benchmarks/throughput.py --models): with max pooling, S2 and
    S4 pool before the activation, since ``act(maxpool(x)) == maxpool(act(x))`` for a non-decreasing activation
    (ReLU, tanh) and the activation then runs on a quarter of the values (average pooling keeps the paper's
    order); and C5, a 5x5 convolution over S4's 5x5 maps, is the matrix product it amounts to, a ``Linear(400, 120)``.
    The weight layers keep their state_dict keys, and a checkpoint holding C5 as a convolution loads reshaped.
    """

    def __init__(
        self,
        activation: str = "relu",
        pooling: str = "max",
        dropout: float = 0.0,
        batch_norm: bool = False,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 28,
    ):
        super().__init__()
        act = choice("model.activation", activation, ACTIVATIONS)
        pool = choice("model.pooling", pooling, POOLINGS)
        side = (image_size // 2 - 4) // 2  # of S4's maps: 5 at 28
        if side < 1:
            raise ConfigError(f"LeNet-5 needs images of at least 12x12, got data.image_size={image_size}")

        def layer(weights: nn.Module, norm: type[nn.Module], width: int, pooled: bool = False) -> list[nn.Module]:
            """Weights, batch norm, activation, and pooling: before the activation where that is exact (max)."""
            modules = [weights, norm(width)] if batch_norm else [weights]
            if not pooled:
                return [*modules, act()]
            return [*modules, pool(2), act()] if pooling == "max" else [*modules, act(), pool(2)]

        c1_s2 = layer(
            nn.Conv2d(in_channels, 6, 5, padding=2, bias=not batch_norm), nn.BatchNorm2d, 6, pooled=True
        )  # C1: 6@28x28, S2: 6@14x14
        c3_s4 = layer(nn.Conv2d(6, 16, 5, bias=not batch_norm), nn.BatchNorm2d, 16, pooled=True)  # C3: 16@10x10, S4: 16@5x5
        c3_s4[-1] = nn.Sequential(c3_s4[-1], nn.Flatten())  # S4's 16@5x5 as the 400 inputs of C5, in the same slot
        c5 = layer(nn.Linear(16 * side * side, 120, bias=not batch_norm), nn.BatchNorm1d, 120)  # C5: 120 units, each over all of S4
        self.features = nn.Sequential(*c1_s2, *c3_s4, *c5)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            *layer(nn.Linear(120, 84, bias=not batch_norm), nn.BatchNorm1d, 84),  # F6
            nn.Dropout(dropout),
            nn.Linear(84, num_classes),  # output
        )
        name_layers(self, ["c1", "c3", "c5", "f6", "out"])
        self.c5_key = f"features.{len(self.features) - len(c5)}.weight"
        self.register_load_state_dict_pre_hook(_c5_as_matrix)

    def forward(self, x):
        return self.classifier(self.features(x))


def _c5_as_matrix(module: LeNet5, state_dict: dict, prefix: str, *args) -> None:
    """A checkpoint that holds C5 as a 120@16x5x5 convolution loads into the Linear(400, 120) it equals."""
    key = prefix + module.c5_key
    if key in state_dict and state_dict[key].dim() == 4:
        state_dict[key] = state_dict[key].flatten(1)
