"""What a run trains, as opposed to how it executes: its identity, the differences between two, and a sweep job's name.

A resume must match the identity it was launched with; a sweep job's directory is named by the settings
that belong to it, so a relaunched sweep finds each job's run by its settings, not its number.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Mapping, Sequence
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
        "trainer.eval_batch_size",
        "trainer.channels_last",
        "trainer.compile",
        "trainer.cuda_graph",
        "optimizer.fused",
        "data.root",
        "data.download",
    }
)
EXECUTION_GROUPS = frozenset({"logger", "run"})  # every key of these groups only changes how a run is recorded or continued


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


def override_key(item: str) -> str:
    """The key of an override (``+model.hidden=[64]`` -> ``model.hidden``)."""
    return item.split("=", 1)[0].lstrip("+~")


def sweep_values(params: Mapping[str, Any] | None, overrides: Sequence[str]) -> dict[str, list[str]]:
    """Each key's values as a sweep takes them (``{"seed": ["seed=0", "seed=1"]}``): a sweeper's ``params``, then the
    command line's overrides, a later value of a key replacing an earlier one; a key set once has one value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    given = [f"{key}={value}" for key, value in (params or {}).items()] + list(overrides)
    values: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(given):
        key = override.get_key_element()
        if override.is_sweep_override():
            values[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            values[key] = [f"{key}={override.get_value_element_as_str()}"]
    return values


SEEDS_SWEEPER = "hydra_plugins.mnistlab_seeds.SeedSweeper"  # it chooses the seeds itself


def swept_keys(hydra: DictConfig) -> frozenset[str]:
    """The keys a sweep varies, from Hydra's node of the sweep (its multirun.yaml): those given several values, and the
    seed where the adaptive-seed sweeper chooses it."""
    values = sweep_values(hydra.sweeper.get("params"), list(hydra.overrides.task))
    keys = {override_key(key) for key, options in values.items() if len(options) > 1}
    if hydra.sweeper.get("_target_") == SEEDS_SWEEPER:
        keys.add("seed")
    return frozenset(keys)


def job_dirname(overrides: Sequence[str], swept: Collection[str] | None = None) -> str:
    """A sweep job's directory, named by the keys the sweep varies (``model=mlp,seed=1``): ``swept``, or where that is
    not known every setting of the job but execution settings. The job's other settings are in its ``.hydra/``.

    A name too long for a file name is cut and ends in a hash of the whole.
    """

    def kept(item: str) -> bool:
        key = override_key(item)
        return key in swept if swept is not None else not is_execution_key(key) and not key.startswith("hydra.")

    name = ",".join(sorted((o for o in overrides if kept(o)), key=override_key)).replace(os.sep, "_") or "job"
    if len(name.encode()) > 200:
        name = name.encode()[:180].decode(errors="ignore") + "," + hashlib.sha1(name.encode()).hexdigest()[:12]
    return name
