"""The ``mnistlab`` entry point: compose the config, instantiate, train, write the run files."""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mnistlab import runfiles
from mnistlab.data import PROJECT_ROOT, load_mnist, pixels, prepare, steps_per_epoch
from mnistlab.device import fused_optimizer, pick_device, prepare_model, set_threads, speed_settings
from mnistlab.engine import FitResult, Trainer, check_identity, evaluate
from mnistlab.errors import UserError
from mnistlab.models import count_parameters, parameter_table
from mnistlab.settings import Settings, load_settings

log = logging.getLogger("mnistlab")

EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 3, 130

# ${uid:} makes run and sweep directories unique even when started in the same second.
OmegaConf.register_new_resolver("uid", lambda: secrets.token_hex(3), use_cache=True, replace=True)
OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)


@dataclasses.dataclass
class Job:
    """What Hydra knows about this run: its overrides, the chosen model option, and how it was launched."""

    overrides: list[str] = dataclasses.field(default_factory=list)
    model: str | None = None
    multirun: bool = False
    parallel_jobs: int | None = None  # jobs the launcher runs side by side on this machine (joblib's n_jobs)

    @classmethod
    def current(cls) -> Job:
        if not HydraConfig.initialized():
            return cls()
        hc = HydraConfig.get()
        multirun = hc.mode == RunMode.MULTIRUN
        return cls(list(hc.overrides.task), hc.runtime.choices.get("model"), multirun, hc.launcher.get("n_jobs") if multirun else None)


