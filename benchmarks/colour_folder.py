"""An image folder for ``data=folder``, made from real MNIST digits: a few classes, in colour, at another size.

Each digit is drawn in a random colour on a random, darker background (the colours carry nothing about the
class) and resized, then saved as ``<out>/train/<class>/*.png`` and ``<out>/test/<class>/*.png``, training
images from MNIST's training split and test images from its test split:

    python benchmarks/colour_folder.py outputs/colour_digits --classes 3 --size 48 --train 500 --test 200
    mnistlab data=folder data.root=outputs/colour_digits
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from mnistlab.data.idx import load_mnist

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def colour_digit(image: np.ndarray, rng: np.random.Generator, size: int) -> Image.Image:
    """A 28x28 grey digit as an RGB picture of ``size`` x ``size``: ink of one random colour over a darker one."""
    ink, paper = rng.uniform(0.5, 1.0, 3), rng.uniform(0.0, 0.4, 3)
    alpha = image.astype(np.float64)[..., None] / 255.0
    rgb = np.round((alpha * ink + (1 - alpha) * paper) * 255).astype(np.uint8)
    return Image.fromarray(rgb).resize((size, size), Image.Resampling.BICUBIC)


def write_folder(out: Path, classes: int = 3, size: int = 48, train: int = 500, test: int = 200, seed: int = 0, mnist=None) -> Path:
    """Write the folder (``train`` and ``test`` images per class) and return ``out``."""
    rng = np.random.default_rng(seed)
    mnist = mnist if mnist is not None else load_mnist(download=False)
    splits = {"train": (mnist.train_images, mnist.train_labels, train), "test": (mnist.test_images, mnist.test_labels, test)}
    for split, (images, labels, count) in splits.items():
        for digit in range(classes):
            folder = out / split / NAMES[digit]
            folder.mkdir(parents=True, exist_ok=True)
            picks = rng.choice(np.flatnonzero(labels.numpy() == digit), count, replace=False)
            for k, i in enumerate(picks):
                colour_digit(images[i].numpy(), rng, size).save(folder / f"{k:04d}.png")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--train", type=int, default=500, help="training images per class")
    parser.add_argument("--test", type=int, default=200, help="test images per class")
    args = parser.parse_args()
    write_folder(args.out, args.classes, args.size, args.train, args.test)
    print(
        f"written to {args.out}: {args.classes} classes of {args.train} training and {args.test} test images, {args.size}x{args.size} RGB"
    )


if __name__ == "__main__":
    main()
