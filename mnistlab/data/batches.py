"""A dataset on the device: splits as normalized tensors, a validation split drawn by the seed, and batches
that are index slices of a fresh permutation each epoch (no DataLoader, no per-sample Python)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from mnistlab.data.base import Dataset, Images


@dataclass
class Split:
    """Images (normalized, on the device) and labels of one split."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class DeviceData:
    """Train, optional validation, and test splits held on the device, and the dataset they came from."""

    train: Split
    test: Split
    val: Split | None = None
    dataset: Dataset | None = None


def prepare(images: Images, dataset: Dataset, device: torch.device | str, val_size: int = 0, seed: int = 0) -> DeviceData:
    """Move a dataset to ``device``, normalized by ``dataset``; carve a validation split of ``val_size`` images, chosen by ``seed``."""
    n = len(images.train_labels)
    x, labels = images.train_images, images.train_labels
    val = None
    if val_size:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        val_idx, train_idx = order[:val_size], order[val_size:]
        val = Split(dataset.normalize(x[val_idx], device), labels[val_idx].to(device))
        x, labels = x[train_idx], labels[train_idx]
    return DeviceData(
        train=Split(dataset.normalize(x, device), labels.to(device)),
        test=Split(dataset.normalize(images.test_images, device), images.test_labels.to(device)),
        val=val,
        dataset=dataset,
    )


def shuffled_batches(split: Split, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of one epoch: slices of a fresh random permutation, gathered on the device."""
    order = torch.randperm(len(split), generator=generator, device=generator.device).to(split.labels.device)
    for start in range(0, len(split), batch_size):
        idx = order[start : start + batch_size]
        yield split.images[idx], split.labels[idx]


def epoch_batches(split: Split, batch_size: int, generator: torch.Generator, steps: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` batches: one shuffled pass after another (:func:`shuffled_batches`) until that many are taken."""
    while steps > 0:
        for batch in shuffled_batches(split, batch_size, generator):
            yield batch
            steps -= 1
            if steps == 0:
                return


def steps_per_epoch(n: int, batch_size: int, limit: int | None = None, minimum: int | None = None) -> int:
    """Training steps in one epoch of ``n`` images: one pass, or as many passes as ``minimum`` steps take; at most ``limit``."""
    steps = max(-(-n // batch_size), minimum or 0)
    return min(steps, limit) if limit else steps
