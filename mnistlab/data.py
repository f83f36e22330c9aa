"""MNIST from IDX files: reading, checksums, splits and on-device batching."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mnistlab.errors import DataError

MEAN, STD = 0.1307, 0.3081
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# SHA-256 of the decompressed IDX files.
CHECKSUMS = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
IDX_MAGIC = {0x00000801: 1, 0x00000803: 3}  # unsigned-byte labels (1-D), images (3-D)


def resolve_root(root: str | Path) -> Path:
    """Resolve ``data.root``: relative paths are taken from the project, not the run directory."""
    path = Path(root).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


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


def _download(root: Path) -> None:
    """Fetch the files with torchvision; raises when that is impossible (e.g. offline)."""
    from torchvision.datasets import MNIST

    MNIST(str(root), train=True, download=True)
    MNIST(str(root), train=False, download=True)


@dataclass
class MnistArrays:
    """The MNIST splits as uint8 images (N, 28, 28) and int64 labels (N,)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def load_mnist(root: str | Path = "data", download: bool = True) -> MnistArrays:
    """Load and verify MNIST from ``<root>/MNIST/raw`` (torchvision's layout)."""
    folder = resolve_root(root) / "MNIST" / "raw"
    missing = [stem for stem in CHECKSUMS if find_file(folder, stem) is None]
    if missing and download:
        try:
            _download(resolve_root(root))
        except Exception as err:  # offline, permission, mirror down: one clear message below
            download_error = f" (download failed: {type(err).__name__}: {err})"
        else:
            download_error = ""
        missing = [stem for stem in CHECKSUMS if find_file(folder, stem) is None]
    else:
        download_error = ""
    if missing:
        raise DataError(
            f"MNIST files missing in {folder}: {', '.join(missing)}{download_error}. "
            f"Put the four files {', '.join(f'{s}.gz' for s in CHECKSUMS)} (gzip or raw) there, "
            "or set data.root to the folder that holds MNIST/raw."
        )
    arrays = {stem: read_idx_file(find_file(folder, stem), sha) for stem, sha in CHECKSUMS.items()}
    return MnistArrays(
        train_images=arrays["train-images-idx3-ubyte"],
        train_labels=arrays["train-labels-idx1-ubyte"].long(),
        test_images=arrays["t10k-images-idx3-ubyte"],
        test_labels=arrays["t10k-labels-idx1-ubyte"].long(),
    )


def normalize(images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) on ``device``, standardized with MNIST's mean and std."""
    x = images.to(device).unsqueeze(1).float().div_(255.0)
    return x.sub_(MEAN).div_(STD)


def pixels(images: torch.Tensor) -> np.ndarray:
    """Normalized images (N, 1, H, W) back to pixel values in [0, 1], (N, H, W) on the CPU, for figures."""
    return (images[:, 0].float().cpu() * STD + MEAN).numpy()


@dataclass
class Split:
    """Images (normalized, on the device) and labels of one split."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class DeviceData:
    """Train, optional validation, and test splits held on the device."""

    train: Split
    test: Split
    val: Split | None = None


def prepare(arrays: MnistArrays, device: torch.device | str, val_size: int = 0, seed: int = 0) -> DeviceData:
    """Move MNIST to ``device``; carve a validation split of ``val_size`` images, chosen by ``seed``."""
    n = len(arrays.train_labels)
    images, labels = arrays.train_images, arrays.train_labels
    val = None
    if val_size:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        val_idx, train_idx = order[:val_size], order[val_size:]
        val = Split(normalize(images[val_idx], device), labels[val_idx].to(device))
        images, labels = images[train_idx], labels[train_idx]
    return DeviceData(
        train=Split(normalize(images, device), labels.to(device)),
        test=Split(normalize(arrays.test_images, device), arrays.test_labels.to(device)),
        val=val,
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
