"""MNIST and Fashion-MNIST from their four IDX files: found where the catalog says, checksum-verified."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnistlab import paths
from mnistlab.data.base import Dataset, Images, resize
from mnistlab.data.catalog import MNIST, STEMS, DatasetSpec, dataset_spec, download_root, search_dirs
from mnistlab.data.idx_format import find_file, read_idx_file
from mnistlab.data.pictures import to_mnist
from mnistlab.errors import DataError


@dataclass
class Arrays:
    """An IDX dataset's splits as read: uint8 images (N, 28, 28) and int64 labels (N,)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    spec: DatasetSpec = MNIST


def _locate(folders: list[Path]) -> dict[str, Path] | None:
    """The four files from the first folder that holds them all."""
    for folder in folders:
        files = {stem: find_file(folder, stem) for stem in STEMS}
        if all(files.values()):
            return files  # type: ignore[return-value]
    return None


def _download(spec: DatasetSpec, root: Path) -> None:
    """Fetch the files with torchvision; raises when that is impossible (e.g. offline)."""
    import torchvision.datasets

    dataset = getattr(torchvision.datasets, spec.folder)
    dataset(str(root), train=True, download=True)
    dataset(str(root), train=False, download=True)


def load_dataset(name: str = "mnist", root: str | Path | None = None, download: bool = True) -> Arrays:
    """Find, read and verify an IDX dataset (see :func:`search_dirs`); with ``download``, fetch it when no folder has it."""
    spec = dataset_spec(name)
    folders = search_dirs(spec, root)
    files = _locate(folders)
    download_error = ""
    if files is None and download:
        try:
            _download(spec, download_root(root))
        except Exception as err:  # offline, permission, mirror down: one clear message below
            download_error = f"; the download failed ({type(err).__name__}: {err})"
        files = _locate(folders)
    if files is None:
        hint = f"; {spec.install_hint}" if spec.install_hint else ""
        raise DataError(
            f"{spec.title} files missing in {', '.join(map(str, folders))}: {', '.join(f'{s}.gz' for s in STEMS)} (gzip or raw)"
            f"{download_error}. Put them in one of those folders, set data.root to the folder that holds them, or set ${paths.DATA_ENV}{hint}."
        )
    key = (name, tuple((str(path), os.stat(path).st_size, os.stat(path).st_mtime_ns) for path in files.values()))
    if key not in _READ:  # the same files, unchanged: read once per process
        _READ.clear()  # one dataset held at a time
        _READ[key] = _read(spec, files)
    return _READ[key]


_READ: dict[tuple, Arrays] = {}  # the dataset this process read last: a sweep's jobs read it once


def _read(spec: DatasetSpec, files: dict[str, Path]) -> Arrays:
    arrays = {stem: read_idx_file(path, spec.checksums[stem]) for stem, path in files.items()}
    return Arrays(
        train_images=arrays["train-images-idx3-ubyte"],
        train_labels=arrays["train-labels-idx1-ubyte"].long(),
        test_images=arrays["t10k-images-idx3-ubyte"],
        test_labels=arrays["t10k-labels-idx1-ubyte"].long(),
        spec=spec,
    )


def load_mnist(root: str | Path | None = None, download: bool = True) -> Arrays:
    """MNIST's arrays (see :func:`load_dataset`)."""
    return load_dataset("mnist", root, download)


class Idx(Dataset):
    """MNIST or Fashion-MNIST from their four IDX files, checksum-verified (the catalog lists them)."""

    train_images = 60_000  # MNIST's and Fashion-MNIST's, known before reading

    def __init__(self, name: str = "mnist", root: str | None = None, download: bool = True, **common: Any):
        self.spec = dataset_spec(name)
        self.name, self.root, self.download, self.title = name, root, download, self.spec.title
        for key, value in (("mean", [self.spec.mean]), ("std", [self.spec.std])):
            common[key] = value if common.get(key) is None else common[key]
        super().__init__(**common)

    def files(self) -> list[Path]:
        found = _locate(search_dirs(self.spec, self.root))
        return list(found.values()) if found else []

    def sources(self) -> dict[str, str]:
        """The four files and the SHA-256 of their decompressed bytes, which reading them verifies."""
        found = _locate(search_dirs(self.spec, self.root)) or {}
        return {str(path.resolve()): self.spec.checksums[stem] for stem, path in found.items()}

    def read(self) -> Images:
        arrays = load_dataset(self.name, self.root, download=self.download)
        return Images(arrays.train_images, arrays.train_labels, arrays.test_images, arrays.test_labels, self.spec.classes)

    def prepare_image(self, pixels: np.ndarray) -> torch.Tensor:
        """Ink fitted into the dataset's box and centred as its images were, then resized to ``image_size``."""
        grey = pixels.mean(2) if pixels.ndim == 3 else pixels
        field = torch.from_numpy(to_mnist(grey, self.spec.box, self.spec.center))[None, None].float() / 255
        return (resize(field, self.image_size)[0] * 255).round().to(torch.uint8)
