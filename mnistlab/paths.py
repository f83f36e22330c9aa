"""Where mnistlab finds its configs and data, and where it writes: the same in a checkout and an installed wheel.

Nothing here imports torch, so the command line can compose and print a config quickly.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

DATA_ENV = "MNISTLAB_DATA"  # a folder holding datasets, searched first
OUTPUTS_ENV = "MNISTLAB_OUTPUTS"  # where runs and sweeps go instead of ./outputs (see conf/config.yaml)


def config_dir() -> Path:
    """The configs: ``mnistlab/conf``, in a checkout a link to the top-level ``conf/``, in the wheel a copy of it."""
    return PACKAGE_DIR / "conf"


def bundled_data_dir() -> Path | None:
    """The MNIST copy that ships with mnistlab: ``mnistlab/bundled``, in a checkout a link to ``data/``."""
    folder = PACKAGE_DIR / "bundled"
    return folder if (folder / "MNIST").is_dir() else None


def user_cache_dir() -> Path:
    """The per-user folder that downloads go to: ``$XDG_CACHE_HOME/mnistlab``, by default ``~/.cache/mnistlab``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnistlab"
