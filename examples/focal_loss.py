"""The focal loss (Lin et al. 2017): cross-entropy that weighs down the examples the model already gets right."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FocalLoss(nn.Module):
    """``-sum_c t_c (1 - p_c)^gamma log p_c``: targets ``t`` as class indices or probabilities; ``gamma=0`` is cross-entropy."""

    def __init__(self, gamma: float = 2.0):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = logits.log_softmax(1)
        t = F.one_hot(target, logits.shape[1]).to(log_p.dtype) if target.dim() == 1 else target
        return -(t * (1 - log_p.exp()).pow(self.gamma) * log_p).sum(1).mean()
