"""Callbacks: code that runs at fixed points of training, with state that checkpoints carry.

Subclass :class:`Callback` and override the hooks you need; the ``callback`` group adds yours
(``callback=ema`` with ``--config-dir examples/conf``). Ours stop early, keep the best epoch's weights and
stop at a target accuracy, configured by ``regularization.early_stopping_patience``,
``regularization.keep_best`` and ``trainer.target_acc``.

The hooks, in the order they run:

- ``on_fit_start(trainer)``: before the first epoch trained by this process (after a resume restored state);
- ``on_step_end(trainer)``: after every optimizer update;
- ``on_epoch_end(trainer, row)``: after an epoch is evaluated, before it is checkpointed and written; add
  columns to ``row`` (its metrics.csv row), or call ``trainer.stop(reason)`` to end training after this epoch;
- ``on_fit_end(trainer, status)``: once, however the fit ended (``completed``, ``diverged``, ...);
- ``summary()``: fields for summary.json; ``state_dict()`` / ``load_state_dict(state)``: what a checkpoint keeps,
  so that a resumed run continues exactly where it stopped.

``trainer.evaluate(model, split)`` gives every metric of a model on ``trainer.data.test`` or ``.val``.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mnistlab.engine import Trainer

log = logging.getLogger(__name__)


class Callback:
    """The hooks; each does nothing until overridden."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer) -> None: ...

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None: ...

    def on_fit_end(self, trainer: Trainer, status: str) -> None: ...

    def summary(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class TargetAccuracy(Callback):
    """Stop as soon as test accuracy reaches ``target`` (%), and record the training time it took."""

    def __init__(self, target: float):
        self.target, self.seconds = target, None

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if row["test_acc"] >= self.target:
            self.seconds = trainer.elapsed
            log.info("reached test accuracy %.2f%% >= %.2f%% after %.2f s", row["test_acc"], self.target, self.seconds)
            trainer.stop("target accuracy")

    def summary(self) -> dict[str, Any]:
        return {"time_to_target": self.seconds}


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
    """Stop after ``patience`` epochs without a better validation accuracy."""

    def __init__(self, patience: int):
        super().__init__()
        self.patience, self.stopped = patience, False

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if not self.improved(row) and self.bad_epochs >= self.patience:
            log.info("early stopping: no val improvement for %d epochs", self.bad_epochs)
            self.stopped = True
            trainer.stop("early stopping")

    def summary(self) -> dict[str, Any]:
        return {"stopped_early": self.stopped}


class KeepBest(BestValidation):
    """Finish with the weights of the best validation epoch (a completed fit); checkpoints keep them."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: dict[str, Any] | None = None

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self.improved(row):
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


def built_in(target_acc: float | None, patience: int | None, keep_best: bool) -> dict[str, Callback]:
    """Our callbacks, as the settings ask for them, by the name their checkpoint state is kept under."""
    chosen: dict[str, Callback] = {}
    if target_acc is not None:
        chosen["target_acc"] = TargetAccuracy(target_acc)
    if patience:
        chosen["early_stopping"] = EarlyStopping(patience)
    if keep_best:
        chosen["keep_best"] = KeepBest()
    return chosen
