"""Every part of a run built from its config, each once, and the :class:`Trainer` that holds them.

A part is built as soon as the settings it reads are known: before the data are read where it reads none of the
data's facts that only the data can tell (so that its own checks, and what a callback needs, refuse a launch
before anything is read), else once they are. The model is built first after seeding, as its first weights
come from the seed.
"""

from __future__ import annotations

import inspect
import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from mnistlab.config.run_config import RunConfig
from mnistlab.config.targets import build, named, targets
from mnistlab.data import Dataset, Images
from mnistlab.data.batches import prepare, steps_per_epoch
from mnistlab.errors import ConfigError
from mnistlab.models import count_parameters, parameter_table
from mnistlab.runs import provenance
from mnistlab.runs.launch import Job
from mnistlab.training.metrics import NAME, declarations, with_built_in
from mnistlab.training.rows import ROW
from mnistlab.training.speed import fused_optimizer, pick_device, prepare_model, set_threads, speed_settings
from mnistlab.training.trainer import Trainer

log = logging.getLogger("mnistlab")
PARTS = ("model", "metric", "loss", "technique", "callback")  # in the order they are built (the model first after seeding)
FACT = re.compile(r"\$\{data\.(\w+)\}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Parts:
    """The dataset and the parts of ``PARTS`` by their key (``model``, ``callback.keep_best``), each built once."""

    def __init__(self, config: RunConfig):
        self.built: dict[str, Any] = {}
        self.dataset: Dataset = build(config.cfg.data, "data")  # its own checks (data.name, data.root); nothing is read
        self.dataset.check()  # a folder's layout
        if self.dataset.train_images is not None:  # known before reading (MNIST's 60,000): refused before anything loads
            config.check_sizes(self.dataset.train_images)
        seed_everything(config.seed)
        self.build_known(config)
        self.check_needs(config)

    def build_known(self, config: RunConfig) -> None:
        """Build every part not built yet whose settings are all known in ``config``."""
        unknown = config.unknown_facts()
        nodes = targets(config.composed)
        for group in PARTS:
            for key in (k for k in nodes if k.split(".")[0] == group and k not in self.built):
                if not unknown & set(FACT.findall(OmegaConf.to_yaml(nodes[key]))):
                    self.built[key] = build(OmegaConf.select(config.cfg, key), key)

    def get(self, key: str) -> Any:
        return self.built[key]

    def entries(self, config: RunConfig, group: str) -> dict[str, Any]:
        """The built entries of a group of several (``callback``, ``technique``, ``metric``), by name, in config order."""
        return {name: self.built[f"{group}.{name}"] for name in named(config.cfg, group)}

    def check_needs(self, config: RunConfig) -> None:
        """What each callback built so far reads from the rows: a validation column needs a validation split."""
        for name, callback in self.entries_built("callback").items():
            for column in callback.needs():
                if column.startswith("val_") and not config.val_size:
                    raise ConfigError(
                        f"callback.{name} reads {column}, which needs a validation split: set data.val_size (e.g. data.val_size=5000)"
                    )

    def entries_built(self, group: str) -> dict[str, Any]:
        return {key.split(".", 1)[1]: part for key, part in self.built.items() if key.startswith(f"{group}.")}


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


def build_trainer(config: RunConfig, parts: Parts, images: Images, run_dir: Path, job: Job) -> tuple[Trainer, dict[str, Any]]:
    """The trainer of ``config`` with its data on the chosen device, and what the summary records of it."""
    cfg = config.cfg
    parts.build_known(config)  # what read the data's facts
    parts.check_needs(config)
    device = pick_device(config.trainer.device)
    settings = speed_settings(config.trainer, device)
    threads = set_threads(settings.threads, job.parallel_jobs, job.cpus_per_task)
    data = prepare(images, parts.dataset, device, config.val_size, config.seed)
    model = parts.get("model")
    metrics = with_built_in(parts.entries(config, "metric"))
    log.info("\n%s", parameter_table(model))
    dataset = parts.dataset
    facts = {"model": job.model or type(model).__name__, "dataset": dataset.name, "params": count_parameters(model)}
    facts["num_classes"] = int(dataset.num_classes or len(dataset.classes or ()))
    facts["images"] = {
        split: len(part) for split, part in (("train", data.train), ("val", data.val), ("test", data.test)) if part is not None
    }
    model = prepare_model(model, settings, device)
    optimizer = make_optimizer(cfg.optimizer, model, device)
    per_epoch = steps_per_epoch(len(data.train), settings.batch_size, settings.limit_batches, settings.min_steps_per_epoch)
    scheduler, interval = make_scheduler(cfg.scheduler, optimizer, settings.epochs, per_epoch)
    callbacks = parts.entries(config, "callback")
    trainer = Trainer(
        model,
        optimizer,
        scheduler,
        data,
        settings,
        parts.get("loss"),
        seed=config.seed,
        scheduler_interval=interval,
        techniques=list(parts.entries(config, "technique").values()),
        callbacks=callbacks,
        metrics=metrics,
        run_dir=run_dir,
    )
    columns = trainer.columns()
    for name, callback in callbacks.items():
        for field in callback.fields():
            if not NAME.match(field) or field.startswith(("final_", "best_")) or field in columns:
                raise ConfigError(
                    f"callback.{name} declares the summary field {field!r}: a field is lower-case letters, digits and underscores, "
                    "and neither a column nor final_/best_ (the run's own)"
                )
        for column in callback.needs():
            if column not in columns and column not in ROW:
                raise ConfigError(
                    f"callback.{name} reads {column}, which no metric or callback makes; the run's columns: {', '.join([*ROW, *columns])}"
                )
    facts |= {
        "device": str(device),
        "threads": threads,
        "provenance": provenance.collect(cfg, dataset, device, threads, run_dir),
        "objective": f"final_{trainer.objective}",
        "metrics": declarations(metrics),
        "columns": {name: column.record() for name, column in columns.items()},
        "fields": {name: column.record() for callback in callbacks.values() for name, column in callback.fields().items()},
    }
    return trainer, facts
