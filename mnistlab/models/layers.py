"""What both models share: their activation and pooling choices, and readable names for their weight layers."""

from __future__ import annotations

from torch import nn

from mnistlab.errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
POOLINGS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def choice(key: str, value: str, choices: dict) -> type[nn.Module]:
    """The module class ``value`` names among ``choices``; ConfigError naming ``key`` otherwise."""
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(sorted(choices))}, got {value!r}")
    return choices[value]


def name_layers(model: nn.Module, names: list[str]) -> None:
    """Attach readable names (used by the parameter table) to the weight layers, in order."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for layer, name in zip(layers, names, strict=True):
        layer.display_name = name
    for norm, name in zip(norms, names, strict=False):
        norm.display_name = f"bn_{name}"
