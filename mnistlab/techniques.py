"""Batch techniques: what happens to a training batch ``(x, y)`` on the device before the model sees it.

A technique is a callable ``technique(x, y, generator) -> (x, y)``: normalized images (N, C, H, W) and labels,
either class indices (N,) or class probabilities (N, classes), the form mixup makes. It draws its randomness
from ``generator``, the run's own stream, which checkpoints carry: a resumed run draws what an uninterrupted
one would. Ours is the random warp of ``regularization.augment``; the ``technique`` group adds yours, applied
after it in the order given (``technique=[mixup,cutout]`` with ``--config-dir examples/conf``).

Techniques run before the training step, outside a captured CUDA graph, so any technique works with
``trainer.cuda_graph``: batches whose shape or dtype differ from the captured one run eagerly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mnistlab.augment import augment_batch
from mnistlab.settings import AugmentSettings

Technique = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


class RandomWarp:
    """Per-sample random rotation, shift, scale and elastic field (``regularization.augment``), on the device."""

    def __init__(self, settings: AugmentSettings, background: torch.Tensor | float):
        self.settings, self.background = settings, background

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return augment_batch(x, self.settings, generator, self.background), y


def hard_labels(y: torch.Tensor) -> torch.Tensor:
    """Class indices of labels given as indices or as class probabilities (the most probable class)."""
    return y if y.dim() == 1 else y.argmax(1)
