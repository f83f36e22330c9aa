import gzip
import hashlib
import json
import os
import struct
from pathlib import Path

import pytest
import torch

from conftest import ROOT, run_cli
from mnistlab.data import Dataset, Idx, Images
from mnistlab.data import idx as idx_dataset
from mnistlab.data.batches import prepare
from mnistlab.data.catalog import DATASETS, MNIST, search_dirs
from mnistlab.data.idx import load_dataset, load_mnist
from mnistlab.data.idx_format import parse_idx, read_idx_file
from mnistlab.errors import DataError

CHECKSUMS = MNIST.checksums

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist (.ci/run installs it)
needs_fashion = pytest.mark.skipif(
    not FASHION_DIR.is_dir() and "fashion_mnist" not in os.environ.get("MNISTLAB_REQUIRE", ""),
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)


def idx_bytes(array: torch.Tensor) -> bytes:
    magic = 0x00000800 | array.dim()
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", s) for s in array.shape) + array.numpy().tobytes()


def test_parse_images_and_labels():
    images = torch.randint(0, 256, (3, 4, 5), dtype=torch.uint8)
    labels = torch.tensor([1, 2, 9], dtype=torch.uint8)
    assert torch.equal(parse_idx(idx_bytes(images)), images)
    assert torch.equal(parse_idx(idx_bytes(labels)), labels)


def test_truncated_file_is_named():
    raw = idx_bytes(torch.zeros(3, 4, 5, dtype=torch.uint8))[:-7]
    with pytest.raises(DataError, match="some.idx.*truncated"):
        parse_idx(raw, "some.idx")


def test_wrong_magic_is_named():
    raw = b"\x00\x00\x08\x0d" + idx_bytes(torch.zeros(2, dtype=torch.uint8))[4:]
    with pytest.raises(DataError, match="bad.idx: wrong magic number 0x0000080d"):
        parse_idx(raw, "bad.idx")


def test_gzip_and_raw_read_the_same(tmp_path):
    labels = torch.tensor([3, 1, 4, 1, 5], dtype=torch.uint8)
    raw = idx_bytes(labels)
    (tmp_path / "a").write_bytes(raw)
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    sha = hashlib.sha256(raw).hexdigest()
    assert torch.equal(read_idx_file(tmp_path / "a", sha), labels)
    assert torch.equal(read_idx_file(tmp_path / "a.gz", sha), labels)


def test_checksum_mismatch_names_the_file(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(torch.tensor([1, 2], dtype=torch.uint8))))
    with pytest.raises(DataError, match=r"x\.gz: SHA-256 .* does not match"):
        read_idx_file(path, "0" * 64)


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(idx_bytes(torch.zeros(100, dtype=torch.uint8)))[:-20])
    with pytest.raises(DataError, match=r"t\.gz: cannot be decompressed"):
        read_idx_file(path)


def test_missing_files_name_folder_and_files(tmp_path, monkeypatch):
    def offline(spec, root):
        raise OSError("network is unreachable")

    monkeypatch.setattr(idx_dataset, "_download", offline)
    with pytest.raises(DataError) as err:
        load_mnist(tmp_path, download=True)
    message = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in message and "network is unreachable" in message
    assert all(name in message for name in CHECKSUMS)


def test_data_root_is_searched_alone_and_relative_to_the_current_directory(tmp_path, monkeypatch):
    raw = tmp_path / "here" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in (ROOT / "data" / "MNIST" / "raw").glob("*.gz"):
        (raw / path.name).symlink_to(path)
    monkeypatch.chdir(tmp_path)
    assert search_dirs(MNIST, "here") == [Path("here/MNIST/raw"), Path("here")]
    assert load_mnist("here", download=False).test_images.shape == (10_000, 28, 28)


def test_without_data_root_the_environment_the_shipped_copy_the_system_and_the_cache_are_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTLAB_DATA", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    roots = search_dirs(DATASETS["fashion_mnist"], None)[1::2]
    shipped = ROOT / "mnistlab" / "bundled"  # a link to data/ in the checkout, a copy of it in the wheel
    assert roots == [tmp_path / "mine", shipped, Path("/usr/share/datasets/fashion-mnist"), tmp_path / "cache" / "mnistlab"]
    assert load_mnist().train_images.shape == (60_000, 28, 28)  # found in the shipped copy, behind an empty $MNISTLAB_DATA


def test_files_directly_in_data_root_are_found(tmp_path, monkeypatch):
    for path in (ROOT / "data" / "MNIST" / "raw").glob("*.gz"):
        (tmp_path / path.name).symlink_to(path)
    assert load_mnist(tmp_path, download=False).test_labels.shape == (10_000,)


def test_real_mnist_is_read_whole(mnist):
    assert mnist.train_images.shape == (60_000, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_images.shape == (10_000, 28, 28) and mnist.test_labels.shape == (10_000,)


def test_validation_split_is_reproducible_and_disjoint():
    """Images tagged by their index: the two splits share none, cover all, and the seed chooses them."""
    n = 1000
    images = Images(
        torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.arange(n), torch.zeros(10, 1, 2, 2, dtype=torch.uint8), torch.arange(10), ("a",)
    )
    dataset = Dataset(image_size=2, channels=1, num_classes=n, mean=[0.0], std=[1.0])
    a, b, c = (prepare(images, dataset, "cpu", val_size=100, seed=seed) for seed in (1, 1, 2))
    assert len(a.train) == 900 and len(a.val) == 100 and len(a.test) == 10
    assert set(a.val.labels.tolist()).isdisjoint(a.train.labels.tolist())
    assert sorted(a.val.labels.tolist() + a.train.labels.tolist()) == list(range(n))
    assert torch.equal(a.val.labels, b.val.labels) and not torch.equal(a.val.labels, c.val.labels)


@needs_fashion
def test_real_fashion_mnist_is_complete_and_verified():
    arrays = load_dataset("fashion_mnist", download=False)
    dataset = Idx("fashion_mnist", download=False)
    assert arrays.train_images.shape == (60_000, 28, 28) and arrays.test_images.shape == (10_000, 28, 28)
    assert arrays.spec.classes[9] == "Ankle boot"
    fashion = dataset.normalize(arrays.train_images[:10_000])
    assert abs(fashion.mean().item()) < 0.02 and abs(fashion.std().item() - 1) < 0.02  # its own statistics, not MNIST's


@needs_fashion
def test_mnist_files_are_not_taken_for_fashion_mnist(tmp_path):
    for path in (ROOT / "data" / "MNIST" / "raw").glob("*.gz"):
        (tmp_path / path.name).symlink_to(path)
    with pytest.raises(DataError, match="does not match the expected"):
        load_dataset("fashion_mnist", tmp_path, download=False)


@needs_fashion
@pytest.mark.e2e
def test_fashion_mnist_trains_from_the_command_line(tmp_path):
    proc = run_cli("data=fashion_mnist", "model=mlp", "trainer.epochs=1", "run.plots=false", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dataset"] == "fashion_mnist" and 80 < summary["final_test_acc"] < 92  # Fashion-MNIST's level, not MNIST's 97%
