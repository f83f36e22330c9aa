"""A dataset: a class that reads images and labels, and knows what a model and a run need of them.

Every dataset takes the same keys beside its own: ``val_size`` (training images held out for validation),
``image_size`` (images are resized to it), and the facts ``channels``, ``num_classes``, ``classes``, ``mean``,
``std`` (per channel, of the training pixels in [0, 1]) and ``fingerprint``. A fact left ``null`` is filled
from the data when a run starts and recorded in its config, so the models read ``${data.channels}`` and
``${data.num_classes}`` by interpolation, and a folder whose images changed changes the run's identity (a
resume is refused). A fact that is set must agree with the data.

Ours: ``Idx`` (MNIST, Fashion-MNIST), ``Digits`` (scikit-learn's UCI digits) and ``Folder`` (your own
images). A dataset of your own subclasses :class:`Dataset` and implements :meth:`Dataset.read`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mnistlab.config.run_config import FACTS
from mnistlab.errors import ConfigError


@dataclass
class Images:
    """A dataset as read: uint8 images (N, C, H, W) and int64 labels (N,) of both splits, and the class names."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]
    fingerprint: str | None = None  # a digest of the files (folders), so that a changed folder is noticed


class Dataset:
    """The base of every dataset: the common keys, resizing, normalization and the facts of the data."""

    name = "dataset"  # as summary.json and the report show it
    title = "dataset"
    train_images: int | None = None  # where known before reading: settings are checked against it before anything loads

    def __init__(
        self,
        val_size: int = 0,
        image_size: int = 28,
        channels: int | None = None,
        num_classes: int | None = None,
        classes: list[str] | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        fingerprint: str | None = None,
    ):
        for key, value in (("val_size", val_size), ("image_size", image_size), ("channels", channels), ("num_classes", num_classes)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"data.{key} must be an integer, got {value!r}")
        self.val_size, self.image_size = int(val_size), int(image_size)
        self.channels, self.num_classes, self.fingerprint = channels, num_classes, fingerprint
        self.classes = tuple(str(c) for c in classes) if classes is not None else None
        self.mean = [float(v) for v in mean] if mean is not None else None
        self.std = [float(v) for v in std] if std is not None else None

    # -- what a subclass provides

    def check(self) -> None:
        """Cheap checks of what :meth:`read` will read (a folder's layout), before anything is; raises DataError."""

    def read(self) -> Images:
        """The images at any size, as uint8 (N, C, H, W) or (N, H, W); raises DataError saying what is wrong."""
        raise NotImplementedError

    def files(self) -> list[Path]:
        """The files :meth:`read` reads, for the record of what a run trained on (``provenance``). By default the file
        ``path`` names, if the dataset has one; override it where :meth:`read` reads others."""
        path = getattr(self, "path", None)
        return [Path(path)] if path is not None and Path(path).is_file() else []

    def sources(self) -> dict[str, str]:
        """``{file: SHA-256}`` of the files read, each hashed once per version of the file (:mod:`.hashes`)."""
        from mnistlab.data.hashes import file_hashes

        return file_hashes(self.files())

    def prepare_image(self, pixels: np.ndarray) -> torch.Tensor:
        """One of your own pictures, grey (H, W) or colour (H, W, 3) in [0, 1], as the dataset's images are:
        uint8 (C, image_size, image_size). Here: resized; MNIST-like datasets also fit and centre the ink."""
        x = torch.from_numpy(np.asarray(pixels, dtype=np.float32))
        x = x[None] if x.dim() == 2 else x.permute(2, 0, 1)
        x = x.mean(0, keepdim=True) if self.channels == 1 and len(x) == 3 else x.expand(self.channels or len(x), -1, -1)
        return resize(x[None], self.image_size)[0].mul(255).round().to(torch.uint8)

    # -- what every dataset does with it

    def load(self) -> Images:
        """Read, resize to ``image_size``, check the facts that are set and fill those that are not."""
        images = self.read()
        for split in ("train", "test"):
            stored = getattr(images, f"{split}_images")
            stored = stored[:, None] if stored.dim() == 3 else stored
            if stored.shape[-2:] != (self.image_size, self.image_size):
                stored = (resize(stored.float() / 255, self.image_size) * 255).round().to(torch.uint8)
            setattr(images, f"{split}_images", stored)
        found = {
            "channels": images.train_images.shape[1],
            "num_classes": len(images.classes),
            "classes": tuple(images.classes),
            "fingerprint": images.fingerprint,
        }
        for key, value in found.items():
            given = getattr(self, key)
            if given is not None and value is not None and given != value:
                raise ConfigError(f"data.{key}={show(given)}, but the data have {show(value)}: leave data.{key} unset (null)")
            setattr(self, key, value if value is not None else given)
        if self.mean is None or self.std is None:
            pixels = images.train_images.float().div(255).transpose(0, 1).flatten(1)  # (C, N*H*W)
            self.mean = self.mean or [round(float(v), 4) for v in pixels.mean(1)]
            self.std = self.std or [round(max(float(v), 1e-3), 4) for v in pixels.std(1)]
        for key in ("mean", "std"):
            if len(getattr(self, key)) != self.channels:
                raise ConfigError(f"data.{key} needs one value per channel ({self.channels}), got {getattr(self, key)}")
        return images

    def facts(self) -> dict[str, Any]:
        """The facts as a config records them (lists, not tuples)."""
        return {key: list(v) if isinstance(v := getattr(self, key), tuple) else v for key in FACTS}

    def normalize(self, images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """uint8 (N, C, H, W) (or (N, H, W)) -> float32 on ``device``, standardized per channel."""
        x = images.to(device)
        x = (x[:, None] if x.dim() == 3 else x).float().div_(255.0)
        mean, std = (torch.tensor(v, device=x.device).view(1, -1, 1, 1) for v in (self.mean, self.std))
        return x.sub_(mean).div_(std)

    def pixels(self, images: torch.Tensor) -> np.ndarray:
        """Normalized images back to pixels in [0, 1] on the CPU, for figures: (N, H, W) grey or (N, H, W, 3) colour."""
        mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (self.mean, self.std))
        x = (images.float().cpu() * std + mean).clamp(0, 1)
        return (x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)).numpy()

    def background(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """A black pixel after normalization, (1, C, 1, 1)."""
        return (-torch.tensor(self.mean) / torch.tensor(self.std)).view(1, -1, 1, 1).to(device)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Float images (N, C, H, W) in [0, 1] resized to ``size`` x ``size`` (antialiased when shrinking)."""
    shrink = images.shape[-1] > size or images.shape[-2] > size
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink).clamp(0, 1)


def show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
