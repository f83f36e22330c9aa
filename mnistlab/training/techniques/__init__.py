"""The ``technique`` group: what happens to a training batch on the device before the model sees it; ours is
the random warp of ``regularization.augment`` (``technique.random_warp``), always first."""

from __future__ import annotations

from collections.abc import Callable

import torch

from mnistlab.training.techniques.random_warp import RandomWarp

Technique = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
"""``technique(x, y, generator) -> (x, y)``: normalized images (N, C, H, W) and labels, class indices (N,) or class
probabilities (N, classes) as mixup makes them. Randomness comes from ``generator``, the run's own stream, which
checkpoints carry, so a resumed run draws what an uninterrupted one would. Techniques run before the training step,
outside a captured CUDA graph, so any technique works with ``trainer.cuda_graph``."""


def hard_labels(y: torch.Tensor) -> torch.Tensor:
    """Class indices of labels given as indices or as class probabilities (the most probable class)."""
    return y if y.dim() == 1 else y.argmax(1)


__all__ = ["RandomWarp", "Technique", "hard_labels"]