def _instantiate(node: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, letting our own bad-input errors through unwrapped."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, UserError):
            raise err.__cause__ from None
        raise


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def identity(cfg: DictConfig) -> dict[str, Any]:
    """What a checkpoint must match to be resumed by this config: the model's settings."""
    return {"model": OmegaConf.to_container(cfg.model, resolve=True)}


def make_optimizer(node: DictConfig, model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """The configured optimizer; ``optimizer.fused: null`` takes the fused update where PyTorch has it (CPU, CUDA)."""
    fused = {"fused": True} if node.get("fused", False) is None and fused_optimizer(device) else {}
    return _instantiate(node, **fused)(params=model.parameters())


def build_trainer(cfg: DictConfig, settings: Settings, run_dir: Path, job: Job, summary: dict[str, Any]) -> Trainer:
    """Load the data and instantiate model, optimizer and scheduler on the chosen device; fills ``summary``."""
    device = pick_device(settings.trainer.device)
    settings = dataclasses.replace(settings, trainer=speed_settings(settings.trainer, device))
    t = settings.trainer
    threads = set_threads(t.threads, job.parallel_jobs)
    seed_everything(settings.seed)
    data = prepare(load_mnist(settings.data.root, download=settings.data.download), device, settings.data.val_size, settings.seed)
    model = _instantiate(cfg.model)
    summary |= {"model": job.model or type(model).__name__, "params": count_parameters(model), "device": str(device), "threads": threads}
    log.info("\n%s", parameter_table(model))
    model = prepare_model(model, t, device)
    optimizer = make_optimizer(cfg.optimizer, model, device)
    per_epoch = steps_per_epoch(len(data.train), t.batch_size, t.limit_batches)
    scheduler = _instantiate(cfg.scheduler)(optimizer, total_steps=t.epochs * per_epoch, steps_per_epoch=per_epoch)
    return Trainer(model, optimizer, scheduler, data, settings, run_dir, identity=identity(cfg))


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one configuration into ``run_dir``; returns the summary (also written as summary.json)."""
    started = time.perf_counter()
    job = Job.current()
    previous = runfiles.read_summary(run_dir)
    if cfg.trainer.resume and previous.get("status") == "completed":
        if (run_dir / runfiles.CHECKPOINT_FILE).exists():
            check_identity(run_dir / runfiles.CHECKPOINT_FILE, identity(cfg))
        log.info("%s already completed; skipping (trainer.resume=true)", run_dir)
        return previous
    summary: dict[str, Any] = {
        "status": "running",
        "model": job.model,
        "seed": cfg.get("seed"),
        "overrides": job.overrides,
        "versions": runfiles.versions(),
    }
    runfiles.write_summary(run_dir, summary)
    try:
        settings = load_settings(cfg)
        trainer = build_trainer(cfg, settings, run_dir, job, summary)
        if settings.trainer.resume and (trainer.checkpoint_path.exists() or not job.multirun):
            trainer.resume()  # a relaunched sweep starts the jobs that never wrote a checkpoint afresh
        else:
            trainer.metrics_path.unlink(missing_ok=True)
        runfiles.write_summary(run_dir, summary)
        result = trainer.fit()
    except Exception as err:
        summary |= {"status": "failed", "error": f"{type(err).__name__}: {err}", "wall_seconds": time.perf_counter() - started}
        runfiles.write_summary(run_dir, summary)
        raise
    title = f"{summary['model']} ({summary['params']:,} params)"
    summary |= {**record_result(trainer, result, title), "wall_seconds": time.perf_counter() - started}
    runfiles.write_summary(run_dir, summary)
    log.info(
        "%s: status=%s test_acc=%.2f%% test_loss=%.4f in %.1f s (%s)",
        summary["model"],
        result.status,
        summary.get("final_test_acc", math.nan),
        summary.get("final_test_loss", math.nan),
        result.seconds,
        run_dir,
    )
    return summary


def record_result(trainer: Trainer, result: FitResult, title: str) -> dict[str, Any]:
    """The summary fields of a finished fit; a completed run's kept weights are evaluated once more and drawn under ``title``."""
    preds = None
    if result.status == "completed":  # the kept weights (the best val epoch with keep_best)
        final_loss, final_acc, preds = evaluate(
            trainer.model, trainer.data.test, trainer.settings.eval_batch_size, trainer.settings.channels_last
        )
    elif result.history:
        final_loss, final_acc = result.history[-1]["test_loss"], result.history[-1]["test_acc"]
    else:
        final_loss, final_acc = math.nan, math.nan
    fields = {
        "status": result.status,
        **runfiles.result_fields(result.history, final_loss, final_acc, result.best_epoch),
        "seconds": result.seconds,
        "warmup_seconds": result.warmup_seconds,
        "time_to_target": result.time_to_target,
        "selected_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
    }
    if trainer.settings.plots and preds is not None:
        from mnistlab import plots  # matplotlib and pandas load only when figures are drawn

        test = trainer.data.test
        plots.run_figures(
            trainer.run_dir,
            f"{title}: test accuracy {final_acc:.2f}%",
            result.history,
            pixels(test.images),
            test.labels.cpu().numpy(),
            preds.numpy(),
        )
    return fields


def objective(summary: dict[str, Any]) -> float:
    """What sweepers maximise: final validation accuracy if there is a validation split, else test accuracy."""
    value = summary.get("final_val_acc", summary.get("final_test_acc"))
    return float(value) if value is not None and summary.get("status") == "completed" else math.nan


@hydra.main(config_path=str(PROJECT_ROOT / "conf"), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Hydra task: returns the sweep objective; a failing single run exits non-zero."""
    multirun = Job.current().multirun
    try:
        summary = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except UserError as err:
        log.error("%s", err)
        if multirun:  # one bad job must not sink the sweep; the report lists it
            return math.nan
        sys.exit(EXIT_BAD_INPUT)
    except Exception:
        if multirun:
            log.exception("job failed")
            return math.nan
        raise
    if summary["status"] == "interrupted":
        sys.exit(EXIT_INTERRUPTED)
    if summary["status"] == "diverged" and not multirun:
        sys.exit(EXIT_DIVERGED)
    return objective(summary)


def cli() -> None:
    main()


if __name__ == "__main__":
    cli()
