import gzip
import hashlib
import struct

import pytest
import torch

from mnistlab import data
from mnistlab.data import CHECKSUMS, DataError, load_mnist, parse_idx, prepare, read_idx_file, shuffled_batches


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
    def offline(root):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data, "_download", offline)
    with pytest.raises(DataError) as err:
        load_mnist(tmp_path, download=True)
    message = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in message and "network is unreachable" in message
    assert all(name in message for name in CHECKSUMS)


def test_relative_root_resolves_against_the_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert data.resolve_root("data") == data.PROJECT_ROOT / "data"


def test_real_mnist_is_complete(mnist):
    assert mnist.train_images.shape == (60_000, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_images.shape == (10_000, 28, 28)
    assert mnist.train_labels.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert mnist.test_labels.shape == (10_000,)


def test_validation_split_is_reproducible_and_disjoint(mnist):
    a = prepare(mnist, "cpu", val_size=5000, seed=1)
    b = prepare(mnist, "cpu", val_size=5000, seed=1)
    c = prepare(mnist, "cpu", val_size=5000, seed=2)
    assert len(a.train) == 55_000 and len(a.val) == 5000 and len(a.test) == 10_000
    assert torch.equal(a.val.labels, b.val.labels) and not torch.equal(a.val.labels, c.val.labels)
    assert abs(a.train.images.mean().item()) < 0.05 and abs(a.train.images.std().item() - 1) < 0.05


def test_epoch_batches_cover_every_sample_once(tiny_data):
    tagged = data.Split(torch.arange(256).float().view(256, 1, 1, 1), torch.arange(256))
    g = torch.Generator().manual_seed(0)
    seen = torch.cat([y for _, y in shuffled_batches(tagged, 100, g)])
    assert sorted(seen.tolist()) == list(range(256)) and seen.tolist() != list(range(256))
