"""What a launch may do in a run directory that already holds a run, and resuming it: the one resume check.

A directory that holds trained epochs is only ever resumed, with ``run.resume=true`` and the very settings it
was trained with (its recorded config's identity); anything else is refused, naming each differing key, before
anything in the directory changes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mnistlab.config.identity import differences, identity
from mnistlab.config.run_config import RunConfig
from mnistlab.errors import CheckpointError, RunDirError
from mnistlab.runs import files
from mnistlab.training.trainer import Trainer

log = logging.getLogger("mnistlab")


def plan(run_dir: Path, config: RunConfig, resume: bool) -> tuple[str, dict[str, Any]]:
    """``new``, ``resume`` or ``skip`` (completed), with the previous summary."""
    if not files.has_records(run_dir):
        if resume:
            log.warning("nothing to resume in %s; starting from epoch 1", run_dir)
        return "new", {}
    try:
        previous = files.read_summary(run_dir)
    except ValueError:
        previous = {}
    status = previous.get("status", "no summary")
    if not ((run_dir / files.CHECKPOINT_FILE).exists() or (run_dir / files.METRICS_FILE).exists()):
        log.info("%s holds a launch that trained nothing (%s); starting afresh", run_dir, status)
        return "new", previous
    if not resume:
        raise RunDirError(
            f"{run_dir} already holds a run ({status}, {previous.get('epochs_run', 'some')} epochs); add run.resume=true to continue it "
            "with the same settings, or launch into a new directory (hydra.run.dir, hydra.sweep.dir)"
        )
    try:
        recorded = files.read_config(run_dir)
        changed = differences(identity(recorded), config.identity) if recorded is not None else []
    except Exception as err:
        raise RunDirError(
            f"{run_dir / files.CONFIG_FILE} cannot be read ({type(err).__name__}: {err}); launch into a new directory"
        ) from err
    if changed:
        raise RunDirError(
            f"cannot resume {run_dir}: it was trained with other settings ({'; '.join(changed)}); "
            "resume with the run's own settings, or launch into a new directory"
        )
    return ("skip" if status == "completed" else "resume"), previous


def restore(trainer: Trainer, run_dir: Path) -> None:
    """Load ``run_dir``'s checkpoint into ``trainer`` (its epochs become metrics.csv again: rows a crash left beyond
    the checkpoint go)."""
    path = run_dir / files.CHECKPOINT_FILE
    state = files.load_checkpoint(path)
    try:
        trainer.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(f"{path} does not fit this model/optimizer/callbacks: {err}") from err
    files.write_metrics(run_dir / files.METRICS_FILE, trainer.history)
    log.info("resumed from %s after epoch %d", path, state["epoch"])
