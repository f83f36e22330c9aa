"""What a run keeps of each epoch as it ends: checkpoint.pt first, then metrics.csv, then the logger's copy.

In that order metrics.csv never shows an epoch the checkpoint does not hold: a process killed between the two
leaves one epoch more in the checkpoint, which a resume writes back into metrics.csv.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mnistlab.runs.files import CHECKPOINT_FILE, METRICS_FILE, save_checkpoint, write_metrics
from mnistlab.training.trainer import Trainer


class EpochRecorder:
    """Called by the trainer after each epoch (its ``record``); ``checkpoint``: whether checkpoint.pt is written."""

    def __init__(self, run_dir: Path, checkpoint: bool, logger: Any):
        self.run_dir, self.checkpoint, self.logger = Path(run_dir), checkpoint, logger
        self.kept: list[dict[str, Any]] = []  # the rows the run's files hold

    def __call__(self, trainer: Trainer) -> None:
        rows = list(trainer.history)
        if self.checkpoint:
            save_checkpoint(self.run_dir / CHECKPOINT_FILE, trainer.state_dict())
        self.kept = rows
        write_metrics(self.run_dir / METRICS_FILE, rows)
        self.logger.log_epoch(rows[-1])

    def finish(self, trainer: Trainer) -> None:
        """After a completed fit whose weights a callback replaced: the checkpoint holds the weights the run reports."""
        if self.checkpoint and trainer.finished_with is not None:
            save_checkpoint(self.run_dir / CHECKPOINT_FILE, trainer.state_dict())

    def settle(self) -> None:
        """After a stop (Ctrl-C, SIGTERM) that may have come between a checkpoint and its metrics row: metrics.csv as
        the checkpoint holds it."""
        if self.kept:
            write_metrics(self.run_dir / METRICS_FILE, self.kept)
