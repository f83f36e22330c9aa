"""Learning-rate schedules of the ``scheduler`` group: ours take the optimizer and the run's length in steps, so a
config only names the shape of a schedule, never a step count; torch's (or yours) step per batch or per epoch."""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR, ReduceLROnPlateau


def step_epoch_scheduler(scheduler: Any, row: dict[str, Any]) -> None:
    """Step a per-epoch scheduler after an epoch; ReduceLROnPlateau watches the validation loss, else the training loss
    (never the test loss: the test set does not steer training)."""
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(row.get("val_loss", row["train_loss"]))
    else:
        scheduler.step()


def onecycle(
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    pct_start: float = 0.25,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> LRScheduler:
    """Linear warm-up to the optimizer's lr, then cosine annealing to ~0 (Smith & Topin 2019).

    Very short runs (``trainer.limit_batches``) warm up for at least 1.5 steps: OneCycleLR divides by zero
    when the warm-up ends exactly at its first step.
    """
    max_lr = [group["lr"] for group in optimizer.param_groups]
    pct_start = min(max(pct_start, 1.5 / total_steps), 0.99)
    return OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=total_steps,
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        anneal_strategy="cos",
        three_phase=False,
        cycle_momentum=False,
    )


def cosine(
    optimizer: Optimizer, total_steps: int, steps_per_epoch: int, warmup_epochs: float = 0.0, min_factor: float = 0.0
) -> LRScheduler:
    """Optional linear warm-up, then cosine decay from the optimizer's lr to ``min_factor`` times it."""
    warmup = int(warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def step(optimizer: Optimizer, total_steps: int, steps_per_epoch: int, step_epochs: int = 5, gamma: float = 0.1) -> LRScheduler:
    """Multiply the lr by ``gamma`` every ``step_epochs`` epochs."""
    return LambdaLR(optimizer, lambda s: gamma ** (s // (step_epochs * steps_per_epoch)))


def constant(optimizer: Optimizer, total_steps: int, steps_per_epoch: int) -> LRScheduler:
    """No schedule: the optimizer's lr throughout."""
    return LambdaLR(optimizer, lambda s: 1.0)
