"""Training loop: epochs over on-device batches, evaluation, metrics.csv, checkpoints and resume."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from mnistlab.callbacks import Callback, built_in
from mnistlab.data import DeviceData, Split, shuffled_batches, steps_per_epoch
from mnistlab.errors import CheckpointError, stop_status
from mnistlab.graphs import GraphedStep, portable_state
from mnistlab.metrics import Evaluation, Metric, with_built_in
from mnistlab.metrics import evaluate as evaluate_metrics
from mnistlab.runfiles import CHECKPOINT_FILE, METRICS_FILE, load_checkpoint, save_checkpoint, write_metrics
from mnistlab.schedules import step_epoch_scheduler
from mnistlab.settings import Settings, differences
from mnistlab.techniques import RandomWarp, Technique, hard_labels

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    status: str  # completed | diverged | interrupted | terminated | pruned
    history: list[dict[str, float]]
    seconds: float  # training wall time, resumed parts included
    warmup_seconds: float = 0.0  # one-off GPU start-up before the clock (see Trainer.warm_up)
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)  # the callbacks' summary fields (selected_epoch, ...)


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


# ---------------------------------------------------------------- evaluation


def evaluate(
    model: nn.Module, split: Split, metrics: list[Metric] | None = None, batch_size: int = 2000, channels_last: bool = False
) -> Evaluation:
    """Every metric (loss and accuracy by default) of ``model`` on a split: the loop training and ``mnistlab-eval`` share."""
    return evaluate_metrics(model, split.images, split.labels, metrics or with_built_in([]), batch_size, channels_last)


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
    """Fits one model on on-device data, writing metrics.csv and checkpoint.pt into ``run_dir``.

    The parts a researcher changes come in from the config: ``loss`` (a callable ``loss(logits, target)``),
    ``techniques`` (mnistlab.techniques, after our random warp), ``callbacks`` (mnistlab.callbacks, after ours,
    by name) and ``metrics`` (mnistlab.metrics, after loss and accuracy).
    """

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
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        techniques: list[Technique] | None = None,
        callbacks: dict[str, Callback] | None = None,
        metrics: list[Metric] | None = None,
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
        self.steps_per_epoch = steps_per_epoch(len(data.train), self.settings.batch_size, self.settings.limit_batches)
        self.loss = loss or nn.CrossEntropyLoss(label_smoothing=self.reg.label_smoothing)
        warp = [RandomWarp(self.reg.augment, data.background)] if self.reg.augment.enabled else []
        self.techniques = warp + list(techniques or [])
        ours = built_in(self.settings.target_acc, self.reg.early_stopping_patience, self.reg.keep_best)
        clash = ours.keys() & (callbacks or {}).keys()
        if clash:
            raise ValueError(f"callback names taken by mnistlab's own: {sorted(clash)}")
        self.callbacks = ours | dict(callbacks or {})
        self.metrics = metrics or with_built_in([])
        self.stop_reason: str | None = None
        self.stopped_as: str | None = None
        self.graphed = GraphedStep(self._update, optimizer) if self.settings.cuda_graph and self.device.type == "cuda" else None

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_FILE

    def stop(self, reason: str, status: str | None = None) -> None:
        """End training after the current epoch is recorded (for callbacks); ``status`` replaces ``completed``
        in the summary when the run did not end as planned (``pruned``)."""
        self.stop_reason, self.stopped_as = reason, status

    def evaluate(self, model: nn.Module, split: Split) -> dict[str, float]:
        """Every metric of ``model`` (this one, or another such as an average of its weights) on ``split``."""
        return evaluate(model, split, self.metrics, self.settings.eval_batch_size, self.settings.channels_last).values

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
            "callbacks": {name: callback.state_dict() for name, callback in self.callbacks.items()},
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
            for name, callback in self.callbacks.items():
                callback.load_state_dict(state["callbacks"][name])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"{self.checkpoint_path} does not fit this model/optimizer/callbacks: {err}") from err
        torch.set_rng_state(state["torch_rng"])
        self.generator.set_state(state["generator"].to(self.generator.get_state().device))
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.start_epoch = int(state["epoch"]) + 1
        self.elapsed = float(state["elapsed"])
        self.history = [dict(row) for row in state["history"]]
        write_metrics(self.metrics_path, self.history)  # the checkpoint's epochs: rows a crash left beyond it go
        log.info("resumed from %s after epoch %d", self.checkpoint_path, state["epoch"])

    # -- one epoch

    def _autocast(self):
        if self.settings.amp:  # no weight cache: a CUDA graph capture forbids it, and each weight is cast once per step anyway
            return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    def _inputs(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch as the model sees it: through every batch technique, in the configured memory format."""
        for technique in self.techniques:
            x, y = technique(x, y, generator)
        return (x.contiguous(memory_format=torch.channels_last) if self.settings.channels_last else x), y

    def _forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss and the logits of one batch (``y``: class indices or class probabilities)."""
        with self._autocast():
            logits = self.model(x)
        return self.loss(logits.float(), y), logits

    def _update(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, backward and optimizer update; returns the loss and the number correct (device tensors)."""
        loss, logits = self._forward(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), (logits.argmax(1) == hard_labels(y)).sum()

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch techniques, forward, backward, update on one batch; returns the (detached) loss and the number correct."""
        loss, hits = (self.graphed or self._update)(*self._inputs(x, y, self.generator))
        if self.scheduler_interval == "step":
            self.scheduler.step()
        for callback in self.callbacks.values():
            callback.on_step_end(self)
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
        s = self.settings
        status = "completed"
        warmup = self.warm_up() if self.start_epoch <= s.epochs else 0.0
        try:
            for callback in self.callbacks.values():
                callback.on_fit_start(self)
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
                row |= {f"test_{name}": value for name, value in self.evaluate(self.model, self.data.test).items()}
                if self.data.val is not None:
                    row |= {f"val_{name}": value for name, value in self.evaluate(self.model, self.data.val).items()}
                seconds = time.perf_counter() - started
                self.elapsed += seconds
                row |= {"lr": lr, "seconds": seconds}
                for callback in self.callbacks.values():
                    callback.on_epoch_end(self, row)
                if self.scheduler_interval == "epoch":
                    step_epoch_scheduler(self.scheduler, row)
                if s.checkpoint:  # first: metrics.csv never shows an epoch the checkpoint does not hold
                    save_checkpoint(self.checkpoint_path, self.state(epoch, [*self.history, row]))
                self.history.append(row)
                write_metrics(self.metrics_path, self.history)
                if self.on_epoch is not None:
                    self.on_epoch(row)
                log.info(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
                if self.stop_reason is not None:
                    status = self.stopped_as or status
                    break
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (Terminated)
            status = stop_status(stop)
            log.warning("%s; the last finished epoch is kept in %s", status, self.run_dir)
            if self.history:  # the stop may have come between the checkpoint and its metrics row
                write_metrics(self.metrics_path, self.history)
        for callback in self.callbacks.values():
            callback.on_fit_end(self, status)
        fields: dict[str, Any] = {}
        for callback in self.callbacks.values():
            fields |= callback.summary()
        return FitResult(status, self.history, self.elapsed, warmup, fields)

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
                loss, _ = self._forward(*self._inputs(train.images[:size], train.labels[:size], generator))
                loss.backward()
            self.optimizer.zero_grad(set_to_none=True)
            for size in sorted({min(s.eval_batch_size, len(test)), len(test) % s.eval_batch_size} - {0}):
                self.evaluate(self.model, Split(test.images[:size], test.labels[:size]))
        self.model.load_state_dict(saved)
        if cuda:
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - started
        log.info("warm-up (library handles, kernel loading, cuDNN autotuning): %.2f s, not counted as training time", seconds)
        return seconds
