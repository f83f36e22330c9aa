"""Metrics computed on the test (and validation) split every epoch, and the one evaluation loop that computes them.

A metric is a class with ``update(logits, labels)`` and ``compute()``; ours are the loss and the accuracy, and
the ``metric`` group adds more (``metric=ece`` with ``--config-dir examples/conf``). Each metric's name makes
its columns (``test_<name>``, ``val_<name>`` in metrics.csv, ``final_test_<name>`` in summary.json), and its
declaration, recorded in summary.json, tells the report, the loggers and ``mnistlab-eval`` how to show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn


class Metric:
    """One number over a split, accumulated batch by batch on the device.

    Subclasses set ``name`` (its columns), ``label`` (as a table shows it), ``higher_is_better`` and ``digits``,
    and implement :meth:`update` and :meth:`compute`; :meth:`reset` starts a new pass over a split.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    digits: ClassVar[int] = 2

    def reset(self) -> None:
        """Forget the previous pass."""

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Take one batch: float32 logits (N, classes) and integer labels (N,)."""
        raise NotImplementedError

    def compute(self) -> float:
        """The value over every batch since :meth:`reset`."""
        raise NotImplementedError


class Loss(Metric):
    """Mean cross-entropy, whatever the training loss is."""

    name, label, higher_is_better, digits = "loss", "loss", False, 4

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.total = self.total + F.cross_entropy(logits, labels, reduction="sum")  # a device tensor: no sync per batch
        self.count += len(labels)

    def compute(self) -> float:
        return float(self.total) / self.count


class Accuracy(Metric):
    """Correct predictions in percent."""

    name, label = "acc", "acc (%)"

    def reset(self) -> None:
        self.correct, self.count = 0, 0

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.correct = self.correct + (logits.argmax(1) == labels).sum()
        self.count += len(labels)

    def compute(self) -> float:
        return 100.0 * float(self.correct) / self.count


BUILT_IN = (Loss, Accuracy)  # every run computes these, first


@dataclass(frozen=True)
class Declaration:
    """How a metric is shown, as summary.json records it for the report and the loggers."""

    label: str
    higher_is_better: bool
    digits: int


def declarations(metrics: Sequence[Metric]) -> dict[str, dict[str, Any]]:
    """``{name: declaration}`` of a run's metrics, for summary.json."""
    return {m.name: asdict(Declaration(m.label or m.name, m.higher_is_better, m.digits)) for m in metrics}


def with_built_in(extra: Sequence[Metric]) -> list[Metric]:
    """Loss and accuracy, then ``extra`` (the ``metric`` group's); a name used twice is an error."""
    metrics = [cls() for cls in BUILT_IN] + list(extra)
    names = [m.name for m in metrics]
    for metric in metrics:
        if not metric.name or not isinstance(metric.name, str):
            raise TypeError(f"{type(metric).__name__} has no name: set the class attribute `name`")
    if len(set(names)) != len(names):
        raise ValueError(f"two metrics share a name: {names}")
    return metrics


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
    metrics: Sequence[Metric],
    batch_size: int = 2000,
    channels_last: bool = False,
) -> Evaluation:
    """Every metric of ``model`` on a split, in eval mode (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    for metric in metrics:
        metric.reset()
    preds, confidence = [], []
    device = next(iter(model.parameters()), torch.empty(0)).device
    for start in range(0, len(labels), batch_size):
        x, y = images[start : start + batch_size].to(device), labels[start : start + batch_size].to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x).float()
        for metric in metrics:
            metric.update(logits, y)
        p, c = logits.softmax(1).max(1)
        preds.append(c)
        confidence.append(p)
    model.train(was_training)
    return Evaluation({m.name: m.compute() for m in metrics}, torch.cat(preds).cpu(), torch.cat(confidence).cpu())
