"""A study's trial reports each epoch to the study and stops when the pruner says so: a callback like any other.

A study's worker adds it to each trial's config (``callback.study_pruning``) and trains the trial in its own
process while :func:`reporting_to` holds that trial; outside a study's worker the callback does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mnistlab.training.callbacks import Callback

if TYPE_CHECKING:
    import optuna

    from mnistlab.training.trainer import Trainer

log = logging.getLogger("mnistlab")
TARGET = "mnistlab.studies.pruning.StudyPruning"
_trial: optuna.Trial | None = None  # the trial this process trains now (a worker trains one at a time)


@contextlib.contextmanager
def reporting_to(trial: optuna.Trial) -> Iterator[None]:
    """While the block runs, :class:`StudyPruning` in this process reports to ``trial``."""
    global _trial
    _trial = trial
    try:
        yield
    finally:
        _trial = None


class StudyPruning(Callback):
    """Reports each epoch's objective (``trainer.objective``: validation accuracy, else test) to the trial; stops a trial the pruner
    gives up on, with the status ``pruned``."""

    def __init__(self) -> None:
        self.trial: optuna.Trial | None = None
        self.pruned_at: int | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self.trial = _trial
        if self.trial is None:
            log.info("callback.study_pruning: no study's trial in this process; nothing is reported")

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        value = row[trainer.objective]
        if self.trial is None or value is None or math.isnan(value):
            return
        self.trial.report(float(value), int(row["epoch"]))
        if self.trial.should_prune():
            self.pruned_at = int(row["epoch"])
            log.info("trial %d pruned after epoch %d (%.2f%%)", self.trial.number, self.pruned_at, value)
            trainer.stop("pruned by the study's pruner", status="pruned")

    def summary(self) -> dict[str, Any]:
        return {"pruned_at_epoch": self.pruned_at}
