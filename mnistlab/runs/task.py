"""One run, start to end: check the config, read the data, build the parts, train, record every way it ends.

The run holds its directory's lock (:mod:`.lock`) throughout: a directory another launch trains in is refused
before anything is written. Until the launch is accepted (settings checked, data read, parts built, a resumed
run's settings matched) nothing is written into a directory that already holds a run; a new directory records
why its launch failed, so that a sweep's report can list it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mnistlab.config import check as check_config
from mnistlab.config.targets import build
from mnistlab.errors import OutputError, stop_status
from mnistlab.runs import files, lock, resume
from mnistlab.runs.assemble import build_trainer
from mnistlab.runs.launch import Job, make_dir
from mnistlab.runs.loggers import CsvLogger, GuardedLogger
from mnistlab.runs.recorder import EpochRecorder
from mnistlab.runs.results import record_result
from mnistlab.training.trainer import Trainer

log = logging.getLogger("mnistlab")


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one composed configuration into ``run_dir``; returns the summary (also written as summary.json)."""
    return fit(cfg, run_dir)[0]


def fit(cfg: DictConfig, run_dir: Path) -> tuple[dict[str, Any], Trainer | None]:
    """As :func:`run`, also returning the trainer (None: a completed run skipped)."""
    run_dir = Path(run_dir)
    make_dir(run_dir)
    with lock.hold(run_dir):
        return _fit(cfg, run_dir)


def _fit(cfg: DictConfig, run_dir: Path) -> tuple[dict[str, Any], Trainer | None]:
    started = time.perf_counter()
    job = Job.current()
    existing = files.has_records(run_dir)
    summary: dict[str, Any] = {
        "status": "running",
        "model": job.model,
        "seed": cfg.get("seed"),
        "job": job.num,
        **({"study": job.study, "trial": job.num} if job.study else {}),
        "slurm_job": lock.slurm_job_id(),
        "requeues": job.requeues,
        "overrides": job.overrides,
        "versions": files.versions(),
    }
    config = None

    def record_stop(err: BaseException) -> None:
        summary.update(status=stop_status(err), error=f"{type(err).__name__}: {err}", wall_seconds=time.perf_counter() - started)
        try:
            files.write_summary(run_dir, summary)
        except OutputError as also:  # the disk that failed the run may refuse its summary too
            log.error("could not record the run's status: %s", also)

    try:
        config = check_config(cfg)
        summary["objective"] = "final_val_acc" if config.val_size else "final_test_acc"  # what a sweeper maximizes
        if job.requeues:
            log.info("requeued by SLURM (%d times): resuming %s", job.requeues, run_dir)
        dataset = build(config.cfg.data, "data")
        images = dataset.load()
        config = config.with_data(dataset.facts(), len(images.train_labels))
        plan, previous = resume.plan(run_dir, config, config.trainer.resume or job.requeues > 0)
        if plan == "skip":
            log.info("%s already completed; skipping (trainer.resume=true)", run_dir)
            return previous, None
        trainer, facts = build_trainer(config, dataset, images, run_dir, job)
        summary |= facts
        if plan == "resume":
            resume.restore(trainer, run_dir)
        logger = GuardedLogger(build(config.cfg.logger, "logger") if "logger" in config.cfg else CsvLogger())
    except (Exception, KeyboardInterrupt) as err:
        if not existing:
            with contextlib.suppress(OutputError):
                files.write_record(run_dir, config.cfg if config else cfg, job.overrides, job.hydra)
            record_stop(err)
        raise
    recorder = EpochRecorder(run_dir, config.trainer.checkpoint, logger)
    trainer.record = recorder
    try:
        files.remove_temporary(run_dir)  # left by a process killed mid-write
        if plan == "new":
            files.write_record(run_dir, config.cfg, job.overrides, job.hydra)
        files.write_summary(run_dir, summary)
        logger.start(run_dir, config.identity, trainer.start_epoch, job.sweep_dir)
        result = trainer.fit()
        if result.status in ("interrupted", "terminated"):
            recorder.settle()
        title = f"{summary['model']} ({summary['params']:,} params)"
        summary |= {**record_result(trainer, result, title, config.trainer.plots), "wall_seconds": time.perf_counter() - started}
        files.write_summary(run_dir, summary)
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
