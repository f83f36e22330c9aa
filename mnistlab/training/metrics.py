"""Metrics computed on the test (and validation) split every epoch, the declaration of every column a run writes,
and the objective (the one value sweepers, studies and selection read).

A metric is anything with ``update(logits, labels)`` and ``compute()``: ours (the loss and the accuracy), yours
(subclass :class:`Metric`), or any ``torchmetrics.Metric`` as it is (``metric=...`` names it). The framework
owns each pass over a split: it starts from a fresh copy of the metric as it was built, so a metric never carries
state from one epoch or split into the next, whether or not it defines ``reset()``. Each metric's name makes
its columns (``test_<name>``, ``val_<name>`` in metrics.csv, ``final_test_<name>`` in summary.json). A
:class:`Column` says how a column is shown and whether the sweep report tests it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
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


def objective(splits: Sequence[str]) -> str:
    """The column a run is judged by: validation accuracy if the run holds out a validation split, else test accuracy."""
    return "val_acc" if "val" in splits else "test_acc"


class Metric:
    """One number over a split, accumulated batch by batch on the device.

    Subclasses set ``name`` (its columns), ``label`` (as a table shows it), ``higher_is_better`` and ``digits``,
    and implement :meth:`update` and :meth:`compute`. Each pass over a split starts from a fresh copy of the metric
    as it was constructed; :meth:`reset`, if defined, is called on that copy first.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    digits: ClassVar[int] = 2

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Take one batch: float32 logits (N, classes) and integer labels (N,)."""
        raise NotImplementedError

    def compute(self) -> float:
        """The value over every batch of this pass."""
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


BUILT_IN = {"loss": Loss, "acc": Accuracy}  # every run computes these, first


@dataclass(frozen=True)
class MetricEntry:
    """A run's metric as the framework holds it: its declaration (``name``, ``label``, ``higher_is_better``,
    ``digits``) and the metric as built, which every pass copies afresh and which is itself never updated."""

    name: str
    label: str
    higher_is_better: bool | None
    digits: int
    prototype: Any

    def fresh(self, device: torch.device) -> Any:
        """A copy of the metric as it was built, on ``device``, reset if it can be."""
        metric = copy.deepcopy(self.prototype)
        if isinstance(metric, torch.nn.Module):  # torchmetrics keeps its state as buffers
            metric = metric.to(device)
        if callable(getattr(metric, "reset", None)):
            metric.reset()
        return metric

    @staticmethod
    def value(metric: Any) -> float:
        value = metric.compute()
        return float(value.item() if isinstance(value, torch.Tensor) else value)

    def column(self, split: str) -> Column:
        """The declaration of this metric's column on ``split`` (``test``, ``val``): tested, as every metric with a
        direction is (one whose ``higher_is_better`` is None is a diagnostic, shown only)."""
        return Column(f"{split} {self.label}", self.higher_is_better, self.digits, tested=self.higher_is_better is not None)

    def record(self) -> dict[str, Any]:
        return {"label": self.label, "higher_is_better": self.higher_is_better, "digits": self.digits}


def entry(metric: Any, name: str | None = None) -> MetricEntry:
    """The entry of a built metric: ours and yours declare themselves by class attributes; a torchmetrics metric (or any
    object with ``update`` and ``compute``) takes ``name`` (its config entry's) and its class's ``higher_is_better``."""
    if not (callable(getattr(metric, "update", None)) and callable(getattr(metric, "compute", None))):
        raise TypeError(f"{type(metric).__name__} is not a metric: it needs update(logits, labels) and compute()")
    own = isinstance(metric, Metric)
    column = (getattr(metric, "name", "") if own else "") or name or ""
    if not column:
        raise TypeError(f"{type(metric).__name__} has no name: set the class attribute `name`")
    check_name(column, type(metric).__name__)
    label = (getattr(metric, "label", "") if own else "") or column
    digits = int(getattr(metric, "digits", 4)) if own else 4
    return MetricEntry(column, label, getattr(metric, "higher_is_better", None), digits, metric)


def with_built_in(extra: Mapping[str, Any] | Sequence[Any] = ()) -> list[MetricEntry]:
    """Loss and accuracy, then ``extra`` (the ``metric`` group's, ``{entry name: metric}``); a name used twice is an error."""
    items = extra.items() if isinstance(extra, Mapping) else [(None, m) for m in extra]
    metrics = [entry(cls()) for cls in BUILT_IN.values()] + [entry(metric, name) for name, metric in items]
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise ValueError(f"two metrics share a name: {names}")
    return metrics


def declarations(metrics: Sequence[MetricEntry]) -> dict[str, dict[str, Any]]:
    """``{name: {label, higher_is_better, digits}}`` of a run's metrics, as summary.json records them."""
    return {m.name: m.record() for m in metrics}
