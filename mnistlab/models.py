"""LeNet-5, the MLP, and a per-layer parameter table."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from mnistlab.errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
POOLINGS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def _choice(key: str, value: str, choices: dict) -> type[nn.Module]:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(sorted(choices))}, got {value!r}")
    return choices[value]


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
        act = _choice("model.activation", activation, ACTIVATIONS)
        pool = _choice("model.pooling", pooling, POOLINGS)
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
        _name_layers(self, ["c1", "c3", "c5", "f6", "out"])
        self.c5_key = f"features.{len(self.features) - len(c5)}.weight"
        self.register_load_state_dict_pre_hook(_c5_as_matrix)

    def forward(self, x):
        return self.classifier(self.features(x))


def _c5_as_matrix(module: LeNet5, state_dict: dict, prefix: str, *args) -> None:
    """A checkpoint that holds C5 as a 120@16x5x5 convolution loads into the Linear(400, 120) it equals."""
    key = prefix + module.c5_key
    if key in state_dict and state_dict[key].dim() == 4:
        state_dict[key] = state_dict[key].flatten(1)


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
        act = _choice("model.activation", activation, ACTIVATIONS)
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
        _name_layers(self, [f"fc{i + 1}" for i in range(len(hidden))] + ["out"])

    def forward(self, x):
        return self.net(x)


def _name_layers(model: nn.Module, names: list[str]) -> None:
    """Attach readable names (used by the parameter table) to the weight layers, in order."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for layer, name in zip(layers, names, strict=True):
        layer.display_name = name
    for norm, name in zip(norms, names, strict=False):
        norm.display_name = f"bn_{name}"


def parameter_rows(model: nn.Module) -> list[tuple[str, str, int]]:
    """One ``(layer, formula, count)`` row for every module that owns parameters."""
    rows = []
    for qualified, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if not own:
            continue
        name = getattr(module, "display_name", qualified)
        plus = "+1" if getattr(module, "bias", None) is not None else ""
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            formula = f"({kh}*{kw}*{module.in_channels}{plus})*{module.out_channels}"
        elif isinstance(module, nn.Linear):
            formula = f"({module.in_features}{plus})*{module.out_features}"
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            formula = f"2*{module.num_features}"
        else:
            formula = "+".join(str(p.numel()) for p in module.parameters(recurse=False))
        rows.append((name, formula, own))
    return rows


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def parameter_table(model: nn.Module) -> str:
    """A printable per-layer parameter table, e.g. ``c1  (5*5*1+1)*6 = 156``, and the total."""
    rows = parameter_rows(model)
    width = max((len(name) for name, _, _ in rows), default=0)
    lines = [f"{type(model).__name__} parameters:"]
    lines += [f"  {name:<{width}}  {formula} = {count:,}" for name, formula, count in rows]
    lines.append(f"  {'total':<{width}}  {count_parameters(model):,}")
    return "\n".join(lines)
