"""Your own images in a folder (``data=folder data.root=DIR``): one sub-folder per class, for each split."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnistlab.data import decoded
from mnistlab.data.base import Dataset, Images
from mnistlab.data.hashes import file_hashes
from mnistlab.errors import ConfigError, DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


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

    def check(self) -> None:
        for split in ("train", "test"):
            self._files(split)

    def files(self) -> list[Path]:
        return [path for split in ("train", "test") for files in self._files(split).values() for path in files]

    def read(self) -> Images:
        splits = {split: self._files(split) for split in ("train", "test")}
        classes = tuple(splits["train"])
        if tuple(splits["test"]) != classes:
            raise DataError(f"{self.root}: test/ has the classes {list(splits['test'])}, train/ has {list(classes)}")
        files = [(split, name, path) for split, by_class in splits.items() for name, paths in by_class.items() for path in paths]
        key = (self.image_size, tuple((str(path), path.stat().st_size, path.stat().st_mtime_ns) for _, _, path in files))
        if key not in _READ:  # the same files, unchanged: read once per process
            _READ.clear()
            _READ[key] = self._read(splits, files)
        return dataclasses.replace(_READ[key])  # its own record: loading resizes into it

    def _read(self, splits: dict[str, dict[str, list[Path]]], files: list[tuple[str, str, Path]]) -> Images:
        """The images decoded at ``image_size``, from the decoded copy of these very bytes where there is one."""
        hashes = file_hashes([path for _, _, path in files])  # each file read only where it changed (:mod:`.hashes`)
        digest = hashlib.sha256()
        for split, name, path in files:
            digest.update(f"{split}/{name}/{path.name}:".encode() + bytes.fromhex(hashes[str(path.resolve())]))
        entry = f"folder-{digest.hexdigest()}-{self.image_size}.npz"  # named by the content: valid wherever it is found
        kept = decoded.load(entry, [])
        if kept is not None:
            with np.load(io.BytesIO(kept)) as stored:
                arrays = {split: stored[split] for split in ("train", "test")}
                labels = {split: torch.from_numpy(stored[f"{split}_labels"]) for split in ("train", "test")}
        else:
            arrays, labels = self._decode(splits)
            buffer = io.BytesIO()
            np.savez(buffer, **arrays, **{f"{split}_labels": labels[split].numpy() for split in labels})
            decoded.store(entry, [], buffer.getvalue())
        colour = any(((a[..., 0] != a[..., 1]) | (a[..., 1] != a[..., 2])).any() for a in arrays.values())
        tensors = {
            s: torch.from_numpy(a).permute(0, 3, 1, 2) if colour else torch.from_numpy(np.ascontiguousarray(a[..., :1])).permute(0, 3, 1, 2)
            for s, a in arrays.items()
        }
        classes = tuple(splits["train"])
        return Images(tensors["train"], labels["train"], tensors["test"], labels["test"], classes, digest.hexdigest()[:16])

    def _decode(self, splits: dict[str, dict[str, list[Path]]]) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor]]:
        from PIL import Image, UnidentifiedImageError

        arrays, labels = {}, {}
        for split, by_class in splits.items():
            pictures, targets = [], []
            for label, paths in enumerate(by_class.values()):
                for path in paths:
                    try:
                        with Image.open(path) as image:
                            rgb = image.convert("RGB").resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
                    except (OSError, UnidentifiedImageError) as err:
                        raise DataError(f"{path}: cannot be read as an image ({type(err).__name__}: {err})") from err
                    pictures.append(np.asarray(rgb, dtype=np.uint8))
                    targets.append(label)
            arrays[split], labels[split] = np.stack(pictures), torch.tensor(targets)
        return arrays, labels


_READ: dict[tuple, Images] = {}  # the folder this process read last: a sweep's jobs read it once
