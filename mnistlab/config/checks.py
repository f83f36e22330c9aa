"""Every check a composed config gets before anything is read or built; the first bad key is named.

Beyond the schemas' own ranges: keys nothing reads, each class's arguments (:mod:`.targets`), and the limits
one setting puts on another (a regularization the part it configures does not read, a warm-up longer than the
run). Paths the data group names are made absolute, so that a run's record finds its data from any directory.
The result is the run's one :class:`RunConfig`; the same composed config is checked once per process.
"""

from __future__ import annotations

import dataclasses
import os

from omegaconf import DictConfig, OmegaConf, open_dict

from mnistlab.config.bounds import check_bounds
from mnistlab.config.run_config import RunConfig, resolved
from mnistlab.config.schema import SCHEMAS, RegularizationSettings
from mnistlab.config.targets import TOP_LEVEL, check_arguments, targets, unknown_key
from mnistlab.errors import ConfigError

# A regularization setting reaches its part only where that group's config interpolates it.
CARRIERS = {"dropout": "model", "batch_norm": "model", "weight_decay": "optimizer", "label_smoothing": "loss", "augment": "technique"}
PATH_KEYS = ("root", "path")  # keys of the data group that name a file or folder (and any key ending in _dir, _path, _file)
_last: tuple[str, RunConfig] | None = None  # the config checked last, by its text and the directory it was launched from


def check(cfg: DictConfig) -> RunConfig:
    """The checked, resolved config of a composed ``cfg`` (its ``hydra`` node left out); raises ConfigError naming
    the first bad key. The data's facts that only the data can tell are added by :meth:`RunConfig.with_data`."""
    global _last
    cfg = cfg.copy()
    if "hydra" in cfg:
        with open_dict(cfg):
            del cfg["hydra"]
    key = f"{os.getcwd()}\n{OmegaConf.to_yaml(cfg)}"
    if _last is not None and _last[0] == key:
        return _last[1]
    config = _check(cfg)
    _last = (key, config)
    return config


def _check(cfg: DictConfig) -> RunConfig:
    for key in cfg:
        if key not in TOP_LEVEL:
            raise unknown_key(str(key), list(TOP_LEVEL))
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    check_bounds("seed", seed, {"ge": 0, "lt": 2**32})
    try:
        for group, schema in SCHEMAS.items():
            _check_schema_keys(cfg[group], schema, group)
            if OmegaConf.get_type(cfg[group]) is not schema:  # a config read back from a run's record: typed again
                with open_dict(cfg):
                    cfg[group] = OmegaConf.merge(OmegaConf.structured(schema), cfg[group])
        typed = {key: OmegaConf.to_object(cfg[key]) for key in SCHEMAS}  # first: they name the keys others interpolate
        for key, node in targets(cfg).items():
            check_arguments(node, key)
    except ConfigError:
        raise
    except Exception as err:  # an interpolation that cannot resolve, a missing value
        raise ConfigError(str(err)) from err
    _absolute_paths(cfg.data)
    config = RunConfig(resolved(cfg), typed["trainer"], typed["run"], typed["regularization"], seed, cfg)
    _check_regularization_reaches(cfg, config.regularization)
    warmup = OmegaConf.select(cfg, "scheduler.warmup_epochs")
    if warmup is not None and warmup > config.trainer.epochs:
        raise ConfigError(f"scheduler.warmup_epochs must be <= trainer.epochs ({config.trainer.epochs}), got {warmup}")
    return config


def _absolute_paths(data: DictConfig) -> None:
    """Relative paths of the data group made absolute (from the directory the run is launched from)."""
    for key in list(data):
        value = data.get(key)
        named = key in PATH_KEYS or str(key).endswith(("_dir", "_path", "_file"))
        if named and isinstance(value, str) and value and not OmegaConf.is_interpolation(data, key):
            expanded = os.path.expanduser(value)
            if not os.path.isabs(expanded):
                with open_dict(data):
                    data[key] = os.path.abspath(expanded)


def _check_schema_keys(node: DictConfig, schema: type, prefix: str) -> None:
    """Keys added with ``+`` that the group's dataclass does not define (Hydra lets them through)."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in node:
        if key not in fields:
            raise unknown_key(f"{prefix}.{key}", list(fields))
        nested = fields[key].default_factory if fields[key].default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(nested) and isinstance(node[key], DictConfig):
            _check_schema_keys(node[key], nested, f"{prefix}.{key}")


def _check_regularization_reaches(cfg: DictConfig, reg: RegularizationSettings) -> None:
    """A regularization that no part reads would label a run with what it did not train."""
    for key, group in CARRIERS.items():
        value = getattr(reg, key)
        on = value.enabled if hasattr(value, "enabled") else value
        if on and f"${{regularization.{key}" not in str(OmegaConf.to_container(cfg.get(group) or {}, resolve=False)):
            readers = cfg.get(group) or {}
            where = f"{group} {readers.get('_target_', '')}".rstrip() if "_target_" in readers else f"no {group} entry"
            shown = value if not hasattr(value, "enabled") else "(a warp)"
            raise ConfigError(
                f"regularization.{key}={shown} would have no effect: {where} does not read it. "
                f"Add `{key}: ${{regularization.{key}}}` to the {group}'s config if its class takes {key}, or leave regularization.{key} unset"
            )
