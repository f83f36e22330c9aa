"""Where mnistlab finds its configs and data, and where it writes: the same in a checkout and an installed wheel.

Nothing here imports torch, so the command line can compose and print a config quickly.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT_DIR = PACKAGE_DIR.parent  # the repository root, when mnistlab runs from a checkout

DATA_ENV = "MNISTLAB_DATA"  # a folder holding datasets, searched first
OUTPUTS_ENV = "MNISTLAB_OUTPUTS"  # where runs and sweeps go instead of ./outputs (see conf/config.yaml)


def config_dir() -> Path:
    """The configs: shipped inside the wheel as ``mnistlab/conf``; in a checkout, its top-level ``conf/``."""
    packaged = PACKAGE_DIR / "conf"
    return packaged if packaged.is_dir() else CHECKOUT_DIR / "conf"


def bundled_data_dir() -> Path | None:
    """The MNIST copy that ships with mnistlab: ``mnistlab/bundled`` in the wheel, ``data/`` in a checkout."""
    for folder in (PACKAGE_DIR / "bundled", CHECKOUT_DIR / "data"):
        if (folder / "MNIST").is_dir():
            return folder
    return None


def user_cache_dir() -> Path:
    """The per-user folder that downloads go to: ``$XDG_CACHE_HOME/mnistlab``, by default ``~/.cache/mnistlab``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnistlab"
