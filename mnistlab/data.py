"""MNIST-like datasets from IDX files: finding, reading, checksums, splits and on-device batching."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from mnistlab import paths
from mnistlab.dataset import Dataset, Images
from mnistlab.errors import DataError
from mnistlab.idx import MNIST, STEMS, DatasetSpec, dataset_spec, download_root, search_dirs

CHECKSUMS = MNIST.checksums

IDX_MAGIC = {0x00000801: 1, 0x00000803: 3}  # unsigned-byte labels (1-D), images (3-D)


def parse_idx(raw: bytes, name: str = "<bytes>") -> torch.Tensor:
    """Parse decompressed IDX bytes (unsigned byte data) into a uint8 tensor."""
    if len(raw) < 8:
        raise DataError(f"{name}: too short to be an IDX file ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in IDX_MAGIC:
        raise DataError(f"{name}: wrong magic number 0x{magic:08x}; expected 0x00000801 or 0x00000803")
    ndim = IDX_MAGIC[magic]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated header")
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(torch.tensor(shape).prod())
    if len(raw) != expected:
        raise DataError(f"{name}: size {len(raw)} bytes does not match shape {shape} ({expected} bytes); the file is truncated or corrupt")
    data = bytearray(raw[header:])
    return torch.frombuffer(data, dtype=torch.uint8).reshape(shape)


def find_file(folder: Path, stem: str) -> Path | None:
    """The gzip or raw copy of one IDX file in ``folder``, if present."""
    for candidate in (folder / f"{stem}.gz", folder / stem):
        try:
            if candidate.is_file():
                return candidate
        except PermissionError as err:
            raise DataError(f"{folder}: cannot be searched: {err.strerror}; make it readable (chmod a+rx) or set data.root") from err
    return None


def read_idx_file(path: Path, sha256: str | None = None) -> torch.Tensor:
    """Read a gzip or raw IDX file, parse it, and verify the decompressed bytes' SHA-256."""
    try:
        raw = path.read_bytes()
    except OSError as err:  # permission denied, an I/O error: the file may be fine, reading it is not
        hint = "; make it readable (chmod a+r) or set data.root to a copy you can read" if isinstance(err, PermissionError) else ""
        raise DataError(f"{path}: cannot be read: {err.strerror or err}{hint}") from err
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot be decompressed ({err}); the file is truncated or corrupt, replace it") from err
    tensor = parse_idx(raw, str(path))  # structural errors first: they say more than a checksum
    if sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != sha256:
            raise DataError(
                f"{path}: SHA-256 {digest} does not match the expected {sha256}; the file is corrupt, replace it with the original"
            )
    return tensor


def _download(spec: DatasetSpec, root: Path) -> None:
    """Fetch the files with torchvision; raises when that is impossible (e.g. offline)."""
    import torchvision.datasets

    dataset = getattr(torchvision.datasets, spec.folder)
    dataset(str(root), train=True, download=True)
    dataset(str(root), train=False, download=True)


@dataclass
class Arrays:
    """A dataset's splits as uint8 images (N, 28, 28) and int64 labels (N,)."""

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


def load_dataset(name: str = "mnist", root: str | Path | None = None, download: bool = True) -> Arrays:
    """Find, read and verify a dataset (see :func:`search_dirs`); with ``download``, fetch it when no folder has it."""
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
    arrays = {stem: read_idx_file(path, spec.checksums[stem]) for stem, path in files.items()}
    return Arrays(
        train_images=arrays["train-images-idx3-ubyte"],
        train_labels=arrays["train-labels-idx1-ubyte"].long(),
        test_images=arrays["t10k-images-idx3-ubyte"],
        test_labels=arrays["t10k-labels-idx1-ubyte"].long(),
        spec=spec,
    )


def load_mnist(root: str | Path | None = None, download: bool = True) -> Arrays:
    """MNIST (see :func:`load_dataset`)."""
    return load_dataset("mnist", root, download)


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

    @property
    def background(self) -> torch.Tensor:
        """A black pixel after normalization, (1, C, 1, 1) on the device."""
        return self.dataset.background(self.train.labels.device)


def as_images(arrays: Arrays) -> tuple[Images, Dataset]:
    """IDX arrays (N, 28, 28) as images (N, 1, 28, 28), with the dataset that describes them."""
    from mnistlab.dataset import Idx

    dataset = Idx(arrays.spec.name, channels=1, num_classes=len(arrays.spec.classes), classes=list(arrays.spec.classes))
    images = Images(arrays.train_images[:, None], arrays.train_labels, arrays.test_images[:, None], arrays.test_labels, arrays.spec.classes)
    return images, dataset


def prepare(
    images: Images | Arrays, device: torch.device | str, val_size: int = 0, seed: int = 0, dataset: Dataset | None = None
) -> DeviceData:
    """Move a dataset to ``device``, normalized by ``dataset``; carve a validation split of ``val_size`` images, chosen by ``seed``.

    ``images`` may also be IDX arrays (``load_dataset``), which carry their own dataset.
    """
    if isinstance(images, Arrays):
        images, dataset = as_images(images)
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


def ordered_batches(split: Split, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches in dataset order (for evaluation)."""
    for start in range(0, len(split), batch_size):
        yield split.images[start : start + batch_size], split.labels[start : start + batch_size]


def steps_per_epoch(n: int, batch_size: int, limit: int | None = None) -> int:
    """Training steps in one epoch of ``n`` images, at most ``limit``."""
    steps = -(-n // batch_size)
    return min(steps, limit) if limit else steps
