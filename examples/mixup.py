"""mixup (Zhang et al. 2018) as a batch technique: each image blended with another of the batch, labels likewise."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class Mixup:
    """``x' = lam * x + (1 - lam) * x[perm]`` and the same for one-hot labels; ``lam ~ Beta(alpha, alpha)`` per batch.

    ``alpha=0`` leaves the batch as it is, with its labels as probabilities all the same.
    """

    def __init__(self, alpha: float = 0.2, num_classes: int = 10):
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha, self.num_classes = alpha, num_classes

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        targets = F.one_hot(y, self.num_classes).float() if y.dim() == 1 else y
        if self.alpha == 0:
            return x, targets
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator, device=generator.device))  # the run's stream decides
        lam = float(np.random.default_rng(seed).beta(self.alpha, self.alpha))
        perm = torch.randperm(len(x), generator=generator, device=generator.device).to(x.device)
        return lam * x + (1 - lam) * x[perm], lam * targets + (1 - lam) * targets[perm]
