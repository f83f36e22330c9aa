"""The one config object of a run: composed by Hydra, checked, resolved, then read by everything and edited by nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from mnistlab.config.identity import identity
from mnistlab.config.schema import RegularizationSettings, RunSettings, TrainerSettings
from mnistlab.errors import ConfigError

FACTS = ("channels", "num_classes", "classes", "mean", "std", "fingerprint")  # what a dataset fills in when null


@dataclass(frozen=True)
class RunConfig:
    """A checked config: ``cfg`` resolved and read-only, with the typed views of the ``trainer``, ``run`` and
    ``regularization`` groups and the seed.

    :func:`mnistlab.config.check` makes it before any data is read; :meth:`with_data` then fills in what only the
    data can say (a folder's channels, classes, normalization and fingerprint), which the models read by
    interpolation and the identity includes: a new object where a fact was unknown, this one where none was. The
    run reads only the result.
    """

    cfg: DictConfig
    trainer: TrainerSettings
    run: RunSettings
    regularization: RegularizationSettings
    seed: int
    composed: DictConfig = field(repr=False)  # as Hydra composed it, interpolations kept: what with_data resolves again

    @cached_property
    def identity(self) -> dict[str, Any]:
        """What this run trains, as ``{dotted.key: value}`` (:func:`mnistlab.config.identity.identity`)."""
        return identity(self.cfg)

    @property
    def val_size(self) -> int:
        return int(self.cfg.data.get("val_size") or 0)

    def check_sizes(self, train_images: int) -> None:
        """The validation split must leave training images, and a batch must fit in what it leaves."""
        if self.val_size >= train_images:
            raise ConfigError(f"data.val_size must be < {train_images:,} (the training images), got {self.val_size:,}")
        left = train_images - self.val_size
        if self.trainer.batch_size > left:
            raise ConfigError(
                f"trainer.batch_size must be <= {left:,} (the training images left by data.val_size), got {self.trainer.batch_size:,}"
            )

    def unknown_facts(self) -> set[str]:
        """The data's facts this config does not know yet (``null``)."""
        return {key for key, value in self.cfg.data.items() if value is None and key in FACTS}

    def with_data(self, facts: dict[str, Any], train_images: int) -> RunConfig:
        """This config with the data's facts filled in where it had none (only keys the data group has), checked
        against the number of training images (:meth:`check_sizes`)."""
        self.check_sizes(train_images)
        new = {key: value for key, value in facts.items() if key in self.cfg.data and self.cfg.data[key] is None and value is not None}
        if not new:
            return self
        composed = self.composed.copy()
        with open_dict(composed):
            composed.data.update(new)
        return RunConfig(resolved(composed), self.trainer, self.run, self.regularization, self.seed, composed)


def resolved(cfg: DictConfig) -> DictConfig:
    """A read-only copy of ``cfg`` with every interpolation resolved; ConfigError when one cannot resolve."""
    try:
        out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    except Exception as err:  # an interpolation to a key that does not exist, a resolver that fails
        raise ConfigError(str(err).splitlines()[0]) from err
    OmegaConf.set_readonly(out, True)
    return out
