"""This launch: what Hydra and SLURM say about it (:class:`Job`), its run directory, and SIGTERM as a stop."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mnistlab.errors import OutputError, Terminated

SHARED_BY_ENV = "MNISTLAB_JOBS_HERE"  # how many jobs share this machine's cores, where a launcher says so (a study's workers)


@dataclasses.dataclass
class Job:
    """What Hydra knows about this run: its overrides, the chosen model option, and how it was launched."""

    overrides: list[str] = dataclasses.field(default_factory=list)
    model: str | None = None
    multirun: bool = False
    parallel_jobs: int | None = None  # jobs the launcher runs side by side on this machine (joblib's n_jobs)
    num: int | None = None  # the job's number in its sweep
    hydra: DictConfig | None = None  # Hydra's own config, recorded as .hydra/hydra.yaml
    cpus_per_task: int | None = None  # the launcher's CPUs per job (submitit)
    requeues: int = dataclasses.field(default_factory=lambda: int(os.environ.get("SLURM_RESTART_COUNT") or 0))  # by SLURM
    study: str | None = None  # the Optuna study this job is a trial of (its number is ``num``)
    sweep_dir: Path | None = None  # the sweep this job belongs to

    @classmethod
    def current(cls) -> Job:
        if not HydraConfig.initialized():
            return cls()
        hc = HydraConfig.get()
        multirun = hc.mode == RunMode.MULTIRUN
        shared = os.environ.get(SHARED_BY_ENV, "")
        return cls(
            list(hc.overrides.task),
            hc.runtime.choices.get("model"),
            multirun,
            (hc.launcher.get("n_jobs") or (int(shared) if shared.isdigit() else None)) if multirun else None,
            hc.job.get("num") if multirun else None,
            hc,
            hc.launcher.get("cpus_per_task") if multirun else None,
            study=(hc.sweeper.get("study_name") or "optuna") if multirun and "study_name" in hc.sweeper else None,
            sweep_dir=Path(hc.sweep.dir).resolve() if multirun else None,
        )


def make_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create {run_dir}: {err.strerror or err}") from err


NEW_SWEEP: list[Path] = []  # the sweep directory this launch is to create, noted while it does not exist yet


def discard_new_sweep() -> None:
    """After a sweep refused before any job: remove the directory it made, if it holds only the sweep's own record."""
    for sweep_dir in NEW_SWEEP:
        with contextlib.suppress(OSError):
            (sweep_dir / "multirun.yaml").unlink(missing_ok=True)
            sweep_dir.rmdir()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While it lasts, SIGTERM raises Terminated, which training handles like Ctrl-C (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
