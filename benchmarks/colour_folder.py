"""An image folder for ``data=folder``, made from real MNIST or Fashion-MNIST images: a few classes, grey or in
colour, at another size.

In colour, each image's ink is drawn in a random colour on a random, darker background (the colours carry
nothing about the class); grey images keep their levels. Each is resized and saved as
``<out>/train/<class>/*.png`` and ``<out>/test/<class>/*.png``, training images from the dataset's training
split and test images from its test split:

    python benchmarks/colour_folder.py outputs/colour_digits --classes 3 --size 48 --train 500 --test 200
    python benchmarks/colour_folder.py outputs/clothes --source fashion_mnist --grey --classes 4 --train 150
    mnistlab data=folder data.root=outputs/colour_digits
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from mnistlab.data.idx import load_dataset

NAMES = {
    "mnist": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "fashion_mnist": ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"),
}


def colour_digit(image: np.ndarray, rng: np.random.Generator, size: int) -> Image.Image:
    """A 28x28 grey image as an RGB picture of ``size`` x ``size``: ink of one random colour over a darker one."""
    ink, paper = rng.uniform(0.5, 1.0, 3), rng.uniform(0.0, 0.4, 3)
    alpha = image.astype(np.float64)[..., None] / 255.0
    rgb = np.round((alpha * ink + (1 - alpha) * paper) * 255).astype(np.uint8)
    return Image.fromarray(rgb).resize((size, size), Image.Resampling.BICUBIC)


def write_folder(
    out: Path,
    classes: int = 3,
    size: int = 48,
    train: int = 500,
    test: int = 200,
    seed: int = 0,
    mnist=None,
    source: str = "mnist",
    colour: bool = True,
) -> Path:
    """Write the folder (``train`` and ``test`` images per class of ``source``'s first ``classes``) and return ``out``.
    ``mnist``: the source's arrays, if already loaded."""
    rng = np.random.default_rng(seed)
    arrays = mnist if mnist is not None else load_dataset(source, download=False)
    splits = {"train": (arrays.train_images, arrays.train_labels, train), "test": (arrays.test_images, arrays.test_labels, test)}
    for split, (images, labels, count) in splits.items():
        for label in range(classes):
            folder = out / split / NAMES[source][label]
            folder.mkdir(parents=True, exist_ok=True)
            picks = rng.choice(np.flatnonzero(labels.numpy() == label), count, replace=False)
            for k, i in enumerate(picks):
                if colour:
                    picture = colour_digit(images[i].numpy(), rng, size)
                else:
                    picture = Image.fromarray(images[i].numpy()).resize((size, size), Image.Resampling.BICUBIC)
                picture.save(folder / f"{k:04d}.png")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", choices=list(NAMES), default="mnist")
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--train", type=int, default=500, help="training images per class")
    parser.add_argument("--test", type=int, default=200, help="test images per class")
    parser.add_argument("--grey", action="store_true", help="keep the grey levels instead of colouring each image")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_folder(args.out, args.classes, args.size, args.train, args.test, args.seed, source=args.source, colour=not args.grey)
    kind = "grey" if args.grey else "RGB"
    print(
        f"written to {args.out}: {args.classes} classes of {args.source}, {args.train} training and {args.test} test images each, "
        f"{args.size}x{args.size} {kind}"
    )


if __name__ == "__main__":
    main()
