"""A finished run read back: its config, its dataset, and its model with the trained weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from mnistlab import runfiles
from mnistlab.dataset import Dataset, Idx
from mnistlab.errors import CheckpointError, RunDirError


@dataclass
class TrainedRun:
    """A run directory's model (in eval mode), the config it was trained with, its dataset (not read) and its summary."""

    run_dir: Path
    cfg: DictConfig
    model: nn.Module
    dataset: Dataset  # its facts (classes, channels, normalization) as the run recorded them
    summary: dict[str, Any]
    epoch: int  # the epoch whose weights the model holds


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> TrainedRun:
    """Rebuild the model of ``run_dir`` from its recorded config and load its weights from ``checkpoint.pt``.

    The weights are those the run finished with: the selected epoch's where ``regularization.keep_best`` chose one.
    """
    run_dir = Path(run_dir)
    cfg = runfiles.read_config(run_dir)
    if cfg is None:
        raise RunDirError(f"{run_dir} is not a mnistlab run directory: it has no {runfiles.CONFIG_FILE}")
    try:
        summary = runfiles.read_summary(run_dir)
    except ValueError:
        summary = {}
    state = runfiles.load_checkpoint(run_dir / runfiles.CHECKPOINT_FILE)
    weights, epoch = state["model"], int(state["epoch"])
    kept = state.get("callbacks", {}).get("keep_best") or {"weights": state.get("best_state"), "best_epoch": state.get("best_epoch")}
    if cfg.regularization.get("keep_best") and kept["weights"] is not None:
        weights, epoch = kept["weights"], int(kept["best_epoch"])
    try:
        model = instantiate(cfg.model)
        model.load_state_dict(weights)
    except Exception as err:
        raise CheckpointError(f"{run_dir}: the model of its config does not load its checkpoint ({type(err).__name__}: {err})") from err
    return TrainedRun(run_dir, cfg, model.to(device).eval(), recorded_dataset(cfg.data), summary, epoch)


def recorded_dataset(node: DictConfig) -> Dataset:
    """The dataset a run recorded, with the facts it found (a run of an older mnistlab named an IDX dataset only)."""
    if "_target_" not in node:
        return Idx(node.get("name", "mnist"), node.get("root"), channels=1, num_classes=10)
    dataset = instantiate(node)
    if dataset.classes is None:
        dataset.classes = tuple(getattr(getattr(dataset, "spec", None), "classes", ())) or tuple(map(str, range(dataset.num_classes)))
    return dataset
