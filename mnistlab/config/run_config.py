"""The one config object of a run: composed by Hydra, checked, resolved, then read by everything and edited by nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from mnistlab.config.identity import identity
from mnistlab.config.schema import RegularizationSettings, TrainerSettings
from mnistlab.errors import ConfigError


@dataclass(frozen=True)
class RunConfig:
    """A checked config: ``cfg`` resolved and read-only, with the typed views of the ``trainer`` and
    ``regularization`` groups and the seed.

    :func:`mnistlab.config.check` makes it before any data is read; :meth:`with_data` then fills in what the
    data say (channels, classes, normalization, fingerprint), which the models read by interpolation and the
    identity includes. The run reads only the result.
    """

    cfg: DictConfig
    trainer: TrainerSettings
    regularization: RegularizationSettings
    seed: int
    composed: DictConfig = field(repr=False)  # as Hydra composed it, interpolations kept: what with_data resolves again
    data_known: bool = False

    @cached_property
    def identity(self) -> dict[str, Any]:
        """What this run trains, as ``{dotted.key: value}`` (:func:`mnistlab.config.identity.identity`)."""
        return identity(self.cfg)

    @property
    def val_size(self) -> int:
        return int(self.cfg.data.get("val_size") or 0)

    def with_data(self, facts: dict[str, Any], train_images: int) -> RunConfig:
        """This config with the data's facts filled in (only keys the data group has) and checked against the number
        of training images: the validation split must leave some, and a batch must fit in what it leaves."""
        if self.val_size >= train_images:
            raise ConfigError(f"data.val_size must be < {train_images:,} (the training images), got {self.val_size:,}")
        left = train_images - self.val_size
        if self.trainer.batch_size > left:
            raise ConfigError(
                f"trainer.batch_size must be <= {left:,} (the training images left by data.val_size), got {self.trainer.batch_size:,}"
            )
        composed = self.composed.copy()
        with open_dict(composed):
            for key, value in facts.items():
                if key in composed.data:
                    composed.data[key] = value
        return RunConfig(resolved(composed), self.trainer, self.regularization, self.seed, composed, data_known=True)


def resolved(cfg: DictConfig) -> DictConfig:
    """A read-only copy of ``cfg`` with every interpolation resolved; ConfigError when one cannot resolve."""
    try:
        out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    except Exception as err:  # an interpolation to a key that does not exist, a resolver that fails
        raise ConfigError(str(err).splitlines()[0]) from err
    OmegaConf.set_readonly(out, True)
    return out
