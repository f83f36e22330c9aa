"""A GPU's one-off start-up, paid before the clock starts: each batch shape run once, nothing of the run changed."""

from __future__ import annotations

import copy
import logging
import time
from typing import TYPE_CHECKING

import torch

from mnistlab.data.batches import Split

if TYPE_CHECKING:
    from mnistlab.training.trainer import Trainer

log = logging.getLogger(__name__)


def warm_up(trainer: Trainer, force: bool = False) -> float:
    """On CUDA (or when forced), run each batch shape once before the clock starts; returns the seconds it took.

    Library handles, kernel loading and cuDNN autotuning are one-off costs of the process, not of
    training: paid here, they stay out of epoch times. Weights, buffers, gradients and random
    streams are left exactly as they were.
    """
    device = trainer.device
    cuda = device.type == "cuda"
    if not (cuda or force):
        return 0.0
    started, s = time.perf_counter(), trainer.settings
    saved = copy.deepcopy(trainer.model.state_dict())
    train, test = trainer.data.train, trainer.data.test
    generator = torch.Generator(device=device).manual_seed(0)  # not the run's: its stream stays untouched
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    with torch.random.fork_rng(devices=devices):
        for size in sorted({min(s.batch_size, len(train)), len(train) % s.batch_size} - {0}):
            loss, _ = trainer._forward(*trainer._inputs(train.images[:size], train.labels[:size], generator))
            loss.backward()
        trainer.optimizer.zero_grad(set_to_none=True)
        for size in sorted({min(s.eval_batch_size, len(test)), len(test) % s.eval_batch_size} - {0}):
            trainer.evaluate(trainer.model, Split(test.images[:size], test.labels[:size]))
    trainer.model.load_state_dict(saved)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    log.info("warm-up (library handles, kernel loading, cuDNN autotuning): %.2f s, not counted as training time", seconds)
    return seconds
