"""The IDX file format: reading a gzip or raw file, parsing it, verifying its SHA-256."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import torch

from mnistlab.data import decoded
from mnistlab.errors import DataError

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
    data = bytearray(memoryview(raw)[header:])  # one copy, writable as torch wants it
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
    """Read a gzip or raw IDX file, parse it, and verify the decompressed bytes' SHA-256; a file verified before and
    unchanged since is read from its decoded copy (:mod:`.decoded`)."""
    if sha256 is not None:
        kept = decoded.load(f"{sha256}.idx", [path])
        if kept is not None:
            return parse_idx(kept, str(path))
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
        decoded.store(f"{sha256}.idx", [path], raw)
    return tensor
