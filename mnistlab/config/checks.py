"""Every check a composed config gets before anything is read or trained; the first bad key is named.

Beyond the schemas' own ranges: keys nothing reads, each class's arguments (:mod:`.targets`), and the limits
one setting puts on another (a regularization the part it configures does not read, a selection that needs a
validation split, a warm-up longer than the run).
"""

from __future__ import annotations

import dataclasses
import re

from omegaconf import DictConfig, OmegaConf, open_dict

from mnistlab.config.bounds import check_bounds
from mnistlab.config.run_config import RunConfig, resolved
from mnistlab.config.schema import SCHEMAS, RegularizationSettings
from mnistlab.config.targets import TOP_LEVEL, build, check_arguments, targets, unknown_key
from mnistlab.errors import ConfigError

# A regularization setting reaches its part only where that group's config interpolates it.
CARRIERS = {
    "dropout": "model",
    "batch_norm": "model",
    "weight_decay": "optimizer",
    "label_smoothing": "loss",
    "augment": "technique",
    "early_stopping_patience": "callback",
    "keep_best": "callback",
}


def check(cfg: DictConfig) -> RunConfig:
    """The checked, resolved config of a composed ``cfg`` (its ``hydra`` node left out); raises ConfigError naming
    the first bad key. The data's facts are not known yet: :meth:`RunConfig.with_data` adds them."""
    cfg = cfg.copy()
    if "hydra" in cfg:
        with open_dict(cfg):
            del cfg["hydra"]
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
        typed = {key: OmegaConf.to_object(cfg[key]) for key in SCHEMAS}  # first: they name the keys others interpolate
        for key, node in targets(cfg).items():
            check_arguments(node, key)
    except ConfigError:
        raise
    except Exception as err:  # an interpolation that cannot resolve, a missing value
        raise ConfigError(str(err)) from err
    config = RunConfig(resolved(cfg), typed["trainer"], typed["regularization"], seed, cfg)
    dataset = build(config.cfg.data, "data")  # its own checks (data.name, data.root); nothing is read
    dataset.check()  # a folder's layout
    _build_early(cfg, config)
    reg = config.regularization
    needs_val = [key for key, on in (("keep_best", reg.keep_best), ("early_stopping_patience", reg.early_stopping_patience)) if on]
    if needs_val and not config.val_size:
        raise ConfigError(
            f"regularization.{needs_val[0]} selects on the validation split, but data.val_size is 0; set data.val_size (e.g. 5000), or use experiment=early_stopping"
        )
    if getattr(dataset, "train_images", None) is not None:  # known before reading (MNIST's 60,000): refused before anything loads
        config.with_data({}, dataset.train_images)
    _check_regularization_reaches(cfg, reg)
    warmup = OmegaConf.select(cfg, "scheduler.warmup_epochs")
    if warmup is not None and warmup > config.trainer.epochs:
        raise ConfigError(f"scheduler.warmup_epochs must be <= trainer.epochs ({config.trainer.epochs}), got {warmup}")
    return config


EARLY = ("model", "loss", "technique", "callback", "metric")  # built once here, for their own checks, where the data allow
FACT = re.compile(r"\$\{data\.(\w+)\}")


def _build_early(cfg: DictConfig, config: RunConfig) -> None:
    """Build each part whose arguments are known before the data are read (none of the data's facts it reads is still
    unknown), so that its own checks (``technique.mixup.alpha=-1``) refuse a launch before anything is read."""
    for key, node in targets(cfg).items():
        if key.split(".")[0] not in EARLY:
            continue
        facts = FACT.findall(str(OmegaConf.to_container(node, resolve=False)))
        if all(config.cfg.data.get(fact) is not None for fact in facts):
            build(OmegaConf.select(config.cfg, key), key)


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
