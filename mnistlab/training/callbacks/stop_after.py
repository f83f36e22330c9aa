"""Stop after a number of epochs of a longer run (``mnistlab-reproduce --epochs K``): the schedule stays the full run's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mnistlab.training.callbacks.base import Callback

if TYPE_CHECKING:
    from mnistlab.training.trainer import Trainer


class StopAfter(Callback):
    """End training after epoch ``epochs``, as ``completed``: the first epochs of a run exactly as the whole run has them."""

    def __init__(self, epochs: int):
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
        self.epochs = epochs

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if trainer.epoch >= self.epochs:
            trainer.stop(f"the first {self.epochs} epochs of the run")
