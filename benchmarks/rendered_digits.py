"""How well ``mnistlab-predict`` reads digits that are not MNIST's own files.

MNIST test digits become a user's pictures: enlarged 2-6x, stretched by up to 20%, placed off-centre on a
larger canvas, every other one dark on light, saved as PNGs. They are then read back and classified as
``mnistlab-predict`` does, and compared with the same model on the stored 28x28 images:

    python benchmarks/rendered_digits.py outputs/runs/<run> --n 1000
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from mnistlab.commands.predict import classify
from mnistlab.data.idx import load_mnist
from mnistlab.data.pictures import preprocess
from mnistlab.runs.trained import load_run


def render(image: np.ndarray, rng: np.random.Generator, dark_on_light: bool) -> Image.Image:
    """One 28x28 uint8 digit as a user's own picture (RGB, larger, stretched, off-centre, maybe inverted)."""
    scale = rng.uniform(2, 6)
    size = (round(28 * scale * rng.uniform(0.8, 1.2)), round(28 * scale))
    digit = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))
    canvas = np.zeros((digit.shape[0] + rng.integers(0, 60), digit.shape[1] + rng.integers(0, 60)), np.uint8)
    top, left = rng.integers(0, canvas.shape[0] - digit.shape[0] + 1), rng.integers(0, canvas.shape[1] - digit.shape[1] + 1)
    canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return Image.fromarray(255 - canvas if dark_on_light else canvas).convert("RGB")


def render_test_digits(folder: Path, n: int, seed: int = 0, images: np.ndarray | None = None) -> tuple[list[Path], np.ndarray]:
    """Save ``n`` random MNIST test digits (of ``images``, else read) as PNGs in ``folder``; returns the files and the test indices."""
    rng = np.random.default_rng(seed)
    images = load_mnist(download=False).test_images.numpy() if images is None else images
    picks = rng.choice(len(images), n, replace=False)
    paths = []
    for k, i in enumerate(picks):
        paths.append(folder / f"{k:04d}.png")
        render(images[i], rng, dark_on_light=bool(k % 2)).save(paths[-1])
    return paths, picks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    trained = load_run(args.run_dir)
    mnist = load_mnist(download=False)
    with tempfile.TemporaryDirectory() as tmp:
        paths, picks = render_test_digits(Path(tmp), args.n, images=mnist.test_images.numpy())
        predicted, _ = classify(trained, preprocess(paths, trained.dataset))
    stored, _ = classify(trained, mnist.test_images[picks])
    labels = mnist.test_labels[picks]
    print(
        f"rendered PNGs: {int((predicted == labels).sum())}/{args.n} right; the same digits as stored: {int((stored == labels).sum())}/{args.n}"
    )


if __name__ == "__main__":
    main()
