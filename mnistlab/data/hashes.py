"""SHA-256 of data files, each computed once per file version: cached by path, size and modification time in the
user's cache folder, so a launch re-reads a file only when it changed."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from mnistlab import paths

CACHE_FILE = "file-hashes.json"
_memory: dict[str, tuple[int, int, str]] = {}


def _cache_path() -> Path:
    return paths.user_cache_dir() / CACHE_FILE


def _load() -> dict[str, list]:
    try:
        return json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}


def sha256_of(path: Path) -> str:
    """The SHA-256 of ``path``'s bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(files: list[Path]) -> dict[str, str]:
    """``{absolute path: SHA-256}`` of ``files``; a file whose size and modification time are those cached is not read."""
    stored, out, new = None, {}, {}
    for path in files:
        key = str(Path(path).resolve())
        stat = os.stat(key)
        mark = (stat.st_size, stat.st_mtime_ns)
        known = _memory.get(key)
        if known is None:
            stored = _load() if stored is None else stored
            entry = stored.get(key)
            known = (entry[0], entry[1], entry[2]) if isinstance(entry, list) and len(entry) == 3 else None
        if known is None or known[:2] != mark:
            known = (*mark, sha256_of(Path(key)))
            new[key] = list(known)
        _memory[key] = known
        out[key] = known[2]
    if new:
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs the next launch a read
            merged = _load() | new
            _cache_path().parent.mkdir(parents=True, exist_ok=True)
            tmp = _cache_path().with_name(f"{CACHE_FILE}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(merged))
            tmp.replace(_cache_path())
    return out
