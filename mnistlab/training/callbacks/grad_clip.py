"""Gradient clipping as a callback: ``callback=grad_clip callback.grad_clip.max_norm=1.0``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from mnistlab.training.callbacks.base import Callback
from mnistlab.training.metrics import Column

if TYPE_CHECKING:
    from mnistlab.training.trainer import Trainer


class GradClip(Callback):
    """Rescale each step's gradients so that their total ``norm_type`` norm is at most ``max_norm``, between backward
    and the optimizer's step; adds ``grad_norm_max``, the largest norm of an epoch before clipping, to each row."""

    def __init__(self, max_norm: float = 1.0, norm_type: float = 2.0):
        if not max_norm > 0:
            raise ValueError(f"max_norm must be > 0, got {max_norm}")
        self.max_norm, self.norm_type = float(max_norm), float(norm_type)
        self.largest: torch.Tensor | None = None

    def on_before_optimizer_step(self, trainer: Trainer) -> None:
        norm = torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), self.max_norm, self.norm_type)
        self.largest = norm if self.largest is None else torch.maximum(self.largest, norm)  # no sync per step

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        row["grad_norm_max"] = float(self.largest) if self.largest is not None else float("nan")
        self.largest = None

    def columns(self, trainer: Trainer) -> dict[str, Column]:
        return {"grad_norm_max": Column("largest gradient norm", higher_is_better=None, digits=3, tested=False)}
