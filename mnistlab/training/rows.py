"""What a fit gives back and what its metrics rows hold: the row's own columns, the result of :meth:`Trainer.fit`,
and every other column a row may hold, as the metrics and callbacks declare them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mnistlab.errors import ConfigError
from mnistlab.training.metrics import Column, check_name

if TYPE_CHECKING:
    from mnistlab.training.trainer import Trainer

ROW = ("epoch", "train_loss", "train_acc", "lr", "seconds")  # a metrics row's own columns, beside each metric's


@dataclass
class FitResult:
    status: str  # completed | diverged | interrupted | terminated | a callback's own (collapsed, pruned, ...)
    history: list[dict[str, float]]
    seconds: float  # training wall time, resumed parts included
    warmup_seconds: float = 0.0  # one-off GPU start-up before the clock (see Trainer.warm_up)
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)  # the callbacks' summary fields (time_to_target, ...)
    weights: dict[str, Any] | None = None  # {"from": callback, "epoch": n} where a callback gave the weights to finish with
    stop: dict[str, str] | None = None  # {"by": callback, "reason": ...} where a callback stopped training


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


def declared_columns(trainer: Trainer) -> dict[str, Column]:
    """Every column a row may hold beyond its own (``ROW``), declared: the metrics' on each split, then the callbacks'.
    A callback's column that another already declares is an error."""
    splits = ("test", "val") if trainer.data.val is not None else ("test",)
    declared = {f"{split}_{m.name}": m.column(split) for split in splits for m in trainer.metrics}
    for name, callback in trainer.callbacks.items():
        for column, declaration in callback.columns(trainer).items():
            try:
                check_name(column, f"callback.{name}")
            except ValueError as err:
                raise ConfigError(str(err)) from None
            if column in declared or column in ROW:
                raise ConfigError(f"callback.{name} declares the column {column!r}, which the run already has")
            declared[column] = declaration
    return declared
