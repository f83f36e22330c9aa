"""Selection on the validation split: early stopping (``callback.early_stopping``) and keeping the best epoch's
weights (``callback.keep_best``), set by ``regularization.early_stopping_patience`` and ``regularization.keep_best``."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from mnistlab.training.callbacks.base import Callback

if TYPE_CHECKING:
    from mnistlab.training.trainer import Trainer

log = logging.getLogger(__name__)


class BestValidation(Callback):
    """Tracks the epoch of best validation accuracy (``monitor``); the base of early stopping and keep-best."""

    monitor = "val_acc"

    def __init__(self) -> None:
        self.best, self.best_epoch, self.bad_epochs = -math.inf, None, 0

    def improved(self, row: dict[str, Any]) -> bool:
        if row[self.monitor] > self.best:
            self.best, self.best_epoch, self.bad_epochs = row[self.monitor], int(row["epoch"]), 0
            return True
        self.bad_epochs += 1
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.bad_epochs = float(state["best"]), state["best_epoch"], int(state["bad_epochs"])


class EarlyStopping(BestValidation):
    """Stop after ``patience`` epochs without a better validation accuracy; ``patience: null`` never stops."""

    def __init__(self, patience: int | None = None):
        super().__init__()
        self.patience, self.stopped = patience, False

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self.patience is None:
            return
        if not self.improved(row) and self.bad_epochs >= self.patience:
            log.info("early stopping: no val improvement for %d epochs", self.bad_epochs)
            self.stopped = True
            trainer.stop("early stopping")

    def summary(self) -> dict[str, Any]:
        return {"stopped_early": self.stopped}


class KeepBest(BestValidation):
    """With ``enabled``, finish with the weights of the best validation epoch (a completed fit); checkpoints keep them."""

    def __init__(self, enabled: bool = False) -> None:
        super().__init__()
        self.enabled = enabled
        self.weights: dict[str, Any] | None = None

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self.enabled and self.improved(row):
            self.weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    def on_fit_end(self, trainer: Trainer, status: str) -> None:
        if status == "completed" and self.weights is not None:
            trainer.model.load_state_dict(self.weights)
            log.info("restored the weights of epoch %s (best val accuracy %.2f%%)", self.best_epoch, self.best)

    def summary(self) -> dict[str, Any]:
        return {"selected_epoch": self.best_epoch}

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.weights = state["weights"]
