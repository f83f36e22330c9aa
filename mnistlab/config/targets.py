"""The groups that name a class (``_target_``): each checked against its class's signature, and built naming its key.

These are data, model, optimizer, scheduler, loss, logger, and each entry of technique, callback and metric,
ours and a user's alike. A class must import, take every key its config gives, and each argument named in
:data:`ARGUMENT_RANGES` must be in range, all before anything trains.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any

from omegaconf import DictConfig, ListConfig

from mnistlab import extras
from mnistlab.config.bounds import check_bounds
from mnistlab.errors import ConfigError, UserError

NAMED_GROUPS = ("technique", "callback", "metric")  # groups of several named entries: technique.mixup, callback.ema, ...
TOP_LEVEL = ("data", "model", "optimizer", "scheduler", "loss", "trainer", "run", "regularization", "logger", *NAMED_GROUPS, "seed")
SCHEDULER_INTERVALS = ("step", "epoch")  # scheduler.interval: step the scheduler after every batch or every epoch

# Ranges of the arguments of the groups that name a class, by argument name. They apply to our options and to a
# user's own class alike; a list (``betas``, ``hidden``) is checked item by item.
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
    "callback": {
        "max_norm": {"gt": 0},
        "norm_type": {"gt": 0},
        "patience": {"ge": 1},
        "min_steps": {"ge": 0},
        "loss_ratio": {"gt": 0, "le": 1},
        "margin": {"ge": 0, "lt": 1},
    },
}


def unknown_key(key: str, known: list[str]) -> ConfigError:
    """The error for a key nothing reads, with the closest known name as a hint."""
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1)
    hint = f" (did you mean {key.rsplit('.', 1)[0] + '.' if '.' in key else ''}{close[0]}?)" if close else ""
    return ConfigError(f"{key} is not a setting: nothing reads it{hint}")


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


def locate(path: str) -> Any:
    """The object a dotted path names (``package.module.Class``): the longest importable module, then attributes."""
    parts = str(path).split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as err:
            if cut == 1 or not str(err.name or "").startswith(parts[0]):
                raise
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ImportError(f"nothing to import in {path!r}")


def import_target(node: DictConfig, key: str) -> Any:
    """The class (or function) ``node._target_`` names; ConfigError naming ``key`` when it cannot be imported."""
    target = node.get("_target_")
    try:
        return locate(target)
    except Exception as err:
        missing = str(getattr(err, "name", "") or "") if isinstance(err, ModuleNotFoundError) else ""
        extra = next((name for name, module in extras.MODULES.items() if missing and missing.split(".")[0] == module.split(".")[0]), None)
        fix = f'pip install "mnistlab[{extra}]"' if extra else "the module that defines it must be on PYTHONPATH (or installed)"
        raise ConfigError(f"{key}._target_={target} cannot be imported ({type(err).__name__}: {err}); {fix}") from err


def check_arguments(node: DictConfig, key: str) -> None:
    """A node naming a class: the class imports, accepts every key, and each known argument is in range."""
    parameters, open_ended = accepted_arguments(import_target(node, key))
    for name in node:
        if name.startswith("_") and name.endswith("_"):
            continue
        if key == "scheduler" and name == "interval":  # read by mnistlab, not passed to the scheduler
            if node[name] not in SCHEDULER_INTERVALS:
                raise ConfigError(f"scheduler.interval must be one of {', '.join(SCHEDULER_INTERVALS)}, got {node[name]!r}")
            continue
        if not open_ended and name not in parameters:
            raise unknown_key(f"{key}.{name}", list(parameters))
        ranges = ARGUMENT_RANGES.get(key.split(".")[0], {})
        if name in ranges:
            value = node[name]
            check_bounds(f"{key}.{name}", list(value) if isinstance(value, ListConfig) else value, ranges[name])


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


def named(cfg: DictConfig, group: str) -> dict[str, DictConfig]:
    """The entries of a group of several (``technique``, ``callback``, ``metric``), by name, in config order."""
    return {key.split(".", 1)[1]: node for key, node in targets(cfg).items() if key.startswith(f"{group}.")}


def build(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` naming ``key`` in one line when the class cannot be imported or refuses a value
    (a ValueError of its own argument checks, torch's or yours); any other error is a bug and keeps its traceback."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, ValueError):
            raise ConfigError(f"{key} ({node.get('_target_')}): {cause}") from None
        if isinstance(cause, ImportError) or "Error locating target" in str(err):
            import_target(node, key)  # raises the one-line ConfigError
        raise
