"""Training loop: epochs over on-device batches, evaluation, metrics.csv, checkpoints and resume."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from mnistlab.augment import augment_batch
from mnistlab.data import DeviceData, Split, ordered_batches, shuffled_batches, steps_per_epoch
from mnistlab.errors import CheckpointError, stop_status
from mnistlab.graphs import GraphedStep, portable_state
from mnistlab.runfiles import CHECKPOINT_FILE, METRICS_FILE, load_checkpoint, save_checkpoint, write_metrics
from mnistlab.schedules import step_epoch_scheduler
from mnistlab.settings import Settings, differences

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    status: str  # completed | diverged | interrupted | terminated
    history: list[dict[str, float]]
    seconds: float  # training wall time, resumed parts included
    warmup_seconds: float = 0.0  # one-off GPU start-up before the clock (see Trainer.warm_up)
    best_epoch: int | None = None  # epoch whose weights were kept (keep_best), else None
    time_to_target: float | None = None
    stopped_early: bool = False


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


# ---------------------------------------------------------------- evaluation


@torch.inference_mode()
def evaluate(model: nn.Module, split: Split, batch_size: int = 2000, channels_last: bool = False) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy, accuracy in percent, and the predicted labels on a split."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=split.labels.device)
    preds = []
    for x, y in ordered_batches(split, batch_size):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        preds.append(logits.argmax(1))
    model.train(was_training)
    pred = torch.cat(preds)
    n = len(split)
    return loss_sum.item() / n, 100.0 * (pred == split.labels).sum().item() / n, pred.cpu()


# ---------------------------------------------------------------- training


def check_identity(path: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """Load a checkpoint and make sure it was trained with the settings in ``identity`` (see ``settings.identity``)."""
    state = load_checkpoint(path)
    if not isinstance(state.get("settings"), dict):
        raise CheckpointError(
            f"{path} does not record the settings it was trained with (an older mnistlab wrote it); it cannot be resumed safely"
        )
    changed = differences(state["settings"], identity)
    if changed:
        raise CheckpointError(
            f"{path} was trained with other settings ({'; '.join(changed)}); resume with the run's own settings, or launch into a new run directory"
        )
    return state


def fit_state_to_parameters(optimizer: torch.optim.Optimizer) -> None:
    """Give per-parameter optimizer state (momentum, moments) its parameter's shape where only the shape differs:
    a checkpoint written when a layer had another shape for the same weights (LeNet-5's C5 as a convolution)."""
    for param, state in optimizer.state.items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor) and value.shape != param.shape and value.numel() == param.numel():
                state[name] = value.reshape(param.shape)


