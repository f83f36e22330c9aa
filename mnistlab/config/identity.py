"""What a run trains, as opposed to how it executes: its identity, the differences between two, and a sweep job's name.

A resume must match the identity it was launched with; a sweep job's directory is named by the settings
that belong to it, so a relaunched sweep finds each job's run by its settings, not its number.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Settings that change how a run executes, not what it trains (at most the last digits, as another thread
# count does). They may differ when a run is resumed and never name a sweep job's directory; every other
# key of the config belongs to the run's identity.
EXECUTION_KEYS = frozenset(
    {
        "trainer.device",
        "trainer.threads",
        "trainer.progress",
        "trainer.plots",
        "trainer.checkpoint",
        "trainer.resume",
        "trainer.eval_batch_size",
        "trainer.channels_last",
        "trainer.compile",
        "trainer.cuda_graph",
        "optimizer.fused",
        "data.root",
        "data.download",
    }
)
EXECUTION_GROUPS = frozenset({"logger"})  # every key of these groups only changes where a run is recorded


def is_execution_key(key: str) -> bool:
    """Whether ``key`` (dotted, as in an override) changes how a run executes or is recorded, not what it trains."""
    return key in EXECUTION_KEYS or key.split(".", 1)[0] in EXECUTION_GROUPS


def identity(cfg: DictConfig) -> dict[str, Any]:
    """What a run trains: every resolved key of the config as ``{dotted.key: value}``, execution settings left out."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif not is_execution_key(prefix):
            flat[prefix] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every key whose value differs (or exists on one side only)."""
    missing = "(not set)"
    return [
        f"{key}: {recorded.get(key, missing)} -> {current.get(key, missing)}"
        for key in sorted(recorded.keys() | current.keys())
        if recorded.get(key, missing) != current.get(key, missing)
    ]


def job_dirname(overrides: Sequence[str]) -> str:
    """A sweep job's directory, named by its settings (``model=mlp,seed=1``), execution settings left out.

    A name too long for a file name is cut and ends in a hash of the whole.
    """
    key = lambda item: item.split("=", 1)[0].lstrip("+~")  # noqa: E731
    kept = sorted((o for o in overrides if not is_execution_key(key(o)) and not key(o).startswith("hydra.")), key=key)
    name = ",".join(kept).replace(os.sep, "_") or "job"
    if len(name.encode()) > 200:
        name = name.encode()[:180].decode(errors="ignore") + "," + hashlib.sha1(name.encode()).hexdigest()[:12]
    return name
