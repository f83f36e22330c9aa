"""Typed settings of the ``trainer``, ``regularization`` and ``data`` groups: one dataclass per group.

Each field holds its type, default and range. Hydra uses the dataclasses as the groups' base options
(``trainer/default``, ``regularization/none``, ``data/mnist``), so an unknown key or a value of the wrong
type is refused while composing, and :func:`load_settings` checks the ranges before anything is trained.
A new option is one new field here.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from mnistlab.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")
BOUNDS = {"ge": (operator.ge, ">="), "gt": (operator.gt, ">"), "le": (operator.le, "<="), "lt": (operator.lt, "<")}


def ranged(default: Any = None, **bounds: float) -> Any:
    """A field with bounds checked after composing: ``ge``, ``gt``, ``le``, ``lt`` (``None`` always passes)."""
    return field(default=default, metadata=bounds)


class Checked:
    """Checks each field's bounds on construction; errors name the key as ``<KEY>.<field>``."""

    KEY: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            for bound, limit in f.metadata.items():
                test, sign = BOUNDS[bound]
                if value is not None and (math.isnan(value) or not test(value, limit)):
                    raise ConfigError(f"{self.KEY}.{f.name} must be {sign} {limit:g}, got {value}")


@dataclass
class AugmentSettings(Checked):
    """Ranges of the random warp of training batches; all zeros means no augmentation."""

    KEY: ClassVar[str] = "regularization.augment"
    rotation: float = ranged(0.0, ge=0)  # degrees, uniform in [-rotation, rotation]
    translate: float = ranged(0.0, ge=0)  # fraction of the image size, uniform in [-translate, translate] per axis
    scale: float = ranged(0.0, ge=0, lt=1)  # relative: scale in [1 - scale, 1 + scale]
    elastic_alpha: float = ranged(0.0, ge=0)  # elastic distortion strength in pixels (0: off)
    elastic_sigma: float = ranged(7.0, gt=0)  # spacing of the field's random control points in pixels (smoothness)

    @property
    def enabled(self) -> bool:
        return any(v > 0 for v in (self.rotation, self.translate, self.scale, self.elastic_alpha))


@dataclass
class RegularizationSettings(Checked):
    """No regularization by default; every preset in conf/regularization starts from these values."""

    KEY: ClassVar[str] = "regularization"
    dropout: float = ranged(0.0, ge=0, lt=1)  # LeNet-5: after C5 and F6; MLP: after each hidden layer
    weight_decay: float = ranged(0.0, ge=0)  # L2 penalty through the optimizer
    batch_norm: bool = False  # BatchNorm before each hidden activation
    label_smoothing: float = ranged(0.0, ge=0, lt=1)
    augment: AugmentSettings = field(default_factory=AugmentSettings)  # random warps of training batches, on the device
    early_stopping_patience: int | None = ranged(None, ge=1)  # epochs without validation improvement (needs data.val_size)
    keep_best: bool = False  # restore the best-validation epoch's weights (needs data.val_size)


@dataclass
class TrainerSettings(Checked):
    """How a run trains: length, batches, device, speed options, files."""

    KEY: ClassVar[str] = "trainer"
    epochs: int = ranged(15, ge=1)
    batch_size: int = ranged(128, ge=1)
    eval_batch_size: int = ranged(2000, ge=1)  # larger: faster on a GPU, more memory
    limit_batches: int | None = ranged(None, ge=1)  # train on at most this many batches per epoch (quick checks); evaluation stays whole
    device: str = "auto"  # auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps
    threads: int | None = ranged(None, ge=1)  # CPU threads for torch (null: torch's default, or the launcher's share)
    progress: bool = True  # tqdm bar per epoch when stderr is a terminal
    checkpoint: bool = True  # write checkpoint.pt after every epoch
    resume: bool = False  # continue the run in hydra.run.dir from its last checkpoint
    target_acc: float | None = ranged(None, ge=0, le=100)  # stop as soon as test accuracy (%) reaches this
    plots: bool = True  # curves.png, confusion.png, mistakes.png
    amp: bool = False  # bf16 autocast (CUDA, or a CPU with native bf16 such as AVX512-BF16/AMX; ignored elsewhere)
    channels_last: bool = False  # NHWC memory format for the convolutions
    compile: bool = False  # torch.compile the model (CUDA only; ignored elsewhere)
    cuda_graph: Any = "auto"  # replay forward+backward+update as one CUDA graph: auto (on CUDA unless compile) | true | false

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.device.split(":")[0] not in DEVICES:
            raise ConfigError(f"trainer.device must be one of {', '.join(DEVICES)} (optionally cuda:N), got {self.device!r}")
        if self.cuda_graph not in (True, False, "auto"):
            raise ConfigError(f"trainer.cuda_graph must be auto, true or false, got {self.cuda_graph!r}")


@dataclass
class DataSettings(Checked):
    """Where MNIST is read from, and the validation split."""

    KEY: ClassVar[str] = "data"
    root: str = "data"  # folder holding MNIST/raw/ (torchvision's layout); relative paths start at the project root
    val_size: int = ranged(0, ge=0, lt=60_000)  # training images held out for validation (0: train on all 60,000)
    download: bool = True  # when files are missing, try torchvision's download before failing


@dataclass
class Settings:
    """The typed settings of one run."""

    trainer: TrainerSettings
    regularization: RegularizationSettings
    data: DataSettings
    seed: int


def load_settings(cfg: DictConfig) -> Settings:
    """The checked, typed settings of a composed config; raises ConfigError naming the first bad key."""
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    lr = OmegaConf.select(cfg, "optimizer.lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0):
        raise ConfigError(f"optimizer.lr must be > 0, got {lr}")
    try:
        groups = {key: OmegaConf.to_object(cfg[key]) for key in ("trainer", "regularization", "data")}
    except ConfigError:
        raise
    except Exception as err:  # an interpolation that cannot resolve, a missing value
        raise ConfigError(str(err)) from err
    settings = Settings(**groups, seed=seed)
    reg = settings.regularization
    needs_val = [key for key, on in (("keep_best", reg.keep_best), ("early_stopping_patience", reg.early_stopping_patience)) if on]
    if needs_val and not settings.data.val_size:
        raise ConfigError(
            f"regularization.{needs_val[0]} selects on the validation split, but data.val_size is 0; set data.val_size (e.g. 5000), or use experiment=early_stopping"
        )
    return settings


def register() -> None:
    """The groups' base options, found by Hydra like YAML files of the same names."""
    store = ConfigStore.instance()
    store.store(group="trainer", name="default", node=TrainerSettings)
    store.store(group="regularization", name="none", node=RegularizationSettings)
    store.store(group="data", name="mnist", node=DataSettings)


register()
