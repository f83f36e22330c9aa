"""The ``mnistlab`` entry point: compose the config, instantiate, train, write the run files."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import platform
import random
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
import torchvision
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mnistlab import plots
from mnistlab.config import ConfigError, pick_device, train_settings, validate
from mnistlab.data import MEAN, PROJECT_ROOT, STD, DataError, DeviceData, load_mnist, prepare, steps_per_epoch
from mnistlab.engine import CHECKPOINT_FILE, CheckpointError, FitResult, Trainer, TrainSettings, check_identity, evaluate
from mnistlab.models import count_parameters, parameter_table

log = logging.getLogger("mnistlab")

SUMMARY_FILE = "summary.json"
EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 3, 130
BAD_INPUT = (ConfigError, DataError, CheckpointError, ValueError)

# ${uid:} makes run and sweep directories unique even when started in the same second.
OmegaConf.register_new_resolver("uid", lambda: secrets.token_hex(3), use_cache=True, replace=True)
OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_summary(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / SUMMARY_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _hydra_info() -> tuple[list[str], str | None, bool]:
    """Overrides, chosen model option, and whether this job is part of a multirun."""
    if not HydraConfig.initialized():
        return [], None, False
    hc = HydraConfig.get()
    return list(hc.overrides.task), hc.runtime.choices.get("model"), hc.mode == RunMode.MULTIRUN


def _threads_per_parallel_job() -> int | None:
    """With a launcher that runs jobs side by side on this machine (joblib), share the cores between them."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    n_jobs = HydraConfig.get().launcher.get("n_jobs")
    if not n_jobs or n_jobs == 1:
        return None
    cores = os.cpu_count() or 1
    return max(1, cores // n_jobs) if n_jobs > 0 else 1


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check and check() and torch.backends.mkldnn.is_available())
    except RuntimeError:
        return False


def accelerator_settings(settings: TrainSettings, device: torch.device, compiled: bool = False) -> TrainSettings:
    """Keep the speed options that pay off on ``device``; note and drop the others.

    ``cuda_graph=None`` (auto) means on for CUDA, unless the model is compiled: torch.compile and our own
    capture are combined only when asked for.
    """
    amp = settings.amp and (device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()))
    if settings.amp and not amp:
        log.info("trainer.amp (bf16 autocast) needs CUDA or a CPU with native bf16; ignored on %s", device)
    if amp and device.type == "cpu" and not settings.channels_last:
        log.info(
            "trainer.amp without trainer.channels_last made LeNet-5's CPU training step slower than fp32; add trainer.channels_last=true (see README, Performance)"
        )
    wanted = settings.cuda_graph if settings.cuda_graph is not None else not compiled
    cuda_graph = device.type == "cuda" and wanted
    if settings.cuda_graph and not cuda_graph:
        log.info("trainer.cuda_graph applies on CUDA only; ignored on %s", device)
    return dataclasses.replace(settings, amp=amp, cuda_graph=cuda_graph)


