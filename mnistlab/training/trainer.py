"""The training loop: epochs over on-device batches, evaluation, callbacks, and the state a checkpoint keeps."""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from mnistlab.config.schema import TrainerSettings
from mnistlab.data.batches import DeviceData, Split, epoch_batches, steps_per_epoch
from mnistlab.errors import ConfigError, stop_status
from mnistlab.training.callbacks.base import Callback, overrides
from mnistlab.training.clock import duration
from mnistlab.training.cuda_graph import GraphedStep, portable_state
from mnistlab.training.evaluation import Evaluation, evaluate
from mnistlab.training.metrics import Column, MetricEntry, objective, with_built_in
from mnistlab.training.rows import Diverged, FitResult, declared_columns
from mnistlab.training.schedules import step_epoch_scheduler
from mnistlab.training.techniques import Technique, hard_labels
from mnistlab.training.warm_up import warm_up

log = logging.getLogger(__name__)


class Trainer:
    """Fits one model on on-device data; every part a researcher changes comes in built: ``loss(logits, target)``,
    ``techniques`` (applied in order), ``callbacks`` (by name) and ``metrics`` (after loss and accuracy).

    What a callback may read (docs/extending.md): ``model``, ``optimizer``, ``scheduler``, ``loss``, ``data``
    (``.train``, ``.val``, ``.test`` splits on the device), ``settings`` (the ``trainer`` group), ``metrics``,
    ``device``, ``generator`` (the run's random stream), ``epoch`` (the one being trained, from 1), ``step``
    (optimizer steps taken, resumed ones included), ``steps_per_epoch``, ``history`` (finished epochs' rows),
    ``elapsed`` (training seconds so far), ``objective`` (the column the run is judged by) and ``run_dir``; and call
    ``stop(reason, status=None)``, ``columns()`` and ``evaluate(model, split)``.
    ``record``, if given, is called with the trainer after each epoch's row is appended to ``history``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        data: DeviceData,
        settings: TrainerSettings,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        seed: int = 0,
        scheduler_interval: str = "step",
        techniques: Sequence[Technique] = (),
        callbacks: dict[str, Callback] | None = None,
        metrics: list[MetricEntry] | None = None,
        record: Callable[[Trainer], None] | None = None,
        run_dir: Path | None = None,
    ):
        self.model, self.optimizer, self.scheduler, self.loss = model, optimizer, scheduler, loss
        self.scheduler_interval = scheduler_interval  # step the scheduler after every batch, or after every epoch
        self.data, self.settings, self.run_dir, self.record = data, settings, run_dir, record
        self.device = data.train.labels.device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.epoch, self.step, self.elapsed, self.history = 0, 0, 0.0, []
        self.start_epoch = 1
        self.steps_per_epoch = steps_per_epoch(len(data.train), settings.batch_size, settings.limit_batches, settings.min_steps_per_epoch)
        self.techniques = list(techniques)
        self.callbacks = dict(callbacks or {})
        self.metrics = metrics or with_built_in()
        self.stop_reason: str | None = None
        self.stopped_as: str | None = None
        self.stopped_by: str | None = None
        self._calling: str | None = None  # the callback whose hook runs now
        self.evaluations: dict[str, Evaluation] = {}  # the last epoch's evaluation of each split (its predictions too)
        self.objective = objective(("test", "val") if data.val is not None else ("test",))
        self.finished_with: dict[str, Any] | None = None  # the weights a callback gave to finish with: {"from", "epoch"}
        self._before_step = [(n, c) for n, c in self.callbacks.items() if overrides(c, "on_before_optimizer_step")]
        self._after_step = [(n, c) for n, c in self.callbacks.items() if overrides(c, "on_step_end")]
        graph = settings.cuda_graph and self.device.type == "cuda"
        if graph and self._before_step:  # a replayed graph would not call them: those steps run eagerly
            log.info("trainer.cuda_graph: off, a callback runs between backward and the optimizer's step")
            graph = False
        self.graphed = GraphedStep(self._update, optimizer) if graph else None

    def stop(self, reason: str, status: str | None = None) -> None:
        """End training after the current epoch is recorded (for callbacks); ``status`` replaces ``completed``
        in the summary when the run did not end as planned (``collapsed``, ``pruned``, yours)."""
        self.stop_reason, self.stopped_as, self.stopped_by = reason, status, self._calling

    def evaluate(self, model: nn.Module, split: Split) -> dict[str, float]:
        """Every metric of ``model`` (this one, or another such as an average of its weights) on ``split``."""
        return self.evaluation(model, split).values

    def evaluation(self, model: nn.Module, split: Split) -> Evaluation:
        """:meth:`evaluate`, with the predictions."""
        return evaluate(model, split.images, split.labels, self.metrics, self.settings.eval_batch_size, self.settings.channels_last)

    def columns(self) -> dict[str, Column]:
        """Every column a row may hold beyond its own (``ROW``): the metrics' on each split, then the callbacks'."""
        return declared_columns(self)

    # -- checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs after the last epoch in ``history``: the checkpoint's one dict."""
        state = {
            "epoch": self.history[-1]["epoch"] if self.history else 0,
            "step": self.step,
            "history": list(self.history),
            "model": self.model.state_dict(),
            "optimizer": portable_state(self.optimizer.state_dict()),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "generator": self.generator.get_state(),
            "elapsed": self.elapsed,
            "callbacks": {name: callback.state_dict() for name, callback in self.callbacks.items()},
            "finished_with": self.finished_with,  # the model's weights are those a callback gave (the run completed)
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue after the checkpoint's last epoch; raises KeyError, RuntimeError or ValueError when it does not fit."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for name, callback in self.callbacks.items():
            callback.load_state_dict(state["callbacks"][name])
        torch.set_rng_state(state["torch_rng"])
        self.generator.set_state(state["generator"].to(self.generator.get_state().device))
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.start_epoch = int(state["epoch"]) + 1
        self.step = int(state.get("step", state["epoch"] * self.steps_per_epoch))
        self.elapsed = float(state["elapsed"])
        self.history = [dict(row) for row in state["history"]]

    # -- one step

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
        """Forward, backward, the callbacks between backward and step, and the optimizer's update; returns the loss
        and the number correct (device tensors)."""
        loss, logits = self._forward(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for name, callback in self._before_step:
            self._calling = name
            callback.on_before_optimizer_step(self)
        self.optimizer.step()
        return loss.detach(), (logits.argmax(1) == hard_labels(y)).sum()

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch techniques, forward, backward, update on one batch; returns the (detached) loss and the number correct."""
        loss, hits = (self.graphed or self._update)(*self._inputs(x, y, self.generator))
        self.step += 1
        if self.scheduler_interval == "step":
            self.scheduler.step()
        for name, callback in self._after_step:
            self._calling = name
            callback.on_step_end(self)
        return loss, hits

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """``steps_per_epoch`` steps over the shuffled training split (one pass, or several for a small split); returns
        the mean loss and accuracy (%)."""
        s = self.settings
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen, steps = 0, self.steps_per_epoch
        bar = tqdm(
            total=steps, desc=f"epoch {epoch}/{s.epochs}", leave=False, disable=not (s.progress and sys.stderr.isatty()), file=sys.stderr
        )
        for step, (x, y) in enumerate(epoch_batches(self.data.train, s.batch_size, self.generator, steps)):
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

    def _epoch_end(self, row: dict[str, Any]) -> None:
        """Each callback's ``on_epoch_end``; one that changes a value already in the row is an error."""
        for name, callback in self.callbacks.items():
            before = dict(row)
            self._calling = name
            callback.on_epoch_end(self, row)
            self._calling = None
            changed = [key for key, value in before.items() if row.get(key) is not value]
            if changed:
                raise ValueError(f"callback {name} changed {', '.join(changed)} in the epoch's row; a callback may only add columns")

    def _finish_with(self) -> dict[str, Any] | None:
        """After a completed fit: the weights a callback gives to finish with, loaded into the model (at most one may)."""
        given = {name: w for name, callback in self.callbacks.items() if (w := callback.final_weights(self)) is not None}
        if len(given) > 1:
            raise ConfigError(f"callbacks {', '.join(given)} each give the weights to finish with; keep one of them")
        if not given:
            return None
        ((name, weights),) = given.items()
        self.model.load_state_dict(weights.state)
        self.evaluations = {}  # the last epoch's evaluations were of other weights
        self.finished_with = {"from": name, "epoch": int(weights.epoch)}
        return self.finished_with

    def fit(self) -> FitResult:
        s = self.settings
        status = "completed"
        warmup = self.warm_up() if self.start_epoch <= s.epochs else 0.0
        try:
            for name, callback in self.callbacks.items():
                self._calling = name
                callback.on_fit_start(self)
            self._calling = None
            for epoch in range(self.start_epoch, s.epochs + 1):
                self.epoch = epoch
                started = time.perf_counter()
                lr = float(self.optimizer.param_groups[0]["lr"])
                try:
                    train_loss, train_acc = self.train_epoch(epoch)
                except Diverged as err:
                    log.error("diverged: %s", err)
                    status = "diverged"
                    break
                row: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc}
                self.evaluations = {"test": self.evaluation(self.model, self.data.test)}
                if self.data.val is not None:
                    self.evaluations["val"] = self.evaluation(self.model, self.data.val)
                for split, evaluation in self.evaluations.items():
                    row |= {f"{split}_{name}": value for name, value in evaluation.values.items()}
                seconds = time.perf_counter() - started
                self.elapsed += seconds
                row |= {"lr": lr, "seconds": seconds}
                self._epoch_end(row)
                if self.scheduler_interval == "epoch":
                    step_epoch_scheduler(self.scheduler, row)
                self.history.append(row)
                if self.record is not None:
                    self.record(self)
                line = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
                left = self.elapsed / epoch * (s.epochs - epoch)  # the mean epoch so far, resumed ones included
                log.info("%s · epoch %d/%d%s", line, epoch, s.epochs, f", about {duration(left)} left" if epoch < s.epochs else "")
                if self.stop_reason is not None:
                    status = self.stopped_as or status
                    break
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (Terminated)
            status = stop_status(stop)
            log.warning("%s; the last finished epoch is kept in %s", status, self.run_dir or "the checkpoint")
        for callback in self.callbacks.values():
            callback.on_fit_end(self, status)
        weights = self._finish_with() if status == "completed" else None
        fields: dict[str, Any] = {}
        for callback in self.callbacks.values():
            fields |= callback.summary()
        stop = {"by": self.stopped_by or "", "reason": self.stop_reason} if self.stop_reason is not None else None
        return FitResult(status, self.history, self.elapsed, warmup, fields, weights, stop)

    def warm_up(self, force: bool = False) -> float:
        """On CUDA (or when forced), run each batch shape once before the clock starts (:func:`.warm_up.warm_up`)."""
        return warm_up(self, force)
