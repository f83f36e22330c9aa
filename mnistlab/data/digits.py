"""The UCI handwritten digits that scikit-learn bundles (``data=digits``, the ``digits`` extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from mnistlab import extras
from mnistlab.data.base import Dataset, Images


class Digits(Dataset):
    """1,797 grey 8x8 images, 0-16, in 10 classes. The split is fixed: the first 1,347 images (75%, in
    scikit-learn's order) train, the last 450 test."""

    name, title = "digits", "UCI digits"
    TRAIN = train_images = 1347

    def files(self) -> list[Path]:
        """The file scikit-learn reads the digits from."""
        try:
            spec = importlib.util.find_spec("sklearn.datasets")
        except (ImportError, ValueError):
            return []
        path = Path(spec.origin).parent / "data" / "digits.csv.gz" if spec and spec.origin else None
        return [path] if path is not None and path.is_file() else []

    def read(self) -> Images:
        extras.require("digits", "data=digits")
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = torch.from_numpy(np.round(bunch.images * 255 / 16).astype(np.uint8))
        labels = torch.from_numpy(bunch.target.astype(np.int64))
        n = self.TRAIN
        return Images(images[:n], labels[:n], images[n:], labels[n:], tuple(str(c) for c in bunch.target_names))
