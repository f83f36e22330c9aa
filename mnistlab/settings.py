"""Typed settings: the ``trainer`` and ``regularization`` groups as dataclasses, every other group as its class.

Each dataclass field holds its type, default and range. Hydra uses the dataclasses as the groups' base
options (``trainer/default``, ``regularization/none``), so an unknown key or a value of the wrong type is
refused while composing, and :func:`load_settings` checks the ranges before anything is trained. The
groups that name a class (``_target_``: data, model, optimizer, scheduler, loss, logger, and each entry of
technique, callback and metric) are checked against its signature, with the ranges of
:data:`ARGUMENT_RANGES`. A new option is one new field here, or one new argument of a class.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import operator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hydra.core.config_store import ConfigStore
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from mnistlab.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")
BOUNDS = {"ge": (operator.ge, ">="), "gt": (operator.gt, ">"), "le": (operator.le, "<="), "lt": (operator.lt, "<")}


def ranged(default: Any = None, **bounds: float) -> Any:
    """A field with bounds checked after composing: ``ge``, ``gt``, ``le``, ``lt`` (``None`` always passes)."""
    return field(default=default, metadata=bounds)


def check_bounds(key: str, value: Any, bounds: dict[str, float]) -> None:
    """Raise ConfigError naming ``key`` unless ``value`` (a number, or each number of a list) is within ``bounds``."""
    for item in value if isinstance(value, list | tuple) else [value]:
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ConfigError(f"{key} must be a number, got {item!r}")
        for bound, limit in bounds.items():
            test, sign = BOUNDS[bound]
            if math.isnan(item) or not test(item, limit):
                raise ConfigError(f"{key} must be {sign} {limit:g}, got {item}")


class Checked:
    """Checks each field's bounds on construction; errors name the key as ``<KEY>.<field>``."""

    KEY: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.metadata:
                check_bounds(f"{self.KEY}.{f.name}", getattr(self, f.name), dict(f.metadata))


@dataclass
class AugmentSettings(Checked):
    """Ranges of the random warp of training batches; all zeros means no augmentation."""

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
class Settings:
    """The typed settings of one run."""

    trainer: TrainerSettings
    regularization: RegularizationSettings
    data: Any  # the dataset (mnistlab.dataset.Dataset), instantiated, not yet read
    seed: int


SCHEMAS: dict[str, type] = {"trainer": TrainerSettings, "regularization": RegularizationSettings}
NAMED_GROUPS = ("technique", "callback", "metric")  # groups of several named entries: technique.mixup, callback.ema, ...
TOP_LEVEL = ("data", "model", "optimizer", "scheduler", "loss", "trainer", "regularization", "logger", *NAMED_GROUPS, "seed")

# Ranges of the arguments of the groups that name a class (``_target_``), by argument name. They apply to
# our options and to a user's own class alike; a list (``betas``, ``hidden``) is checked item by item.
ARGUMENT_RANGES: dict[str, dict[str, dict[str, float]]] = {
    "data": {"val_size": {"ge": 0}, "image_size": {"ge": 8, "le": 1024}, "channels": {"ge": 1}, "num_classes": {"ge": 2}},
    "model": {"dropout": {"ge": 0, "lt": 1}, "hidden": {"ge": 1}, "num_classes": {"ge": 2}, "in_channels": {"ge": 1}},
    "loss": {"label_smoothing": {"ge": 0, "lt": 1}},
    "optimizer": {
        "lr": {"gt": 0},
        "momentum": {"ge": 0, "lt": 1},
        "dampening": {"ge": 0, "le": 1},
        "betas": {"ge": 0, "lt": 1},
        "eps": {"gt": 0},
        "weight_decay": {"ge": 0},
        "alpha": {"ge": 0, "lt": 1},
    },
    "logger": {},  # no numbers, but its arguments are checked against its class like the others'
    "scheduler": {
        "pct_start": {"gt": 0, "lt": 1},
        "div_factor": {"ge": 1},
        "final_div_factor": {"ge": 1},
        "warmup_epochs": {"ge": 0},
        "min_factor": {"ge": 0, "le": 1},
        "step_epochs": {"ge": 1},
        "gamma": {"gt": 0, "le": 1},
        "step_size": {"ge": 1},
        "T_max": {"ge": 1},
        "eta_min": {"ge": 0},
    },
}

SCHEDULER_INTERVALS = ("step", "epoch")  # scheduler.interval: step the scheduler after every batch or every epoch

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


def _unknown(key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1)
    hint = f" (did you mean {key.rsplit('.', 1)[0] + '.' if '.' in key else ''}{close[0]}?)" if close else ""
    return ConfigError(f"{key} is not a setting: nothing reads it{hint}")


