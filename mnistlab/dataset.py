"""The ``data`` group: a dataset is a class that reads images and labels, and knows what a model and a run need of them.

Every dataset takes the same keys beside its own: ``val_size`` (training images held out for validation),
``image_size`` (images are resized to it), and the facts ``channels``, ``num_classes``, ``classes``, ``mean``,
``std`` (per channel, of the training pixels in [0, 1]) and ``fingerprint``. A fact left ``null`` is filled
from the data when a run starts and recorded in its config, so the models read ``${data.channels}`` and
``${data.num_classes}`` by interpolation, and a folder whose images changed changes the run's identity (a
resume is refused). A fact that is set must agree with the data.

Ours: :class:`Idx` (MNIST, Fashion-MNIST), :class:`Digits` (scikit-learn's UCI digits) and :class:`Folder`
(your own images). A dataset of your own subclasses :class:`Dataset` and implements :meth:`Dataset.read`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mnistlab.errors import ConfigError, DataError

FACTS = ("channels", "num_classes", "classes", "mean", "std", "fingerprint")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


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

    def read(self) -> Images:
        """The images at any size, as uint8 (N, C, H, W) or (N, H, W); raises DataError saying what is wrong."""
        raise NotImplementedError

    def prepare_image(self, pixels: np.ndarray) -> torch.Tensor:
        """One of your own pictures, grey (H, W) or colour (H, W, 3) in [0, 1], as the dataset's images are:
        uint8 (C, image_size, image_size). Here: resized; MNIST-like datasets also fit and centre the ink."""
        x = torch.from_numpy(np.asarray(pixels, dtype=np.float32))
        x = x[None] if x.dim() == 2 else x.permute(2, 0, 1)
        x = x.mean(0, keepdim=True) if self.channels == 1 and len(x) == 3 else x.expand(self.channels or len(x), -1, -1)
        return _resize(x[None], self.image_size)[0].mul(255).round().to(torch.uint8)

    # -- what every dataset does with it

    def load(self) -> Images:
        """Read, resize to ``image_size``, check the facts that are set and fill those that are not."""
        images = self.read()
        for split in ("train", "test"):
            stored = getattr(images, f"{split}_images")
            stored = stored[:, None] if stored.dim() == 3 else stored
            if stored.shape[-2:] != (self.image_size, self.image_size):
                stored = (_resize(stored.float() / 255, self.image_size) * 255).round().to(torch.uint8)
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
                raise ConfigError(f"data.{key}={_show(given)}, but the data have {_show(value)}: leave data.{key} unset (null)")
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


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Float images (N, C, H, W) in [0, 1] resized to ``size`` x ``size`` (antialiased when shrinking)."""
    shrink = images.shape[-1] > size or images.shape[-2] > size
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink).clamp(0, 1)


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


class Idx(Dataset):
    """MNIST or Fashion-MNIST from their four IDX files, checksum-verified (``mnistlab/idx.py`` lists them)."""

    def __init__(self, name: str = "mnist", root: str | None = None, download: bool = True, **common: Any):
        from mnistlab.idx import dataset_spec

        self.spec = dataset_spec(name)
        self.name, self.root, self.download, self.title = name, root, download, self.spec.title
        self.train_images = 60_000  # MNIST's and Fashion-MNIST's
        for key, value in (("mean", [self.spec.mean]), ("std", [self.spec.std])):
            common[key] = value if common.get(key) is None else common[key]
        super().__init__(**common)

    def read(self) -> Images:
        from mnistlab.data import load_dataset

        arrays = load_dataset(self.name, self.root, download=self.download)
        return Images(arrays.train_images, arrays.train_labels, arrays.test_images, arrays.test_labels, self.spec.classes)

    def prepare_image(self, pixels: np.ndarray) -> torch.Tensor:
        """Ink fitted into the dataset's box and centred as its images were, then resized to ``image_size``."""
        from mnistlab.predict import to_mnist

        grey = pixels.mean(2) if pixels.ndim == 3 else pixels
        field = torch.from_numpy(to_mnist(grey, self.spec.box, self.spec.center))[None, None].float() / 255
        return (_resize(field, self.image_size)[0] * 255).round().to(torch.uint8)


