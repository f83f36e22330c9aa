"""Stop at a target test accuracy (``callback.target_accuracy``, set by ``trainer.target_acc``) and record the time it took."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mnistlab.training.callbacks.base import Callback

if TYPE_CHECKING:
    from mnistlab.training.trainer import Trainer

log = logging.getLogger(__name__)


class TargetAccuracy(Callback):
    """Stop as soon as test accuracy reaches ``target`` (%); ``target: null`` never stops."""

    def __init__(self, target: float | None = None):
        self.target, self.seconds = target, None

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self.target is not None and row["test_acc"] >= self.target:
            self.seconds = trainer.elapsed
            log.info("reached test accuracy %.2f%% >= %.2f%% after %.2f s", row["test_acc"], self.target, self.seconds)
            trainer.stop("target accuracy")

    def summary(self) -> dict[str, Any]:
        return {"time_to_target": self.seconds}