def _check_schema_keys(node: DictConfig, schema: type, prefix: str) -> None:
    """Keys added with ``+`` that the group's dataclass does not define (Hydra lets them through)."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in node:
        if key not in fields:
            raise _unknown(f"{prefix}.{key}", list(fields))
        nested = fields[key].default_factory if fields[key].default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(nested) and isinstance(node[key], DictConfig):
            _check_schema_keys(node[key], nested, f"{prefix}.{key}")


def accepted_arguments(factory: Any) -> tuple[dict[str, inspect.Parameter], bool]:
    """The keyword arguments ``factory`` takes, and whether it takes any at all. A class whose ``__init__`` passes
    ``**kwargs`` on to its base (a dataset of your own) takes the base's too."""
    parameters = dict(inspect.signature(factory).parameters)
    if not isinstance(factory, type):
        return parameters, any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for cls in factory.__mro__:
        if "__init__" not in vars(cls):
            continue
        own = inspect.signature(cls.__init__).parameters
        parameters |= {name: p for name, p in own.items() if name != "self" and p.kind != inspect.Parameter.VAR_KEYWORD}
        if not any(p.kind == inspect.Parameter.VAR_KEYWORD for p in own.values()):
            return parameters, False
    return parameters, True


def _check_arguments(node: DictConfig, group: str) -> None:
    """A ``_target_`` group: its class imports, accepts every key, and each known argument is in range."""
    target = node.get("_target_")
    try:
        parameters, open_ended = accepted_arguments(get_object(target))
    except Exception as err:
        raise ConfigError(f"{group}._target_={target} cannot be imported ({type(err).__name__}: {err})") from err
    for key in node:
        if key.startswith("_") and key.endswith("_"):
            continue
        if group == "scheduler" and key == "interval":  # read by mnistlab, not passed to the scheduler
            if node[key] not in SCHEDULER_INTERVALS:
                raise ConfigError(f"scheduler.interval must be one of {', '.join(SCHEDULER_INTERVALS)}, got {node[key]!r}")
            continue
        if not open_ended and key not in parameters:
            raise _unknown(f"{group}.{key}", list(parameters))
        ranges = ARGUMENT_RANGES.get(group.split(".")[0], {})
        if key in ranges:
            value = node[key]
            check_bounds(f"{group}.{key}", list(value) if isinstance(value, ListConfig) else value, ranges[key])


def targets(cfg: DictConfig) -> dict[str, DictConfig]:
    """Every node of the config that names a class, by its dotted key: ``model``, ``technique.mixup``, ..."""
    found = {group: cfg[group] for group in TOP_LEVEL if isinstance(cfg.get(group), DictConfig) and "_target_" in cfg[group]}
    for group in NAMED_GROUPS:
        for name, node in (cfg.get(group) or {}).items():
            if not (isinstance(node, DictConfig) and "_target_" in node):
                raise ConfigError(
                    f"{group}.{name} names no class (_target_); an option file of the {group} group starts with "
                    f"`# @package {group}.<its name>` and sets _target_"
                )
            found[f"{group}.{name}"] = node
    return found


def load_settings(cfg: DictConfig) -> Settings:
    """The checked, typed settings of a composed config; raises ConfigError naming the first bad key.

    Beyond the dataclasses' own checks: keys nothing reads, the arguments of the model, optimizer and
    scheduler, and the limits one setting puts on another (batch size and training split, warm-up and epochs).
    """
    for key in cfg:
        if key not in TOP_LEVEL:
            raise _unknown(str(key), list(TOP_LEVEL))
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    check_bounds("seed", seed, {"ge": 0, "lt": 2**32})
    try:
        for group, schema in SCHEMAS.items():
            _check_schema_keys(cfg[group], schema, group)
        groups = {key: OmegaConf.to_object(cfg[key]) for key in SCHEMAS}  # first: they name the keys others interpolate
        for key, node in targets(cfg).items():
            _check_arguments(node, key)
    except ConfigError:
        raise
    except Exception as err:  # an interpolation that cannot resolve, a missing value
        raise ConfigError(str(err)) from err
    settings = Settings(**groups, data=construct(cfg.data, "data"), seed=seed)
    reg, t = settings.regularization, settings.trainer
    needs_val = [key for key, on in (("keep_best", reg.keep_best), ("early_stopping_patience", reg.early_stopping_patience)) if on]
    if needs_val and not settings.data.val_size:
        raise ConfigError(
            f"regularization.{needs_val[0]} selects on the validation split, but data.val_size is 0; set data.val_size (e.g. 5000), or use experiment=early_stopping"
        )
    if settings.data.train_images is not None:  # known before reading (MNIST's 60,000): refused before anything loads
        check_against_data(settings, settings.data.train_images)
    _check_regularization_reaches(cfg, reg)
    warmup = OmegaConf.select(cfg, "scheduler.warmup_epochs")
    if warmup is not None and warmup > t.epochs:
        raise ConfigError(f"scheduler.warmup_epochs must be <= trainer.epochs ({t.epochs}), got {warmup}")
    return settings


