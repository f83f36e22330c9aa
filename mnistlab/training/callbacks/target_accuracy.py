"""Stop at a target accuracy (``callback.target_accuracy.target``) and record the time it took (``time_to_target``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mnistlab.training.callbacks.base import Callback
from mnistlab.training.metrics import Column

if TYPE_CHECKING:
    from mnistlab.training.trainer import Trainer

log = logging.getLogger(__name__)


class TargetAccuracy(Callback):
    """Stop as soon as ``monitor`` (test accuracy by default: a benchmark of speed) reaches ``target``; ``target: null``
    never stops."""

    def __init__(self, target: float | None = None, monitor: str = "test_acc"):
        if target is not None and not (isinstance(target, int | float) and not isinstance(target, bool) and 0 <= target <= 100):
            raise ValueError(f"target must be between 0 and 100 (an accuracy in %), got {target!r}")
        self.target, self.monitor, self.seconds = target, monitor, None

    def needs(self) -> Sequence[str]:
        return (self.monitor,) if self.target is not None else ()

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self.target is not None and row[self.monitor] >= self.target:
            self.seconds = trainer.elapsed
            log.info("reached %s %.2f >= %.2f after %.2f s", self.monitor, row[self.monitor], self.target, self.seconds)
            trainer.stop(f"reached {self.monitor} {self.target:g}")

    def fields(self) -> dict[str, Column]:
        return {"time_to_target": Column("seconds to target", higher_is_better=False, digits=1)} if self.target is not None else {}

    def summary(self) -> dict[str, Any]:
        return {"time_to_target": self.seconds} if self.target is not None else {}
