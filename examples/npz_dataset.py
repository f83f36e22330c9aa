"""A dataset of your own as a class: images and labels from a NumPy ``.npz`` file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnistlab.data import Dataset, Images
from mnistlab.errors import DataError


class Npz(Dataset):
    """``x_train``, ``y_train``, ``x_test``, ``y_test`` in one ``.npz``: uint8 images (N, H, W) or (N, H, W, C), integer
    labels; optional ``classes`` (names). Resizing, normalization and the facts come from :class:`Dataset`."""

    name, title = "npz", "NumPy arrays"

    def __init__(self, path: str, **common: Any):
        self.path = Path(path).expanduser()
        super().__init__(**common)

    def read(self) -> Images:
        try:
            arrays = np.load(self.path)
            x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        except (OSError, KeyError, ValueError) as err:
            raise DataError(f"{self.path}: cannot be read as x_train, y_train, x_test, y_test ({type(err).__name__}: {err})") from err
        images = [torch.from_numpy(x if x.ndim == 3 else x.transpose(0, 3, 1, 2)).to(torch.uint8) for x in (x_train, x_test)]
        classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else [str(c) for c in range(int(y_train.max()) + 1)]
        return Images(images[0], torch.from_numpy(y_train).long(), images[1], torch.from_numpy(y_test).long(), tuple(classes))
