"""A finished run read back: its config, its dataset, and its model with the trained weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from mnistlab.config.targets import build
from mnistlab.data import Dataset, Idx
from mnistlab.errors import CheckpointError, RunDirError
from mnistlab.runs import files

MOVED = {"mnistlab.dataset.": "mnistlab.data."}  # classes a run of an earlier mnistlab names where they no longer live


@dataclass
class TrainedRun:
    """A run directory's model (in eval mode), the config it was trained with, its dataset (not read) and its summary."""

    run_dir: Path
    cfg: DictConfig
    model: nn.Module
    dataset: Dataset  # its facts (classes, channels, normalization) as the run recorded them
    summary: dict[str, Any]
    epoch: int  # the epoch whose weights the model holds


def current(node: DictConfig) -> DictConfig:
    """A recorded node naming a class, with the class's current path where it has moved."""
    node = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
    target = str(node.get("_target_", ""))
    for old, new in MOVED.items():
        if target.startswith(old):
            node._target_ = new + target.removeprefix(old)
    return node


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> TrainedRun:
    """Rebuild the model of ``run_dir`` from its recorded config and load its weights from ``checkpoint.pt``: the
    weights the run finished with and its summary reports (a callback's, such as keep-best's, where one gave them)."""
    run_dir = Path(run_dir)
    cfg = files.read_config(run_dir)
    if cfg is None:
        raise RunDirError(f"{run_dir} is not a mnistlab run directory: it has no {files.CONFIG_FILE}")
    try:
        summary = files.read_summary(run_dir)
    except ValueError:
        summary = {}
    state = files.load_checkpoint(run_dir / files.CHECKPOINT_FILE)
    weights, epoch = state["model"], int((state.get("finished_with") or state)["epoch"])
    model = build(current(cfg.model), "model")
    try:
        model.load_state_dict(weights)
    except Exception as err:
        raise CheckpointError(f"{run_dir}: the model of its config does not load its checkpoint ({type(err).__name__}: {err})") from err
    return TrainedRun(run_dir, cfg, model.to(device).eval(), recorded_dataset(cfg.data), summary, epoch)


def recorded_dataset(node: DictConfig) -> Dataset:
    """The dataset a run recorded, with the facts it found (a run of an earlier mnistlab named an IDX dataset only)."""
    if "_target_" not in node:
        return Idx(node.get("name", "mnist"), node.get("root"), channels=1, num_classes=10)
    dataset = build(current(node), "data")
    if dataset.classes is None:
        dataset.classes = tuple(getattr(getattr(dataset, "spec", None), "classes", ())) or tuple(map(str, range(dataset.num_classes)))
    return dataset
