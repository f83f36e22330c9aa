"""One training run: instantiate the composed config, train, write the run files."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, open_dict

from mnistlab import lock, runfiles, study
from mnistlab.data import prepare, steps_per_epoch
from mnistlab.dataset import Images
from mnistlab.device import fused_optimizer, pick_device, prepare_model, set_threads, speed_settings
from mnistlab.engine import FitResult, Trainer, evaluate
from mnistlab.errors import OutputError, stop_status
from mnistlab.launch import Job, make_dir, plan_launch, slurm_job_id
from mnistlab.loggers import CsvLogger
from mnistlab.metrics import declarations, with_built_in
from mnistlab.models import count_parameters, parameter_table
from mnistlab.schedules import make_scheduler
from mnistlab.settings import Settings, check_against_data, construct, identity, load_settings, targets

log = logging.getLogger("mnistlab")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(node: DictConfig, model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """The configured optimizer; ``optimizer.fused: null`` takes the fused update where PyTorch has it (CPU, CUDA)."""
    fused = {"fused": True} if node.get("fused", False) is None and fused_optimizer(device) else {}
    return construct(node, "optimizer", _partial_=True, **fused)(params=model.parameters())  # _partial_: the config need not say it


def read_data(cfg: DictConfig, settings: Settings) -> Images:
    """Read the dataset and record what it found (channels, classes, normalization, fingerprint) in ``cfg.data``,
    where the model reads them by interpolation and the run's identity includes them."""
    images = settings.data.load()
    check_against_data(settings, len(images.train_labels))
    with open_dict(cfg):
        for key, value in settings.data.facts().items():
            if key in cfg.data:
                cfg.data[key] = value
    return images


def build_trainer(cfg: DictConfig, settings: Settings, images: Images, run_dir: Path, job: Job, summary: dict[str, Any]) -> Trainer:
    """Instantiate every part of the config on the chosen device, the data there too; fills ``summary``."""
    device = pick_device(settings.trainer.device)
    settings = dataclasses.replace(settings, trainer=speed_settings(settings.trainer, device))
    t = settings.trainer
    threads = set_threads(t.threads, job.parallel_jobs, job.cpus_per_task)
    seed_everything(settings.seed)
    data = prepare(images, device, settings.data.val_size, settings.seed, settings.data)
    model = construct(cfg.model, "model")
    parts = targets(cfg)
    named = lambda group: {key.split(".", 1)[1]: construct(node, key) for key, node in parts.items() if key.startswith(f"{group}.")}  # noqa: E731
    metrics = with_built_in(list(named("metric").values()))
    summary |= {
        "model": job.model or type(model).__name__,
        "dataset": settings.data.name,
        "params": count_parameters(model),
        "device": str(device),
        "threads": threads,
        "metrics": declarations(metrics),
    }
    log.info("\n%s", parameter_table(model))
    model = prepare_model(model, t, device)
    optimizer = make_optimizer(cfg.optimizer, model, device)
    per_epoch = steps_per_epoch(len(data.train), t.batch_size, t.limit_batches)
    scheduler, interval = make_scheduler(
        cfg.scheduler, optimizer, t.epochs, per_epoch, lambda node, **kw: construct(node, "scheduler", **kw)
    )
    return Trainer(
        model,
        optimizer,
        scheduler,
        data,
        settings,
        run_dir,
        identity=identity(cfg),
        scheduler_interval=interval,
        loss=construct(cfg.loss, "loss") if "loss" in cfg else None,
        techniques=list(named("technique").values()),
        callbacks=named("callback") | study_callbacks(),
        metrics=metrics,
    )


