"""Checks of the composed config, run before anything is trained, and the settings derived from it."""

from __future__ import annotations

import math
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from mnistlab.augment import AugmentConfig
from mnistlab.engine import TrainSettings

DEVICES = ("auto", "cpu", "cuda", "mps")
TRAIN_SIZE = 60_000


class ConfigError(ValueError):
    """A config value is out of range; the message names the key."""


def _get(cfg: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(cfg, key, throw_on_missing=True)
    except Exception as err:
        raise ConfigError(f"{key}: {err}") from err


def _number(
    cfg: DictConfig,
    key: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
    optional: bool = False,
) -> None:
    value = _get(cfg, key)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{key} must be {kind}, got {value!r}")
    if math.isnan(value):
        raise ConfigError(f"{key} must be a number, got nan")
    if low is not None and (value < low or (low_open and value == low)):
        raise ConfigError(f"{key} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ConfigError(f"{key} must be {'<' if high_open else '<='} {high}, got {value}")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first key whose value cannot work."""
    _number(cfg, "seed", integer=True)
    _number(cfg, "regularization.dropout", low=0, high=1, high_open=True)
    _number(cfg, "regularization.weight_decay", low=0)
    _number(cfg, "regularization.label_smoothing", low=0, high=1, high_open=True)
    _number(cfg, "regularization.early_stopping_patience", low=1, integer=True, optional=True)
    for key in ("rotation", "translate", "scale", "elastic_alpha", "elastic_sigma"):
        _number(cfg, f"regularization.augment.{key}", low=0)
    try:
        augment_settings(cfg).validate()
    except ValueError as err:
        raise ConfigError(str(err)) from err
    _number(cfg, "optimizer.lr", low=0, low_open=True)
    _number(cfg, "trainer.epochs", low=1, integer=True)
    _number(cfg, "trainer.batch_size", low=1, integer=True)
    _number(cfg, "trainer.eval_batch_size", low=1, integer=True)
    _number(cfg, "trainer.threads", low=1, integer=True, optional=True)
    _number(cfg, "trainer.target_acc", low=0, high=100, optional=True)
    _number(cfg, "data.val_size", low=0, high=TRAIN_SIZE, high_open=True, integer=True)
    for key in ("trainer.amp", "trainer.channels_last", "trainer.compile"):
        if not isinstance(_get(cfg, key), bool):
            raise ConfigError(f"{key} must be true or false, got {_get(cfg, key)!r}")
    if _get(cfg, "trainer.cuda_graph") not in (True, False, "auto"):
        raise ConfigError(f"trainer.cuda_graph must be auto, true or false, got {_get(cfg, 'trainer.cuda_graph')!r}")
    device = str(_get(cfg, "trainer.device"))
    if device.split(":")[0] not in DEVICES:
        raise ConfigError(f"trainer.device must be one of {', '.join(DEVICES)} (optionally cuda:N), got {device!r}")
    val_needed = [k for k in ("regularization.keep_best", "regularization.early_stopping_patience") if _get(cfg, k)]
    if val_needed and not _get(cfg, "data.val_size"):
        raise ConfigError(f"{val_needed[0]} selects on the validation split, but data.val_size is 0; set data.val_size (e.g. 5000)")


def augment_settings(cfg: DictConfig) -> AugmentConfig:
    return AugmentConfig(**OmegaConf.to_container(cfg.regularization.augment, resolve=True))


def train_settings(cfg: DictConfig) -> TrainSettings:
    t, r = cfg.trainer, cfg.regularization
    return TrainSettings(
        epochs=int(t.epochs),
        batch_size=int(t.batch_size),
        eval_batch_size=int(t.eval_batch_size),
        label_smoothing=float(r.label_smoothing),
        augment=augment_settings(cfg),
        target_acc=None if t.target_acc is None else float(t.target_acc),
        early_stopping_patience=r.early_stopping_patience,
        keep_best=bool(r.keep_best),
        checkpoint=bool(t.checkpoint),
        progress=bool(t.progress),
        amp=bool(t.amp),
        channels_last=bool(t.channels_last),
        cuda_graph=None if t.cuda_graph == "auto" else bool(t.cuda_graph),
    )


def pick_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name} but CUDA is not available here; use trainer.device=auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"trainer.device={name} but MPS is not available here; use trainer.device=auto or cpu")
    return device
