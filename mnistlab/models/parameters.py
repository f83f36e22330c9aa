"""A model's parameters, layer by layer: the table every run prints, and the count its summary records."""

from __future__ import annotations

from torch import nn


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