def study_callbacks() -> dict[str, Any]:
    """A study's trial, when a study's worker launched this run: each epoch reported, a pruned trial stopped."""
    trial = study.active_trial()
    return {"optuna_pruning": study.Pruning(trial)} if trial is not None else {}


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one configuration into ``run_dir``; returns the summary (also written as summary.json)."""
    return fit(cfg, run_dir)[0]


def fit(cfg: DictConfig, run_dir: Path) -> tuple[dict[str, Any], Trainer | None]:
    """Train one configuration into ``run_dir``; returns the summary and the trainer (None: a completed run skipped).

    The run holds the directory's lock (mnistlab.lock) throughout: a directory another launch trains in is
    refused before anything is written. Until the launch is accepted (settings checked, data loaded, model
    built, a resumed run's settings matched) nothing is written into a directory that already holds a run.
    A new directory records why its launch failed, so that a sweep's report can list it.
    """
    run_dir = Path(run_dir)
    make_dir(run_dir)
    with lock.hold(run_dir):
        return _fit(cfg, run_dir)


def _fit(cfg: DictConfig, run_dir: Path) -> tuple[dict[str, Any], Trainer | None]:
    started = time.perf_counter()
    job = Job.current()
    existing = runfiles.has_records(run_dir)
    summary: dict[str, Any] = {
        "status": "running",
        "model": job.model,
        "seed": cfg.get("seed"),
        "job": job.num,
        **({"study": job.study, "trial": job.num} if job.study else {}),
        "slurm_job": slurm_job_id(),
        "requeues": job.requeues,
        "overrides": job.overrides,
        "versions": runfiles.versions(),
    }

    def record_stop(err: BaseException) -> None:
        summary.update(status=stop_status(err), error=f"{type(err).__name__}: {err}", wall_seconds=time.perf_counter() - started)
        try:
            runfiles.write_summary(run_dir, summary)
        except OutputError as also:  # the disk that failed the run may refuse its summary too
            log.error("could not record the run's status: %s", also)

    try:
        settings = load_settings(cfg)
        summary["objective"] = "final_val_acc" if settings.data.val_size else "final_test_acc"  # what a sweeper maximizes
        if job.requeues:
            log.info("requeued by SLURM (%d times): resuming %s", job.requeues, run_dir)
        images = read_data(cfg, settings)
        plan, previous = plan_launch(run_dir, cfg, settings.trainer.resume or job.requeues > 0)
        if plan == "skip":
            log.info("%s already completed; skipping (trainer.resume=true)", run_dir)
            return previous, None
        trainer = build_trainer(cfg, settings, images, run_dir, job, summary)
        if plan == "resume":
            trainer.resume()
        logger = GuardedLogger(construct(cfg.logger, "logger") if "logger" in cfg else CsvLogger())
    except (Exception, KeyboardInterrupt) as err:
        if not existing:
            with contextlib.suppress(OutputError):
                runfiles.write_record(run_dir, cfg, job.overrides, job.hydra)
            record_stop(err)
        raise
    try:
        runfiles.remove_temporary(run_dir)  # left by a process killed mid-write
        if plan == "new":
            runfiles.write_record(run_dir, cfg, job.overrides, job.hydra)
        runfiles.write_summary(run_dir, summary)
        logger.start(run_dir, identity(cfg), trainer.start_epoch, job.sweep_dir)
        trainer.on_epoch = logger.log_epoch
        result = trainer.fit()
        title = f"{summary['model']} ({summary['params']:,} params)"
        summary |= {**record_result(trainer, result, title), "wall_seconds": time.perf_counter() - started}
        runfiles.write_summary(run_dir, summary)
    except (Exception, KeyboardInterrupt) as err:
        record_stop(err)
        logger.finish(summary)
        raise
    logger.finish(summary)
    log.info(
        "%s: status=%s test_acc=%.2f%% test_loss=%.4f in %.1f s (%s)",
        summary["model"],
        result.status,
        summary.get("final_test_acc", math.nan),
        summary.get("final_test_loss", math.nan),
        result.seconds,
        run_dir,
    )
    return summary, trainer


class GuardedLogger:
    """A logger (mnistlab.loggers) whose failures after its start warn once and never stop the run: the run's own
    files are the record, and losing a tracking server must not lose an epoch."""

    def __init__(self, logger: Any):
        self.logger, self.started, self.failed = logger, False, False

    def start(self, *args: Any) -> None:
        self.logger.start(*args)  # a logger that cannot start (not installed, bad URI) fails the launch, before training
        self.started = True

    def _guard(self, method: str, *args: Any) -> None:
        if not self.started or self.failed:
            return
        try:
            getattr(self.logger, method)(*args)
        except Exception as err:
            self.failed = True
            log.warning(
                "%s stopped logging (%s: %s); the run goes on, its own files are complete",
                type(self.logger).__name__,
                type(err).__name__,
                err,
            )

    def log_epoch(self, row: dict[str, Any]) -> None:
        self._guard("log_epoch", row)

    def finish(self, summary: dict[str, Any]) -> None:
        self._guard("finish", summary)


def record_result(trainer: Trainer, result: FitResult, title: str) -> dict[str, Any]:
    """The summary fields of a finished fit; a completed run's kept weights are evaluated once more and drawn under ``title``."""
    preds, final = None, {}
    if result.status == "completed":  # the kept weights (the best val epoch with keep_best)
        evaluation = evaluate(
            trainer.model, trainer.data.test, trainer.metrics, trainer.settings.eval_batch_size, trainer.settings.channels_last
        )
        final, preds = evaluation.values, evaluation.preds
    elif result.history:
        final = {m.name: result.history[-1][f"test_{m.name}"] for m in trainer.metrics}
    fields = {
        "status": result.status,
        **runfiles.result_fields(result.history, final, declarations(trainer.metrics), result.fields.get("selected_epoch")),
        "seconds": result.seconds,
        "warmup_seconds": result.warmup_seconds,
        "time_to_target": None,
        "selected_epoch": None,
        "stopped_early": False,
        **result.fields,
    }
    if trainer.settings.plots and preds is not None:
        from mnistlab import plots  # matplotlib and pandas load only when figures are drawn

        test = trainer.data.test
        plots.run_figures(
            trainer.run_dir,
            f"{title}: test accuracy {final['acc']:.2f}%",
            result.history,
            trainer.data.dataset.pixels(test.images),
            test.labels.cpu().numpy(),
            preds.numpy(),
            list(trainer.data.dataset.classes or []),
        )
    return fields


def objective(summary: dict[str, Any]) -> float:
    """What sweepers maximise: final validation accuracy if there is a validation split, else test accuracy."""
    value = summary.get("final_val_acc", summary.get("final_test_acc"))
    return float(value) if value is not None and summary.get("status") == "completed" else math.nan
