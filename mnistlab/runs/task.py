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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mnistlab.config import RunConfig
from mnistlab.config import check as check_config
from mnistlab.config.targets import build
from mnistlab.errors import OutputError, UserError, stop_status
from mnistlab.runs import files, lock, resume
from mnistlab.runs.assemble import Parts, build_trainer
from mnistlab.runs.launch import Job, make_dir
from mnistlab.runs.loggers import CsvLogger, GuardedLogger
from mnistlab.runs.recorder import EpochRecorder
from mnistlab.runs.results import record_result
from mnistlab.training.trainer import Trainer

log = logging.getLogger("mnistlab")


FIGURES = ("now", "background", "later")  # when a run's figures are drawn: here, in a process of their own, by its sweep


def run(cfg: DictConfig, run_dir: Path, figures: str = "now") -> dict[str, Any]:
    """Train one composed configuration into ``run_dir``; returns the summary (also written as summary.json). Its
    figures (``run.plots``) are drawn ``figures``: ``now``, in the ``background``, or ``later`` (by its sweep)."""
    return fit(cfg, run_dir, figures)[0]


def fit(cfg: DictConfig, run_dir: Path, figures: str = "now") -> tuple[dict[str, Any], Trainer | None]:
    """As :func:`run`, also returning the trainer (None: a completed run skipped).

    A single run refused as bad input (a UserError before it is accepted) in a directory that held no run leaves no
    directory; a sweep's job leaves its record, so that the sweep's report can list it."""
    run_dir = Path(run_dir)
    make_dir(run_dir)
    fresh, job = not files.has_records(run_dir), Job.current()
    refused: UserError | None = None
    with lock.hold(run_dir):
        try:
            launch = _accept(cfg, run_dir, job)
        except UserError as err:
            refused = err
        else:
            if launch.trainer is None:
                return launch.summary, None
            summary, trainer = _train(launch)
    if refused is not None:
        if fresh and not job.multirun:
            files.discard(run_dir)
        raise refused
    if files.figures_missing(run_dir) and figures != "later":
        from mnistlab.runs import figures as drawing

        drawing.render(run_dir) if figures == "now" else drawing.in_background(run_dir)
    return summary, trainer


@dataclass
class Launch:
    """An accepted launch: what it trains and where (``trainer`` None: a completed run, skipped)."""

    run_dir: Path
    job: Job
    summary: dict[str, Any]
    started: float
    config: RunConfig | None = None
    trainer: Trainer | None = None
    logger: Any = None
    plan: str = "new"

    def record_stop(self, err: BaseException) -> None:
        """The summary of a launch that stopped on ``err`` (a failure, Ctrl-C, SIGTERM)."""
        self.summary.update(status=stop_status(err), error=f"{type(err).__name__}: {err}", wall_seconds=time.perf_counter() - self.started)
        try:
            files.write_summary(self.run_dir, self.summary)
        except OutputError as also:  # the disk that failed the run may refuse its summary too
            log.error("could not record the run's status: %s", also)


def _accept(cfg: DictConfig, run_dir: Path, job: Job) -> Launch:
    """Check the settings, read the data, match a resumed run's settings and build the parts, writing nothing into a
    directory that holds a run. A new directory records a launch that fails here (a sweep's report lists it),
    unless it is a single run refused as bad input, which leaves nothing."""
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
    launch = Launch(run_dir, job, summary, time.perf_counter())
    try:
        config = launch.config = check_config(cfg)
        if job.requeues:
            log.info("requeued by SLURM (%d times): resuming %s", job.requeues, run_dir)
        parts = Parts(config)  # what can be built before the data are read, each part once
        images = parts.dataset.load()
        config = launch.config = config.with_data(parts.dataset.facts(), len(images.train_labels))
        launch.plan, previous = resume.plan(run_dir, config, config.run.resume or job.requeues > 0)
        if launch.plan == "skip":
            log.info("%s already completed; skipping (run.resume=true)", run_dir)
            launch.summary = previous
            return launch
        launch.trainer, facts = build_trainer(config, parts, images, run_dir, job)
        summary |= facts
        if launch.plan == "resume":
            resume.restore(launch.trainer, run_dir)
        launch.logger = GuardedLogger(build(config.cfg.logger, "logger") if "logger" in config.cfg else CsvLogger())
    except (Exception, KeyboardInterrupt) as err:
        if not existing and (job.multirun or not isinstance(err, UserError)):
            with contextlib.suppress(OutputError):
                files.write_record(run_dir, launch.config.cfg if launch.config else cfg, job.overrides, job.hydra)
            launch.record_stop(err)
        raise
    return launch


def _train(launch: Launch) -> tuple[dict[str, Any], Trainer]:
    """Train an accepted launch, recording every way it ends in summary.json."""
    run_dir, job, summary, config, trainer, logger = (
        launch.run_dir,
        launch.job,
        launch.summary,
        launch.config,
        launch.trainer,
        launch.logger,
    )
    recorder = EpochRecorder(run_dir, config.run.checkpoint, logger)
    trainer.record = recorder
    try:
        files.remove_temporary(run_dir)  # left by a process killed mid-write
        if launch.plan == "new":
            files.write_record(run_dir, config.cfg, job.overrides, job.hydra)
        files.write_summary(run_dir, summary)
        logger.start(run_dir, config.identity, trainer.start_epoch, job.sweep_dir)
        result = trainer.fit()
        if result.status in ("interrupted", "terminated"):
            recorder.settle()
        recorder.finish(trainer)
        title = f"{summary['model']} ({summary['params']:,} params)"
        summary |= {**record_result(trainer, result, title, config.run.plots), "wall_seconds": time.perf_counter() - launch.started}
        files.write_summary(run_dir, summary)
    except (Exception, KeyboardInterrupt) as err:
        launch.record_stop(err)
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
