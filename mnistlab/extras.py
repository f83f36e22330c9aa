"""The optional extras of ``pip install "mnistlab[...]"``: what each enables and the module it brings.

A base install runs every command without them. Asking for what an extra enables without it costs one
line, before anything runs: ``hydra/launcher=slurm needs: pip install "mnistlab[slurm]"`` (exit 2).
Nothing here imports the extras: it only looks them up.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from mnistlab.errors import UserError

MODULES = {  # extra -> a module it installs (looked up, never imported here)
    "parallel": "hydra_plugins.hydra_joblib_launcher",
    "slurm": "hydra_plugins.hydra_submitit_launcher",
    "optuna": "optuna",
    "tensorboard": "tensorboard",
    "mlflow": "mlflow",
    "export": "onnxruntime",
    "digits": "sklearn",
    "torchmetrics": "torchmetrics",
}

CHOICES = {  # (config group, option) on the command line -> the extra it needs
    ("hydra/launcher", "joblib"): "parallel",
    ("hydra/launcher", "slurm"): "slurm",
    ("hydra/launcher", "local"): "slurm",
    ("hydra/launcher", "submitit_slurm"): "slurm",
    ("hydra/launcher", "submitit_local"): "slurm",
    ("hydra/sweeper", "study"): "optuna",
    ("hparams_search", "lenet5_optuna"): "optuna",
    ("logger", "tensorboard"): "tensorboard",
    ("logger", "mlflow"): "mlflow",
    ("data", "digits"): "digits",
}


class MissingExtra(UserError):
    """What was asked for needs an optional extra that is not installed."""


def installed(extra: str) -> bool:
    """Whether ``extra``'s module can be imported here."""
    try:
        return importlib.util.find_spec(MODULES[extra]) is not None
    except (ImportError, ValueError):  # a parent package that is missing or broken
        return False


def require(extra: str, what: str) -> None:
    """Raise MissingExtra (one line: what needs which extra) unless ``extra`` is installed."""
    if not installed(extra):
        raise MissingExtra(f'{what} needs: pip install "mnistlab[{extra}]"')


def check_overrides(overrides: Iterable[str]) -> None:
    """Raise MissingExtra for the first command-line choice (``group=option``, sweeps ``group=a,b`` too) that
    needs an extra that is not installed."""
    for item in overrides:
        key, sep, value = item.lstrip("+~").partition("=")
        if not sep:
            continue
        for option in value.split(","):
            extra = CHOICES.get((key, option.strip()))
            if extra is not None:
                require(extra, f"{key}={option.strip()}")
