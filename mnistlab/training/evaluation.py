"""The one evaluation loop: every metric of a model on a split, and its predictions (training and ``mnistlab-eval`` share it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mnistlab.training.metrics import MetricEntry, with_built_in


@dataclass
class Evaluation:
    """One pass over a split: each metric's value, and the predicted class and its probability per image (CPU)."""

    values: dict[str, float]
    preds: torch.Tensor
    confidence: torch.Tensor


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    metrics: Sequence[MetricEntry] | None = None,
    batch_size: int = 2000,
    channels_last: bool = False,
) -> Evaluation:
    """Every metric (loss and accuracy by default) of ``model`` on a split, each from a fresh copy, in eval mode (the
    model's mode is restored)."""
    entries = metrics or with_built_in()
    was_training = model.training
    model.eval()
    preds, confidence = [], []
    device = next(iter(model.parameters()), torch.empty(0)).device
    running = [m.fresh(device) for m in entries]
    for start in range(0, len(labels), batch_size):
        x, y = images[start : start + batch_size].to(device), labels[start : start + batch_size].to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x).float()
        for metric in running:
            metric.update(logits, y)
        p, c = logits.softmax(1).max(1)
        preds.append(c)
        confidence.append(p)
    model.train(was_training)
    values = {m.name: m.value(metric) for m, metric in zip(entries, running, strict=True)}
    return Evaluation(values, torch.cat(preds).cpu(), torch.cat(confidence).cpu())
