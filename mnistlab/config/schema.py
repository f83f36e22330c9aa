"""The typed groups: ``trainer``, ``run`` and ``regularization`` as dataclasses, each field with its type, default and
range.

Hydra uses them as the groups' base options (``trainer/default``, ``run/default``, ``regularization/none``), so an
unknown key or a value of the wrong type is refused while composing; the ranges are checked when a dataclass is
built. A new option of these groups is one new field here. Every other group names a class, checked by
:mod:`.targets`; our callbacks (early stopping, keep-best, target accuracy) are such classes and own their settings
under ``callback.<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from mnistlab.config.bounds import Checked, ranged
from mnistlab.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class AugmentSettings(Checked):
    """Ranges of the random warp of training batches (``technique.random_warp``); all zeros means no warp."""

    KEY: ClassVar[str] = "regularization.augment"
    rotation: float = ranged(0.0, ge=0, le=180)  # degrees, uniform in [-rotation, rotation]
    translate: float = ranged(0.0, ge=0, le=0.5)  # fraction of the image size, uniform in [-translate, translate] per axis
    scale: float = ranged(0.0, ge=0, lt=1)  # relative: scale in [1 - scale, 1 + scale]
    elastic_alpha: float = ranged(0.0, ge=0, le=28)  # elastic distortion strength in pixels (0: off)
    elastic_sigma: float = ranged(7.0, gt=0, le=28)  # spacing of the field's random control points in pixels (smoothness)

    @property
    def enabled(self) -> bool:
        return any(v > 0 for v in (self.rotation, self.translate, self.scale, self.elastic_alpha))


@dataclass
class RegularizationSettings(Checked):
    """No regularization by default; every preset in conf/regularization starts from these values.

    Each key reaches the part that applies it by interpolation: dropout and batch norm the model, weight decay
    the optimizer, label smoothing the loss, augment ``technique.random_warp``. Early stopping and keep-best are
    callbacks with their own keys (``callback.early_stopping.patience``); ``regularization=early_stopping`` sets them.
    """

    KEY: ClassVar[str] = "regularization"
    dropout: float = ranged(0.0, ge=0, lt=1)  # LeNet-5: after C5 and F6; MLP: after each hidden layer
    weight_decay: float = ranged(0.0, ge=0)  # L2 penalty through the optimizer
    batch_norm: bool = False  # BatchNorm before each hidden activation
    label_smoothing: float = ranged(0.0, ge=0, lt=1)
    augment: AugmentSettings = field(default_factory=AugmentSettings)  # random warps of training batches, on the device


@dataclass
class TrainerSettings(Checked):
    """How the loop trains: length, batches, device and speed options."""

    KEY: ClassVar[str] = "trainer"
    epochs: int = ranged(15, ge=1)
    batch_size: int = ranged(128, ge=1)
    eval_batch_size: int = ranged(2000, ge=1)  # larger: faster on a GPU, more memory
    limit_batches: int | None = ranged(None, ge=1)  # train on at most this many batches per epoch (quick checks); evaluation stays whole
    min_steps_per_epoch: int | None = ranged(
        100, ge=1
    )  # a small training split repeats its shuffled passes until an epoch has this many steps (null: one pass)
    device: str = "auto"  # auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps
    threads: int | None = ranged(None, ge=1)  # CPU threads for torch (null: torch's default, or the launcher's share)
    progress: bool = True  # tqdm bar per epoch when stderr is a terminal
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
class RunSettings(Checked):
    """What a run keeps and continues: its checkpoint, its figures, and resuming it. None of them changes what it trains."""

    KEY: ClassVar[str] = "run"
    resume: bool = False  # continue the run in hydra.run.dir from its last checkpoint
    checkpoint: bool = True  # write checkpoint.pt after every epoch
    plots: bool = True  # curves.png, confusion.png, mistakes.png


SCHEMAS: dict[str, type] = {"trainer": TrainerSettings, "run": RunSettings, "regularization": RegularizationSettings}
DEFAULT_OPTIONS = {"trainer": "default", "run": "default", "regularization": "none"}  # the option name each schema is stored as
MOVED = {  # keys of mnistlab 0.1 and where they are now
    "trainer.resume": "run.resume",
    "trainer.checkpoint": "run.checkpoint",
    "trainer.plots": "run.plots",
    "trainer.target_acc": "callback.target_accuracy.target",
    "regularization.early_stopping_patience": "callback.early_stopping.patience",
    "regularization.keep_best": "callback.keep_best.enabled",
}
