"""The IDX datasets mnistlab knows (MNIST, Fashion-MNIST): their files, checksums, statistics and classes, and
where to look for them. Nothing here imports torch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mnistlab import paths
from mnistlab.errors import ConfigError

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of four IDX files in the MNIST layout: 28x28 grey images in 10 classes."""

    name: str
    title: str  # as people write it
    folder: str  # torchvision's folder name: <root>/<folder>/raw/ holds the files
    checksums: dict[str, str]  # SHA-256 of each decompressed IDX file, by file stem
    mean: float  # of the training pixels in [0, 1]
    std: float
    classes: tuple[str, ...]
    box: int = 20  # your own images are fitted into a box of this size in the 28x28 field, as the dataset's were
    center: str = "mass"  # and centred by their centre of mass (MNIST), or by their bounding box
    system_dirs: tuple[str, ...] = ()  # where an operating-system package installs the files
    install_hint: str = ""


DATASETS = {
    "mnist": DatasetSpec(
        name="mnist",
        title="MNIST",
        folder="MNIST",
        checksums={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        mean=0.1307,
        std=0.3081,
        classes=tuple("0123456789"),
    ),
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        title="Fashion-MNIST",
        folder="FashionMNIST",
        checksums={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        mean=0.2860,
        std=0.3530,
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        box=28,
        center="box",
        system_dirs=("/usr/share/datasets/fashion-mnist",),  # Debian's dataset-fashion-mnist
        install_hint="on Debian or Ubuntu: apt-get install dataset-fashion-mnist",
    ),
}
MNIST = DATASETS["mnist"]


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"data.name must be one of {', '.join(DATASETS)}, got {name!r}") from None


def search_dirs(spec: DatasetSpec, root: str | Path | None) -> list[Path]:
    """The folders that may hold ``spec``'s files, in order: ``data.root`` alone if set, else $MNISTLAB_DATA,
    the copy shipped with mnistlab, the operating system's, and the per-user cache (where downloads go).

    Under each root both torchvision's layout (``<root>/<folder>/raw``) and the files directly in it are accepted.
    """
    if root is not None:
        roots = [Path(root).expanduser()]  # relative: from the current directory
    else:
        roots = [Path(p).expanduser() for p in [os.environ.get(paths.DATA_ENV), paths.bundled_data_dir()] if p]
        roots += [Path(p) for p in spec.system_dirs] + [paths.user_cache_dir()]
    return [folder for r in roots for folder in (r / spec.folder / "raw", r)]


def download_root(root: str | Path | None) -> Path:
    """Where a download goes: ``data.root`` if set, else the per-user cache."""
    return Path(root).expanduser() if root is not None else paths.user_cache_dir()
