"""Your own pictures as a dataset's images: read from any image file, and, for MNIST-like datasets, fitted and
centred as MNIST's digits were (LeCun et al.: fitted into a 20x20 box keeping the aspect ratio, centred by the
centre of mass in a 28x28 field, bright ink on black), whether drawn dark on light or light on dark."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from mnistlab.errors import DataError

if TYPE_CHECKING:
    from mnistlab.data.base import Dataset

FIELD = 28
INK = 0.15  # of the strongest ink: fainter pixels do not count towards the bounding box (paper texture, JPEG noise)


def read_image(path: Path, colour: bool = False) -> np.ndarray:
    """An image file as grey levels (H, W), or with ``colour`` RGB (H, W, 3), in [0, 1]; transparent pixels count
    as the background (grey)."""
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"{path}: cannot be read as an image ({type(err).__name__}: {err})") from err
    if colour:
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float64) / 255.0
        if alpha.min() < 1.0:  # drawn on a transparent canvas: the ink is where it is opaque
            grey = np.asarray(rgba.convert("L"), dtype=np.float64) / 255.0
            background = 1.0 - np.median(grey[alpha > 0.5]) if (alpha > 0.5).any() else 1.0
            return alpha * grey + (1.0 - alpha) * background
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def to_mnist(grey: np.ndarray, box: int = 20, center: str = "mass") -> np.ndarray:
    """Grey levels (H, W) in [0, 1] -> a 28x28 uint8 image as in MNIST: bright ink on black, fitted into a
    ``box`` x ``box`` square keeping the aspect ratio, centred in the field by centre of mass (or bounding box)."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    ink = (background - grey) if background > 0.5 else (grey - background)  # dark on light, or light on dark
    ink = np.clip(ink, 0.0, None)
    if ink.max() < 0.1:
        raise DataError("no digit found: the image is (nearly) uniform")
    ink = ink / ink.max()
    rows, cols = np.nonzero(ink > INK)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = box / max(crop.shape)
    size = (max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale)))
    tensor = torch.from_numpy(crop).float()[None, None]
    antialias = scale < 1
    fitted = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False, antialias=antialias)[0, 0].clamp(0, 1).numpy()
    if center == "mass":
        ys, xs = np.indices(fitted.shape)
        total = fitted.sum()
        cy, cx = (ys * fitted).sum() / total, (xs * fitted).sum() / total
    else:
        cy, cx = (fitted.shape[0] - 1) / 2, (fitted.shape[1] - 1) / 2
    target = FIELD / 2 if center == "mass" else (FIELD - 1) / 2  # MNIST's centres of mass average (14.0, 14.0) in pixel indices
    top, left = round(target - cy), round(target - cx)
    field = np.zeros((FIELD, FIELD))
    y0, x0 = max(top, 0), max(left, 0)  # a centre of mass far off-centre may push part of the box out: clip it
    y1, x1 = min(top + fitted.shape[0], FIELD), min(left + fitted.shape[1], FIELD)
    field[y0:y1, x0:x1] = fitted[y0 - top : y1 - top, x0 - left : x1 - left]
    return np.round(field * 255).astype(np.uint8)


def preprocess(paths: list[Path], dataset: Dataset) -> torch.Tensor:
    """Image files -> (N, C, H, W) uint8, as the dataset's images; raises DataError naming a file that fails."""
    images = []
    for path in paths:
        pixels = read_image(path, colour=dataset.channels == 3)
        try:
            images.append(dataset.prepare_image(pixels))
        except DataError as err:
            raise DataError(f"{path}: {err}") from None
    return torch.stack(images)