# A regularization setting reaches the model, optimizer or loss only where that group's config interpolates it.
CARRIERS = {"dropout": "model", "batch_norm": "model", "weight_decay": "optimizer", "label_smoothing": "loss"}


def construct(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``; a ValueError of the class's own argument checks (torch's, yours) names ``key``."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from mnistlab.errors import UserError

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, ValueError):
            raise ConfigError(f"{key} ({node.get('_target_')}): {cause}") from None
        raise


def check_against_data(settings: Settings, train_images: int) -> None:
    """The limits the data put on the other settings: a validation split smaller than the training images, and a
    batch no larger than the training images it leaves."""
    if settings.data.val_size >= train_images:
        raise ConfigError(f"data.val_size must be < {train_images:,} (the training images), got {settings.data.val_size:,}")
    left = train_images - settings.data.val_size
    if settings.trainer.batch_size > left:
        raise ConfigError(
            f"trainer.batch_size must be <= {left:,} (the training images left by data.val_size), got {settings.trainer.batch_size:,}"
        )


def _check_regularization_reaches(cfg: DictConfig, reg: RegularizationSettings) -> None:
    """A regularization that the model or optimizer never reads would label a run with what it did not train."""
    for key, group in CARRIERS.items():
        value = getattr(reg, key)
        if value and f"${{regularization.{key}}}" not in str(OmegaConf.to_container(cfg[group], resolve=False)):
            raise ConfigError(
                f"regularization.{key}={value} would have no effect: {group} {cfg[group].get('_target_', '')} does not read it. "
                f"Add `{key}: ${{regularization.{key}}}` to the {group}'s config if its class takes {key}, or leave regularization.{key} unset"
            )


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


SIGNS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


def describe(bounds: dict[str, float]) -> str:
    """A range as the docs write it: ``0 ≤ x < 1``, ``≥ 1``."""
    low = next(((SIGNS[b].replace("≥", "≤").replace(">", "<"), v) for b, v in bounds.items() if b in ("ge", "gt")), None)
    high = next(((SIGNS[b], v) for b, v in bounds.items() if b in ("le", "lt")), None)
    number = lambda v: f"{int(v):,}" if float(v).is_integer() else f"{v:g}"  # noqa: E731
    if low and high:
        return f"{number(low[1])} {low[0]} x {high[0]} {number(high[1])}"
    sign, value = (SIGNS[next(b for b in bounds if b in ("ge", "gt"))], low[1]) if low else high
    return f"{sign} {number(value)}"


def ranges_table() -> str:
    """Every checked range as a markdown table (docs/reliability.md holds this table as generated here)."""
    rows: dict[str, list[str]] = {}

    def add(key: str, bounds: dict[str, float]) -> None:
        rows.setdefault(f"{key.split('.')[0]}|{describe(bounds)}", []).append(f"`{key}`")

    add("seed", {"ge": 0, "lt": 2**32})
    for group, schema in SCHEMAS.items():
        for f in dataclasses.fields(schema):
            nested = f.default_factory if f.default_factory is not dataclasses.MISSING else None
            for inner in dataclasses.fields(nested) if dataclasses.is_dataclass(nested) else [f]:
                if inner.metadata:
                    add(f"{group}.{f.name}.{inner.name}" if inner is not f else f"{group}.{f.name}", dict(inner.metadata))
    for group, arguments in ARGUMENT_RANGES.items():
        for name, bounds in arguments.items():
            add(f"{group}.{name}", bounds)
    lines = ["| key | range |", "|---|---|"]
    lines += [f"| {', '.join(keys)} | {key.split('|', 1)[1]} |" for key, keys in rows.items()]
    return "\n".join(lines)


def register() -> None:
    """The groups' base options, found by Hydra like YAML files of the same names."""
    store = ConfigStore.instance()
    store.store(group="trainer", name="default", node=TrainerSettings)
    store.store(group="regularization", name="none", node=RegularizationSettings)


register()


if __name__ == "__main__":
    print(ranges_table())
