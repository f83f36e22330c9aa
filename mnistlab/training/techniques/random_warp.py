"""The random warp of ``regularization.augment``: per-sample random rotation, shift, scale and an optional elastic
field, applied to the whole batch on the device."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, bound: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=generator, device=device) * 2 - 1) * bound


def _affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``F.affine_grid(theta, (n, 1, h, w), align_corners=False)`` as broadcast sums into x and y planes.

    On a CPU this is several times faster than ``F.affine_grid``'s batched matmul. The result is an (n, h, w, 2)
    view of the planes, which ``F.grid_sample`` reads as fast as a contiguous grid.
    """
    xs = (torch.arange(w, device=theta.device, dtype=theta.dtype) * 2 + 1) / w - 1  # pixel centres in [-1, 1]
    ys = ((torch.arange(h, device=theta.device, dtype=theta.dtype) * 2 + 1) / h - 1)[:, None]
    t = theta[:, :, :, None, None]
    planes = torch.add(t[:, :, 0] * xs, t[:, :, 1] * ys + t[:, :, 2])  # (n, 2, h, w)
    return planes.permute(0, 2, 3, 1)


class RandomWarp:
    """Warp each image of a normalized batch with its own random rotation (``rotation`` degrees either way), shift
    (``translate``, a fraction of the size per axis), scale (``1 ± scale``) and, with ``elastic_alpha`` > 0, a smooth
    elastic field (Simard et al. 2003) of control points every ``elastic_sigma`` pixels. Pixels warped in from outside
    are black: ``mean`` and ``std`` (per channel) say what black is after normalization. All zeros: no warp."""

    def __init__(
        self,
        rotation: float = 0.0,
        translate: float = 0.0,
        scale: float = 0.0,
        elastic_alpha: float = 0.0,
        elastic_sigma: float = 7.0,
        mean: list[float] | None = None,
        std: list[float] | None = None,
    ):
        self.rotation, self.translate, self.scale = rotation, translate, scale
        self.elastic_alpha, self.elastic_sigma = elastic_alpha, elastic_sigma
        self.mean, self.std = list(mean or [0.0]), list(std or [1.0])
        self._background: dict[torch.device, torch.Tensor] = {}

    @property
    def enabled(self) -> bool:
        return any(v > 0 for v in (self.rotation, self.translate, self.scale, self.elastic_alpha))

    def background(self, device: torch.device) -> torch.Tensor:
        """A black pixel after normalization, (1, C, 1, 1), made once per device."""
        if device not in self._background:
            self._background[device] = (-torch.tensor(self.mean) / torch.tensor(self.std)).view(1, -1, 1, 1).to(device)
        return self._background[device]

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.warp(x, generator), y

    def warp(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Warp a normalized batch (N, C, H, W)."""
        if not self.enabled:
            return images
        n, _, h, w = images.shape
        device = images.device
        angle = _uniform(n, math.radians(self.rotation), generator, device)
        scale = 1 + _uniform(n, self.scale, generator, device)
        shift = _uniform(2 * n, 2 * self.translate, generator, device).view(n, 2)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = _affine_grid(theta.to(images.dtype), h, w)
        if self.elastic_alpha > 0:
            grid = grid + self._elastic_field(n, h, w, generator, device).to(images.dtype)
        background = self.background(device)
        warped = F.grid_sample(images - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return warped + background

    def _elastic_field(self, n: int, h: int, w: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Smooth random displacements (n, h, w, 2) in grid units: random control points every ``elastic_sigma`` pixels,
        upsampled bicubically, as smooth as a Gaussian-filtered noise field at a fraction of the cost."""
        cells = (max(2, round(h / self.elastic_sigma) + 1), max(2, round(w / self.elastic_sigma) + 1))
        control = torch.rand(n, 2, *cells, generator=generator, device=device) * 2 - 1
        field = F.interpolate(control, size=(h, w), mode="bicubic", align_corners=True)
        factor = torch.tensor([2.0 / w, 2.0 / h], device=device).view(1, 2, 1, 1)
        return (field * self.elastic_alpha * factor).permute(0, 2, 3, 1)
