"""Metrics computed on the test (and validation) split every epoch, and the declaration of every column a run writes.

A metric is a class with ``update(logits, labels)`` and ``compute()``; ours are the loss and the accuracy, and
the ``metric`` group adds more (``metric=ece`` with ``--config-dir examples/conf``). Each metric's name makes
its columns (``test_<name>``, ``val_<name>`` in metrics.csv, ``final_test_<name>`` in summary.json). A
:class:`Column` says how a column is shown and whether the sweep report tests it; metrics declare theirs by
their class attributes, callbacks by :meth:`~mnistlab.training.callbacks.Callback.columns`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # a column name: also a summary key (final_<name>) and a report column prefix


@dataclass(frozen=True)
class Column:
    """How a metrics.csv column is shown and compared: ``label`` as a table heads it, ``higher_is_better`` (None: no
    direction, a diagnostic), ``digits``, and ``tested``: whether the sweep report gives its 95% CI and its difference
    to the baseline group with a Holm-corrected test, or only its mean and spread."""

    label: str
    higher_is_better: bool | None = None
    digits: int = 4
    tested: bool = False

    def record(self) -> dict[str, Any]:
        """As summary.json records it."""
        return asdict(self)


def check_name(name: str, owner: str) -> None:
    """A column name is lower-case letters, digits and underscores; ValueError naming ``owner`` otherwise."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"{owner}: column name {name!r} must be lower-case letters, digits and underscores, starting with a letter")


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

    @classmethod
    def column(cls, split: str) -> Column:
        """The declaration of this metric's column on ``split`` (``test``, ``val``): tested, as every metric is."""
        return Column(f"{split} {cls.label or cls.name}", cls.higher_is_better, cls.digits, tested=True)


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


def declarations(metrics: Sequence[Metric]) -> dict[str, dict[str, Any]]:
    """``{name: {label, higher_is_better, digits}}`` of a run's metrics, as summary.json records them."""
    return {m.name: {"label": m.label or m.name, "higher_is_better": m.higher_is_better, "digits": m.digits} for m in metrics}


def with_built_in(extra: Sequence[Metric]) -> list[Metric]:
    """Loss and accuracy, then ``extra`` (the ``metric`` group's); a name used twice is an error."""
    metrics = [cls() for cls in BUILT_IN] + list(extra)
    for metric in metrics:
        if not metric.name or not isinstance(metric.name, str):
            raise TypeError(f"{type(metric).__name__} has no name: set the class attribute `name`")
        check_name(metric.name, type(metric).__name__)
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise ValueError(f"two metrics share a name: {names}")
    return metrics
