"""What Hydra must know before it composes a config: our typed groups' base options and our resolvers.

Called by every entry point (the command line, the Python API, the tests), never as an import's side effect.
"""

from __future__ import annotations

import functools
import secrets
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from mnistlab.config.identity import job_dirname, swept_keys
from mnistlab.config.schema import DEFAULT_OPTIONS, SCHEMAS


@functools.lru_cache(maxsize=8)
def _swept(record: Path, mtime_ns: int) -> frozenset[str] | None:
    try:
        return swept_keys(OmegaConf.load(record).hydra) or None
    except Exception:  # not written yet, or unreadable: every setting names the job
        return None


def sweep_keys_of(sweep_dir: str | Path) -> frozenset[str] | None:
    """The keys the sweep in ``sweep_dir`` varies, from the multirun.yaml its sweeper wrote (None: not known)."""
    record = Path(sweep_dir) / "multirun.yaml"
    try:
        return _swept(record, record.stat().st_mtime_ns)
    except OSError:
        return None


def _job_dir(*, _root_: DictConfig) -> str:
    """A grid job's directory is named by the keys its sweep varies; an Optuna trial's by its number (``trial_7``),
    which the study never gives twice, while its sampled parameters may come again."""
    if "study_name" in _root_.hydra.sweeper:
        return f"trial_{_root_.hydra.job.num}"
    return job_dirname(list(_root_.hydra.overrides.task), sweep_keys_of(_root_.hydra.sweep.dir))


def register() -> None:
    """Store ``trainer/default`` and ``regularization/none`` (found like YAML files of those names), and the
    resolvers ``${uid:}`` (run and sweep directories unique within a second) and ``${job_dir:}``. Idempotent."""
    store = ConfigStore.instance()
    for group, schema in SCHEMAS.items():
        store.store(group=group, name=DEFAULT_OPTIONS[group], node=schema)
    OmegaConf.register_new_resolver("uid", lambda: secrets.token_hex(3), use_cache=True, replace=True)
    OmegaConf.register_new_resolver("job_dir", _job_dir, replace=True)
