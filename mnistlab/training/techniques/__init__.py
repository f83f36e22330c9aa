"""The ``technique`` group: what happens to a training batch ``(x, y)`` on the device before the model sees it.

A technique is a callable ``technique(x, y, generator) -> (x, y)``: normalized images (N, C, H, W) and labels,
either class indices (N,) or class probabilities (N, classes), the form mixup makes. It draws its randomness
from ``generator``, the run's own stream, which checkpoints carry: a resumed run draws what an uninterrupted
one would. Ours is the random warp (``technique.random_warp``, set by ``regularization.augment``), first; yours
follow in the order given (``technique=[mixup,cutout]`` with ``--config-dir examples/conf``).

Techniques run before the training step, outside a captured CUDA graph, so any technique works with
``trainer.cuda_graph``: batches whose shape or dtype differ from the captured one run eagerly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mnistlab.training.techniques.random_warp import RandomWarp

Technique = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def hard_labels(y: torch.Tensor) -> torch.Tensor:
    """Class indices of labels given as indices or as class probabilities (the most probable class)."""
    return y if y.dim() == 1 else y.argmax(1)


__all__ = ["RandomWarp", "Technique", "hard_labels"]
