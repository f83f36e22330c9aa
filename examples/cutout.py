"""Cutout (DeVries and Taylor 2017) as a batch technique: a random square of each image set to the mean."""

from __future__ import annotations

import torch


class Cutout:
    """Zero (the dataset's mean, after normalization) a ``size`` x ``size`` square at a random centre per image."""

    def __init__(self, size: int = 8):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = x.shape
        cy, cx = (torch.randint(s, (n, 1, 1), generator=generator, device=generator.device).to(x.device) for s in (h, w))
        rows, cols = torch.arange(h, device=x.device).view(1, h, 1), torch.arange(w, device=x.device).view(1, 1, w)
        top, left = cy - self.size // 2, cx - self.size // 2
        inside = (rows >= top) & (rows < top + self.size) & (cols >= left) & (cols < left + self.size)
        return x * (~inside).unsqueeze(1), y