class Trainer:
    """Fits one model on on-device MNIST, writing metrics.csv and checkpoint.pt into ``run_dir``."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        data: DeviceData,
        settings: Settings,
        run_dir: Path,
        identity: dict[str, Any] | None = None,
        scheduler_interval: str = "step",
    ):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.scheduler_interval = scheduler_interval  # step the scheduler after every batch, or after every epoch
        self.on_epoch: Callable[[dict[str, Any]], None] | None = None  # gets each finished epoch's metrics row (a logger)
        self.data, self.run_dir = data, Path(run_dir)
        self.settings, self.reg = settings.trainer, settings.regularization
        self.device = data.train.labels.device
        self.generator = torch.Generator(device=self.device).manual_seed(settings.seed)
        self.identity = identity or {}  # the settings a checkpoint must match to be resumed (settings.identity)
        self.start_epoch, self.elapsed, self.history = 1, 0.0, []
        self.best_val, self.best_epoch, self.best_state, self.bad_epochs = -math.inf, None, None, 0
        self.steps_per_epoch = steps_per_epoch(len(data.train), self.settings.batch_size, self.settings.limit_batches)
        self.graphed = GraphedStep(self._update, optimizer) if self.settings.cuda_graph and self.device.type == "cuda" else None

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_FILE

    # -- checkpoints

    def state(self, epoch: int, history: list[dict[str, Any]]) -> dict[str, Any]:
        """Everything a resume needs after ``epoch``, ``history`` being its metrics rows."""
        state = {
            "epoch": epoch,
            "settings": self.identity,
            "history": history,
            "model": self.model.state_dict(),
            "optimizer": portable_state(self.optimizer.state_dict()),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "generator": self.generator.get_state(),
            "elapsed": self.elapsed,
            "best_val": self.best_val,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_state": self.best_state,
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def resume(self) -> None:
        """Continue from the last finished epoch of ``run_dir``."""
        state = check_identity(self.checkpoint_path, self.identity)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            fit_state_to_parameters(self.optimizer)
            self.scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"{self.checkpoint_path} does not fit this model/optimizer: {err}") from err
        torch.set_rng_state(state["torch_rng"])
        self.generator.set_state(state["generator"].to(self.generator.get_state().device))
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.start_epoch = int(state["epoch"]) + 1
        self.elapsed = float(state["elapsed"])
        self.best_val, self.best_epoch = float(state["best_val"]), state["best_epoch"]
        self.bad_epochs, self.best_state = int(state["bad_epochs"]), state["best_state"]
        self.history = [dict(row) for row in state["history"]]
        write_metrics(self.metrics_path, self.history)  # the checkpoint's epochs: rows a crash left beyond it go
        log.info("resumed from %s after epoch %d", self.checkpoint_path, state["epoch"])

    # -- one epoch

    def _autocast(self):
        if self.settings.amp:  # no weight cache: a CUDA graph capture forbids it, and each weight is cast once per step anyway
            return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    def _inputs(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A training batch as the model sees it: augmented, in the configured memory format."""
        x = augment_batch(x, self.reg.augment, generator, self.data.spec.background)
        return x.contiguous(memory_format=torch.channels_last) if self.settings.channels_last else x

    def _forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss and the logits of one batch."""
        with self._autocast():
            logits = self.model(x)
        return F.cross_entropy(logits.float(), y, label_smoothing=self.reg.label_smoothing), logits

    def _update(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, backward and optimizer update; returns the loss and the number correct (device tensors)."""
        loss, logits = self._forward(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), (logits.argmax(1) == y).sum()

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment, forward, backward, update on one batch; returns the (detached) loss and the number correct."""
        loss, hits = (self.graphed or self._update)(self._inputs(x, self.generator), y)
        if self.scheduler_interval == "step":
            self.scheduler.step()
        return loss, hits

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the shuffled training split (or its first ``limit_batches``); returns mean loss and accuracy (%)."""
        s = self.settings
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen, steps = 0, self.steps_per_epoch
        bar = tqdm(
            total=steps, desc=f"epoch {epoch}/{s.epochs}", leave=False, disable=not (s.progress and sys.stderr.isatty()), file=sys.stderr
        )
        batches = shuffled_batches(self.data.train, s.batch_size, self.generator)
        for step, (x, y) in zip(range(steps), batches, strict=False):
            loss, hits = self.train_step(x, y)
            loss_sum += loss * len(y)
            correct += hits
            seen += len(y)
            if step % 50 == 0 or step == steps - 1:
                running = loss_sum.item()
                if not math.isfinite(running):
                    bar.close()
                    raise Diverged(f"training loss became {running} in epoch {epoch}, step {step}; lower optimizer.lr")
                bar.set_postfix(loss=f"{running / seen:.4f}", refresh=False)
            bar.update()
        bar.close()
        return loss_sum.item() / seen, 100.0 * correct.item() / seen

    # -- the loop

    def fit(self) -> FitResult:
        s, reg = self.settings, self.reg
        status, time_to_target, stopped_early = "completed", None, False
        warmup = self.warm_up() if self.start_epoch <= s.epochs else 0.0
        try:
            for epoch in range(self.start_epoch, s.epochs + 1):
                started = time.perf_counter()
                lr = float(self.optimizer.param_groups[0]["lr"])
                try:
                    train_loss, train_acc = self.train_epoch(epoch)
                except Diverged as err:
                    log.error("diverged: %s", err)
                    status = "diverged"
                    break
                row: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc}
                test_loss, test_acc, _ = evaluate(self.model, self.data.test, s.eval_batch_size, s.channels_last)
                row |= {"test_loss": test_loss, "test_acc": test_acc}
                if self.data.val is not None:
                    val_loss, val_acc, _ = evaluate(self.model, self.data.val, s.eval_batch_size, s.channels_last)
                    row |= {"val_loss": val_loss, "val_acc": val_acc}
                    self._track_best(epoch, val_acc)
                seconds = time.perf_counter() - started
                self.elapsed += seconds
                row |= {"lr": lr, "seconds": seconds}
                if self.scheduler_interval == "epoch":
                    step_epoch_scheduler(self.scheduler, row)
                if s.checkpoint:  # first: metrics.csv never shows an epoch the checkpoint does not hold
                    save_checkpoint(self.checkpoint_path, self.state(epoch, [*self.history, row]))
                self.history.append(row)
                write_metrics(self.metrics_path, self.history)
                if self.on_epoch is not None:
                    self.on_epoch(row)
                log.info(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
                if s.target_acc is not None and test_acc >= s.target_acc:
                    time_to_target = self.elapsed
                    log.info("reached test accuracy %.2f%% >= %.2f%% after %.2f s", test_acc, s.target_acc, self.elapsed)
                    break
                if reg.early_stopping_patience and self.bad_epochs >= reg.early_stopping_patience:
                    log.info("early stopping: no val improvement for %d epochs", self.bad_epochs)
                    stopped_early = True
                    break
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (Terminated)
            status = stop_status(stop)
            log.warning("%s; the last finished epoch is kept in %s", status, self.run_dir)
            if self.history:  # the stop may have come between the checkpoint and its metrics row
                write_metrics(self.metrics_path, self.history)
        if reg.keep_best and self.best_state is not None and status == "completed":
            self.model.load_state_dict(self.best_state)
            log.info("restored the weights of epoch %s (best val accuracy %.2f%%)", self.best_epoch, self.best_val)
        return FitResult(
            status, self.history, self.elapsed, warmup, self.best_epoch if reg.keep_best else None, time_to_target, stopped_early
        )

    def warm_up(self, force: bool = False) -> float:
        """On CUDA (or when forced), run each batch shape once before the clock starts; returns the seconds it took.

        Library handles, kernel loading and cuDNN autotuning are one-off costs of the process, not of
        training: paid here, they stay out of epoch times. Weights, buffers, gradients and random
        streams are left exactly as they were.
        """
        cuda = self.device.type == "cuda"
        if not (cuda or force):
            return 0.0
        started, s = time.perf_counter(), self.settings
        saved = copy.deepcopy(self.model.state_dict())
        train, test = self.data.train, self.data.test
        generator = torch.Generator(device=self.device).manual_seed(0)  # not the run's: its stream stays untouched
        devices = [self.device.index if self.device.index is not None else torch.cuda.current_device()] if cuda else []
        with torch.random.fork_rng(devices=devices):
            for size in sorted({min(s.batch_size, len(train)), len(train) % s.batch_size} - {0}):
                loss, _ = self._forward(self._inputs(train.images[:size], generator), train.labels[:size])
                loss.backward()
            self.optimizer.zero_grad(set_to_none=True)
            for size in sorted({min(s.eval_batch_size, len(test)), len(test) % s.eval_batch_size} - {0}):
                evaluate(self.model, Split(test.images[:size], test.labels[:size]), s.eval_batch_size, s.channels_last)
        self.model.load_state_dict(saved)
        if cuda:
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - started
        log.info("warm-up (library handles, kernel loading, cuDNN autotuning): %.2f s, not counted as training time", seconds)
        return seconds

    def _track_best(self, epoch: int, val_acc: float) -> None:
        if val_acc > self.best_val:
            self.best_val, self.best_epoch, self.bad_epochs = val_acc, epoch, 0
            if self.reg.keep_best:
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.bad_epochs += 1
