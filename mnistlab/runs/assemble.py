"""Every part of a run built from its config, on the chosen device, the data there too: one :class:`Trainer`."""

from __future__ import annotations

import inspect
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from mnistlab.config.run_config import RunConfig
from mnistlab.config.targets import build, named
from mnistlab.data import Dataset, Images
from mnistlab.data.batches import prepare, steps_per_epoch
from mnistlab.models import count_parameters, parameter_table
from mnistlab.runs.launch import Job
from mnistlab.training.metrics import declarations, with_built_in
from mnistlab.training.speed import fused_optimizer, pick_device, prepare_model, set_threads, speed_settings
from mnistlab.training.trainer import Trainer

log = logging.getLogger("mnistlab")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(node: DictConfig, model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """The configured optimizer; ``optimizer.fused: null`` takes the fused update where PyTorch has it (CPU, CUDA)."""
    fused = {"fused": True} if node.get("fused", False) is None and fused_optimizer(device) else {}
    return build(node, "optimizer", _partial_=True, **fused)(params=model.parameters())  # _partial_: the config need not say it


def make_scheduler(node: DictConfig, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> tuple[Any, str]:
    """The configured scheduler, and when it steps: ``scheduler.interval`` (``step``: after every batch; ``epoch``:
    after each epoch's evaluation). Unset, a scheduler that takes ``total_steps`` steps per batch, any other per epoch.

    ``total_steps``, ``steps_per_epoch`` and ``epochs``, where the scheduler takes them and the config does not
    set them, come from the run and count scheduler steps: with ``interval: epoch`` an epoch is one step.
    """
    node = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
    interval = node.pop("interval", None)
    factory = build(node, "scheduler", _partial_=True)
    parameters = inspect.signature(factory.func).parameters
    interval = interval or ("step" if "total_steps" in parameters else "epoch")
    per_epoch = steps_per_epoch if interval == "step" else 1
    length = {"total_steps": epochs * per_epoch, "steps_per_epoch": per_epoch, "epochs": epochs}
    given = {key: value for key, value in length.items() if key in parameters and key not in factory.keywords}
    return factory(optimizer, **given), interval


def build_trainer(config: RunConfig, dataset: Dataset, images: Images, run_dir: Path, job: Job) -> tuple[Trainer, dict[str, Any]]:
    """The trainer of ``config`` with its data on the chosen device, and what the summary records of it."""
    cfg = config.cfg
    device = pick_device(config.trainer.device)
    settings = speed_settings(config.trainer, device)
    threads = set_threads(settings.threads, job.parallel_jobs, job.cpus_per_task)
    seed_everything(config.seed)
    data = prepare(images, dataset, device, config.val_size, config.seed)
    model = build(cfg.model, "model")
    metrics = with_built_in([build(node, f"metric.{name}") for name, node in named(cfg, "metric").items()])
    log.info("\n%s", parameter_table(model))
    facts = {"model": job.model or type(model).__name__, "dataset": dataset.name, "params": count_parameters(model)}
    facts["num_classes"] = int(dataset.num_classes or len(dataset.classes or ()))
    facts["images"] = {
        split: len(part) for split, part in (("train", data.train), ("val", data.val), ("test", data.test)) if part is not None
    }
    model = prepare_model(model, settings, device)
    optimizer = make_optimizer(cfg.optimizer, model, device)
    per_epoch = steps_per_epoch(len(data.train), settings.batch_size, settings.limit_batches, settings.min_steps_per_epoch)
    scheduler, interval = make_scheduler(cfg.scheduler, optimizer, settings.epochs, per_epoch)
    trainer = Trainer(
        model,
        optimizer,
        scheduler,
        data,
        settings,
        build(cfg.loss, "loss"),
        seed=config.seed,
        scheduler_interval=interval,
        techniques=[build(node, f"technique.{name}") for name, node in named(cfg, "technique").items()],
        callbacks={name: build(node, f"callback.{name}") for name, node in named(cfg, "callback").items()},
        metrics=metrics,
        run_dir=run_dir,
    )
    facts |= {
        "device": str(device),
        "threads": threads,
        "metrics": declarations(metrics),
        "columns": {name: column.record() for name, column in trainer.columns().items()},
    }
    return trainer, facts