def _compile(cfg: DictConfig, model: torch.nn.Module, device: torch.device) -> None:
    """torch.compile pays off on CUDA only (on a CPU it made LeNet-5's step slower); elsewhere noted and ignored."""
    if cfg.trainer.compile:
        if device.type == "cuda":
            model.compile()  # in place: state_dict keys (and so checkpoints) stay the same
        else:
            log.info("trainer.compile applies on CUDA only; ignored on %s", device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def make_optimizer(cfg: DictConfig, model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """The configured optimizer; ``optimizer.fused: null`` picks the fused update where PyTorch has it (CPU, CUDA)."""
    factory = instantiate(cfg.optimizer)
    if "fused" in cfg.optimizer and cfg.optimizer.fused is None and device.type in ("cpu", "cuda"):
        return factory(params=model.parameters(), fused=True)
    return factory(params=model.parameters())


def _versions() -> dict[str, str]:
    import hydra as hydra_pkg

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "hydra": hydra_pkg.__version__,
    }


def objective(summary: dict[str, Any]) -> float:
    """What sweepers maximise: final validation accuracy if there is a validation split, else test accuracy."""
    value = summary.get("final_val_acc", summary.get("final_test_acc"))
    return float(value) if value is not None else math.nan


def _metrics_summary(result: FitResult, final_test: tuple[float, float]) -> dict[str, Any]:
    history = result.history
    if not history:
        return {"epochs_run": 0}
    last = history[-1]
    out: dict[str, Any] = {
        "epochs_run": int(last["epoch"]),
        "final_train_loss": last["train_loss"],
        "final_train_acc": last["train_acc"],
        "final_test_loss": final_test[0],
        "final_test_acc": final_test[1],
        "best_test_acc": max(r["test_acc"] for r in history),
        "best_test_loss": min(r["test_loss"] for r in history),
    }
    if "val_acc" in last and not math.isnan(last["val_acc"]):
        chosen = next((r for r in history if r["epoch"] == result.best_epoch), last)
        out |= {
            "final_val_loss": chosen["val_loss"],
            "final_val_acc": chosen["val_acc"],
            "best_val_acc": max(r["val_acc"] for r in history),
        }
    return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_trainer(cfg: DictConfig, run_dir: Path, summary: dict[str, Any], identity: dict[str, Any]) -> Trainer:
    """Validate the config, load the data, instantiate model, optimizer and scheduler; fills ``summary``."""
    validate(cfg)
    device = pick_device(str(cfg.trainer.device))
    settings = accelerator_settings(train_settings(cfg), device, compiled=bool(cfg.trainer.compile))
    threads = cfg.trainer.threads or _threads_per_parallel_job()
    if threads:
        torch.set_num_threads(int(threads))
    seed_everything(int(cfg.seed))
    data = prepare(load_mnist(cfg.data.root, download=bool(cfg.data.download)), device, int(cfg.data.val_size), int(cfg.seed))
    model = instantiate(cfg.model).to(device)
    summary |= {
        "model": summary["model"] or type(model).__name__,
        "params": count_parameters(model),
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    log.info("\n%s", parameter_table(model))
    _compile(cfg, model, device)
    optimizer = make_optimizer(cfg, model, device)
    per_epoch = steps_per_epoch(len(data.train), settings.batch_size)
    scheduler = instantiate(cfg.scheduler)(optimizer, total_steps=settings.epochs * per_epoch, steps_per_epoch=per_epoch)
    return Trainer(model, optimizer, scheduler, data, settings, run_dir, seed=int(cfg.seed), identity=identity)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one configuration into ``run_dir``; returns the summary (also written as summary.json)."""
    started = time.perf_counter()
    overrides, model_choice, multirun = _hydra_info()
    identity = {"model": OmegaConf.to_container(cfg.model, resolve=True)}
    previous = read_summary(run_dir)
    if cfg.trainer.resume and previous.get("status") == "completed":
        if (run_dir / CHECKPOINT_FILE).exists():
            check_identity(run_dir / CHECKPOINT_FILE, identity)
        log.info("%s already completed; skipping (trainer.resume=true)", run_dir)
        return previous
    summary: dict[str, Any] = {
        "status": "running",
        "model": model_choice,
        "seed": int(cfg.seed),
        "overrides": overrides,
        "versions": _versions(),
    }
    write_json(run_dir / SUMMARY_FILE, summary)
    try:
        trainer = build_trainer(cfg, run_dir, summary, identity)
        if cfg.trainer.resume and (trainer.checkpoint_path.exists() or not multirun):
            trainer.resume()  # a relaunched sweep starts the jobs that never wrote a checkpoint afresh
        else:
            trainer.metrics_path.unlink(missing_ok=True)
        write_json(run_dir / SUMMARY_FILE, summary)
        result = trainer.fit()
    except Exception as err:
        summary |= {"status": "failed", "error": f"{type(err).__name__}: {err}", "wall_seconds": time.perf_counter() - started}
        write_json(run_dir / SUMMARY_FILE, summary)
        raise
    data, settings = trainer.data, trainer.settings
    completed = result.status == "completed"
    if completed:  # the kept weights (the best val epoch with keep_best), evaluated once more with predictions
        final_loss, final_acc, preds = evaluate(trainer.model, data.test, settings.eval_batch_size, settings.channels_last)
    elif result.history:
        final_loss, final_acc, preds = result.history[-1]["test_loss"], result.history[-1]["test_acc"], None
    else:
        final_loss, final_acc, preds = math.nan, math.nan, None
    summary |= {
        "status": result.status,
        **_metrics_summary(result, (final_loss, final_acc)),
        "seconds": result.seconds,
        "warmup_seconds": result.warmup_seconds,
        "time_to_target": result.time_to_target,
        "selected_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "wall_seconds": time.perf_counter() - started,
    }
    write_json(run_dir / SUMMARY_FILE, summary)
    if cfg.trainer.plots and completed:
        _plot_run(summary, result, data, preds, run_dir)
    log.info(
        "%s: status=%s test_acc=%.2f%% test_loss=%.4f in %.1f s (%s)",
        summary["model"],
        result.status,
        final_acc,
        final_loss,
        result.seconds,
        run_dir,
    )
    return summary


def _plot_run(summary: dict[str, Any], result: FitResult, data: DeviceData, preds: torch.Tensor, run_dir: Path) -> None:
    import pandas as pd

    title = f"{summary['model']} ({summary['params']:,} params): test accuracy {summary['final_test_acc']:.2f}%"
    plots.run_curves(pd.DataFrame(result.history), run_dir / "curves.png", title)
    labels = data.test.labels.cpu().numpy()
    plots.confusion_matrix(labels, preds.numpy(), run_dir / "confusion.png")
    images = (data.test.images.cpu()[:, 0] * STD + MEAN).numpy()
    plots.mistakes(images, labels, preds.numpy(), run_dir / "mistakes.png")


@hydra.main(config_path=str(PROJECT_ROOT / "conf"), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Hydra task: returns the sweep objective; a failing single run exits non-zero."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    _, _, multirun = _hydra_info()
    try:
        summary = run(cfg, run_dir)
    except BAD_INPUT as err:
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
    return objective(summary) if summary["status"] == "completed" else math.nan


def cli() -> None:
    main()


if __name__ == "__main__":
    cli()