class Digits(Dataset):
    """The UCI handwritten digits that scikit-learn bundles: 1,797 grey 8x8 images, 0-16, in 10 classes.

    The split is fixed: the first 1,347 images (75%, in scikit-learn's order) train, the last 450 test.
    """

    name, title = "digits", "UCI digits"
    TRAIN = train_images = 1347

    def read(self) -> Images:
        from mnistlab import extras

        extras.require("digits", "data=digits")
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = torch.from_numpy(np.round(bunch.images * 255 / 16).astype(np.uint8))
        labels = torch.from_numpy(bunch.target.astype(np.int64))
        n = self.TRAIN
        return Images(images[:n], labels[:n], images[n:], labels[n:], tuple(str(c) for c in bunch.target_names))


class Folder(Dataset):
    """Your own images: ``<root>/train/<class>/*.png`` and ``<root>/test/<class>/*.png`` (any format PIL reads).

    Any size, resized to ``image_size``; grey, or 3 channels when any image has colour. Classes are the
    folder names, sorted. The fingerprint is a SHA-256 over every file's path and bytes.
    """

    name, title = "folder", "image folder"

    def __init__(self, root: str | None = None, **common: Any):
        if not root:
            raise ConfigError("data.root must name the folder holding train/<class>/ and test/<class>/ (data=folder data.root=DIR)")
        self.root = root
        super().__init__(**common)

    def _files(self, split: str) -> dict[str, list[Path]]:
        folder = Path(self.root).expanduser() / split
        if not folder.is_dir():
            raise DataError(
                f"{folder} is missing: data=folder reads {Path(self.root) / 'train'}/<class>/ and {Path(self.root) / 'test'}/<class>/"
            )
        classes = {
            d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) for d in sorted(folder.iterdir()) if d.is_dir()
        }
        empty = [name for name, files in classes.items() if not files]
        if len(classes) < 2 or empty:
            raise DataError(f"{folder} must hold a folder of images per class (at least 2); {', '.join(empty) or 'none'} holds none")
        return classes

    def read(self) -> Images:
        from PIL import Image, UnidentifiedImageError

        splits = {split: self._files(split) for split in ("train", "test")}
        classes = tuple(splits["train"])
        if tuple(splits["test"]) != classes:
            raise DataError(f"{self.root}: test/ has the classes {list(splits['test'])}, train/ has {list(classes)}")
        digest, arrays, labels = hashlib.sha256(), {}, {}
        for split, by_class in splits.items():
            pictures, targets = [], []
            for label, (name, files) in enumerate(by_class.items()):
                for path in files:
                    raw = path.read_bytes()
                    digest.update(f"{split}/{name}/{path.name}:".encode() + hashlib.sha256(raw).digest())
                    try:
                        with Image.open(path) as image:
                            rgb = image.convert("RGB").resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
                    except (OSError, UnidentifiedImageError) as err:
                        raise DataError(f"{path}: cannot be read as an image ({type(err).__name__}: {err})") from err
                    pictures.append(np.asarray(rgb, dtype=np.uint8))
                    targets.append(label)
            arrays[split], labels[split] = np.stack(pictures), torch.tensor(targets)
        colour = any(((a[..., 0] != a[..., 1]) | (a[..., 1] != a[..., 2])).any() for a in arrays.values())
        tensors = {
            s: torch.from_numpy(a).permute(0, 3, 1, 2) if colour else torch.from_numpy(a[..., :1]).permute(0, 3, 1, 2)
            for s, a in arrays.items()
        }
        return Images(tensors["train"], labels["train"], tensors["test"], labels["test"], classes, digest.hexdigest()[:16])
