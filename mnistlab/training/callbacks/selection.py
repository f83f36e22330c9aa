"""Selection on the validation split: early stopping (``callback.early_stopping``) and finishing with the best epoch's
weights (``callback.keep_best``). Both read a validation column, never the test split's: the test set does not
steer training."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mnistlab.errors import ConfigError
from mnistlab.training.callbacks.base import Callback, Weights

if TYPE_CHECKING:
    from mnistlab.training.trainer import Trainer

log = logging.getLogger(__name__)


class BestEpoch(Callback):
    """Tracks the epoch of the best ``monitor``, a validation column, in the direction its metric declares."""

    def __init__(self, monitor: str = "val_acc") -> None:
        if not isinstance(monitor, str) or not monitor.startswith("val_"):
            raise ValueError(f"monitor must be a validation column (val_acc, val_loss, ...): selecting on {monitor!r} would tune on it")
        self.monitor = monitor
        self.best, self.best_epoch, self.bad_epochs, self.higher = None, None, 0, True

    def on_fit_start(self, trainer: Trainer) -> None:
        direction = trainer.columns()[self.monitor].higher_is_better
        if direction is None:
            raise ConfigError(f"{self.monitor} has no direction (its metric's higher_is_better is None): monitor another column")
        self.higher = bool(direction)

    def improved(self, row: dict[str, Any]) -> bool:
        value = float(row[self.monitor])
        better = self.best is None or (value > self.best if self.higher else value < self.best)
        if better and not math.isnan(value):
            self.best, self.best_epoch, self.bad_epochs = value, int(row["epoch"]), 0
            return True
        self.bad_epochs += 1
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.bad_epochs = state["best"], state["best_epoch"], int(state["bad_epochs"])


class EarlyStopping(BestEpoch):
    """Stop after ``patience`` epochs without a better ``monitor``; ``patience: null`` never stops."""

    def __init__(self, patience: int | None = None, monitor: str = "val_acc"):
        super().__init__(monitor)
        if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
            raise ValueError(f"patience must be an integer >= 1 (or null), got {patience!r}")
        self.patience = patience

    def needs(self) -> Sequence[str]:
        return (self.monitor,) if self.patience is not None else ()

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.patience is not None:
            super().on_fit_start(trainer)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self.patience is None:
            return
        if not self.improved(row) and self.bad_epochs >= self.patience:
            log.info("early stopping: no better %s for %d epochs", self.monitor, self.bad_epochs)
            trainer.stop(f"early stopping: no better {self.monitor} for {self.bad_epochs} epochs")


class KeepBest(BestEpoch):
    """With ``enabled``, finish a completed fit with the weights of the epoch of best ``monitor``."""

    def __init__(self, enabled: bool = False, monitor: str = "val_acc") -> None:
        super().__init__(monitor)
        self.enabled = enabled
        self.weights: dict[str, Any] | None = None

    def needs(self) -> Sequence[str]:
        return (self.monitor,) if self.enabled else ()

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.enabled:
            super().on_fit_start(trainer)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self.enabled and self.improved(row):
            self.weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    def final_weights(self, trainer: Trainer) -> Weights | None:
        if self.weights is None:
            return None
        log.info("finishing with the weights of epoch %s (best %s %.4g)", self.best_epoch, self.monitor, self.best)
        return Weights(self.weights, int(self.best_epoch))

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.weights = state["weights"]
