"""Decoded data kept on disk, so that a launch reads a dataset in milliseconds instead of decompressing, verifying or
decoding it again: each entry is the decoded bytes of one source, valid while the source's size and modification
time are those it was made from (and its own size is what was written).

An IDX file's entry is its decompressed bytes, named by their SHA-256, which were verified when the entry was
made; a folder's is its images decoded at one size, named by the folder's content digest. Entries live in the
user's cache folder (``$XDG_CACHE_HOME/mnistlab/decoded``); a cache that cannot be written only costs the next
launch the work again.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from mnistlab import paths


def _folder() -> Path:
    return paths.user_cache_dir() / "decoded"


def _mark(path: Path) -> list[int]:
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def load(name: str, sources: list[Path]) -> bytes | None:
    """The entry ``name`` if it was made from ``sources`` as they are now, else None."""
    entry, record = _folder() / name, _folder() / f"{name}.json"
    try:
        made = json.loads(record.read_text())
        if made["sources"] != {str(p): _mark(p) for p in sources} or made["size"] != entry.stat().st_size:
            return None
        return entry.read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(name: str, sources: list[Path], data: bytes) -> None:
    """Keep ``data`` as entry ``name``, made from ``sources`` as they are now."""
    with contextlib.suppress(OSError):
        folder = _folder()
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{name}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        tmp.replace(folder / name)
        record = {"sources": {str(p): _mark(p) for p in sources}, "size": len(data)}
        tmp.write_text(json.dumps(record))
        tmp.replace(folder / f"{name}.json")
