"""A run that learned nothing ends as such (``callback.chance_level``): status ``collapsed``, one line, exit 3."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import torch

from mnistlab.training.callbacks.base import Callback

if TYPE_CHECKING:
    from mnistlab.training.trainer import Trainer

log = logging.getLogger(__name__)


class ChanceLevel(Callback):
    """Ends a run whose training stays at chance level with the status ``collapsed``.

    An epoch is at chance when its training loss is above ``loss_ratio`` times ln C (C classes: the loss of a
    uniform guess), not meaningfully below it, and its training accuracy is within ``margin`` of the accuracy of a
    constant answer (the largest class's share of the training split), the margin a fraction of the distance from
    there to 100%. Only epochs that end after ``min_steps`` steps are judged: a network that is learning can still
    be near chance after a few dozen steps as its learning rate warms up (LeNet-5 after 20 steps: 13.6% on seed 0),
    so a shorter run is never judged, and says so in one line when its last epoch is at chance. A network at chance
    for ``patience`` epochs in a row, with a training loss that did not fall over them, stops early: a collapsed
    network (dead units, a saturated output) does not come back. The last epoch is judged whatever the patience,
    when it ends after ``min_steps`` steps.
    """

    def __init__(self, enabled: bool = True, patience: int | None = 3, min_steps: int = 100, loss_ratio: float = 0.9, margin: float = 0.1):
        self.enabled, self.patience, self.min_steps = enabled, patience, min_steps
        self.loss_ratio, self.margin = loss_ratio, margin
        self.losses: list[float] = []  # the training loss of each epoch at chance in a row
        self.verdict: str | None = None

    def chance(self, trainer: Trainer) -> tuple[float, float]:
        """The loss of a uniform guess (ln C) and the accuracy (%) of always answering the most frequent class."""
        labels = trainer.data.train.labels
        classes = int(getattr(trainer.data.dataset, "num_classes", None) or int(labels.max()) + 1)
        counts = torch.bincount(labels.flatten().long(), minlength=classes)
        return math.log(classes), 100.0 * float(counts.max()) / float(counts.sum())

    def at_chance(self, trainer: Trainer, row: dict[str, Any]) -> bool:
        chance_loss, chance_acc = self.chance(trainer)
        near = chance_acc + self.margin * (100.0 - chance_acc)
        return row["train_loss"] > self.loss_ratio * chance_loss and row["train_acc"] <= near

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if trainer.step < self.min_steps:
            if trainer.epoch == trainer.settings.epochs and self.at_chance(trainer, row):
                log.info(
                    "the last epoch is at chance level (loss %.2f, accuracy %.1f%%), but the run took %d steps, fewer than "
                    "callback.chance_level.min_steps=%d: it is not judged",
                    row["train_loss"],
                    row["train_acc"],
                    trainer.step,
                    self.min_steps,
                )
            return
        if not self.at_chance(trainer, row):
            self.losses = []
            return
        self.losses.append(float(row["train_loss"]))
        chance_loss, chance_acc = self.chance(trainer)
        recent = self.losses[-self.patience :] if self.patience else self.losses  # not the blow-up that may precede them
        flat = len(recent) >= 2 and recent[0] - recent[-1] < 0.01 * chance_loss
        last = trainer.epoch == trainer.settings.epochs
        if last or (self.patience is not None and len(self.losses) >= self.patience and flat):
            epochs = f"for {len(self.losses)} epochs" if len(self.losses) > 1 else f"in epoch {trainer.epoch}"
            self.verdict = (
                f"training stayed at chance level {epochs}: loss {row['train_loss']:.2f} (a uniform guess: ln {round(math.exp(chance_loss))} "
                f"= {chance_loss:.2f}), accuracy {row['train_acc']:.1f}% (always the most frequent class: {chance_acc:.1f}%); the network "
                "learned nothing: lower optimizer.lr, or add callback=grad_clip"
            )
            log.error("collapsed: %s", self.verdict)
            trainer.stop(self.verdict, status="collapsed")

    def state_dict(self) -> dict[str, Any]:
        return {"losses": self.losses}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses = list(state["losses"])
