"""mnistlab from Python, for notebooks and scripts: compose a config, train it, load a trained run.

    from mnistlab import api

    cfg = api.compose("model=mlp", "trainer.epochs=3")
    result = api.train(cfg)  # a run directory under ./outputs/runs, as the command line makes
    result.summary["final_test_acc"], result.model, result.metrics

Nothing global changes: logs go to the ``mnistlab`` logger and your handlers (none are added), figures are
drawn without pyplot, and Hydra's global state is as it was after each call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from torch import nn

from mnistlab import paths
from mnistlab.config import register
from mnistlab.runs import files
from mnistlab.runs.trained import TrainedRun, load_run

__all__ = ["Result", "compose", "train", "load"]


@dataclass
class Result:
    """A finished :func:`train`: the run's summary, its trained model and its per-epoch metrics."""

    run_dir: Path
    summary: dict[str, Any]
    model: nn.Module | None  # None only when a completed run was skipped and kept no checkpoint
    metrics: pd.DataFrame


@contextlib.contextmanager
def _fresh_hydra() -> Iterator[None]:
    """Hydra's global state set aside while composing (a notebook may have initialized its own), then restored."""
    global_hydra, hydra_config = GlobalHydra.instance(), HydraConfig.instance().cfg
    saved = global_hydra.hydra
    global_hydra.hydra = None
    try:
        yield
    finally:
        global_hydra.hydra = saved
        HydraConfig.instance().cfg = hydra_config


def compose(*overrides: str, config_dir: str | Path | None = None) -> DictConfig:
    """The config the ``mnistlab`` command would run with ``overrides`` (``"model=mlp"``, ``"optimizer.lr=0.01"``).

    ``config_dir`` adds a folder of your own options, as ``--config-dir`` does on the command line. The config
    keeps Hydra's node (``cfg.hydra``), which :func:`train` reads for the run directory and the chosen options.
    """
    extra = [f"hydra.searchpath=[file://{Path(config_dir).resolve()}]"] if config_dir is not None else []
    register()
    with _fresh_hydra(), initialize_config_dir(config_dir=str(paths.config_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=[*overrides, *extra], return_hydra_config=True)


def train(cfg: DictConfig, run_dir: str | Path | None = None) -> Result:
    """Train ``cfg`` (from :func:`compose`) into ``run_dir``, by default a new directory under ./outputs/runs.

    Raises a :class:`mnistlab.errors.UserError` subclass (with a message naming the key or file) on bad input,
    like the command line; the run directory records every other way the run ends.
    """
    from mnistlab.runs.task import fit

    cfg = cfg.copy()
    hydra_node = cfg.get("hydra")
    with _fresh_hydra():
        if hydra_node is not None:
            HydraConfig.instance().set_config(cfg)  # what the command line would know: chosen options, overrides
            run_dir = run_dir if run_dir is not None else hydra_node.run.dir
            with open_dict(cfg):
                del cfg["hydra"]
        if run_dir is None:
            raise ValueError("run_dir is needed for a config without Hydra's node (compose it with mnistlab.api.compose)")
        run_dir = Path(run_dir).resolve()
        summary, trainer = fit(cfg, run_dir)
    model = trainer.model if trainer is not None else _checkpoint_model(run_dir)
    return Result(run_dir, summary, model, pd.DataFrame(files.read_metrics(run_dir / files.METRICS_FILE)))


def load(run_dir: str | Path, device: str = "cpu") -> TrainedRun:
    """A trained run read back: ``.model`` (eval mode, trained weights), ``.cfg``, ``.dataset`` (classes, normalization), ``.summary``."""
    return load_run(run_dir, device)


def _checkpoint_model(run_dir: Path) -> nn.Module | None:
    return load_run(run_dir).model if (run_dir / files.CHECKPOINT_FILE).exists() else None
