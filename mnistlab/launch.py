"""This launch: what Hydra and SLURM say about it, its run directory, and what it may do there."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import secrets
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mnistlab import runfiles, study
from mnistlab.errors import OutputError, RunDirError, Terminated
from mnistlab.settings import differences, identity, is_execution_key

log = logging.getLogger("mnistlab")


def job_dirname(overrides: Sequence[str]) -> str:
    """A sweep job's directory, named by its settings (``model=mlp,seed=1``), execution settings left out.

    A relaunched sweep thereby finds each job's earlier run by its settings, whatever its position in the
    new sweep. A name too long for a file name is cut and ends in a hash of the whole.
    """
    key = lambda item: item.split("=", 1)[0].lstrip("+~")  # noqa: E731
    kept = sorted((o for o in overrides if not is_execution_key(key(o)) and not key(o).startswith("hydra.")), key=key)
    name = ",".join(kept).replace(os.sep, "_") or "job"
    if len(name.encode()) > 200:
        name = name.encode()[:180].decode(errors="ignore") + "," + hashlib.sha1(name.encode()).hexdigest()[:12]
    return name


def _job_dir_resolver(*, _root_: DictConfig) -> str:
    """A grid job's directory is named by its settings; an Optuna trial's by its number (``trial_7``), which
    the study never gives twice, while its sampled parameters may come again."""
    if "study_name" in _root_.hydra.sweeper:
        return f"trial_{_root_.hydra.job.num}"
    return job_dirname(list(_root_.hydra.overrides.task))


# ${uid:} makes run and sweep directories unique even when started in the same second.
OmegaConf.register_new_resolver("uid", lambda: secrets.token_hex(3), use_cache=True, replace=True)
OmegaConf.register_new_resolver("job_dir", _job_dir_resolver, replace=True)


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
        return cls(
            list(hc.overrides.task),
            hc.runtime.choices.get("model"),
            multirun,
            (hc.launcher.get("n_jobs") or study.workers_here()) if multirun else None,
            hc.job.get("num") if multirun else None,
            hc,
            hc.launcher.get("cpus_per_task") if multirun else None,
            study=(hc.sweeper.get("study_name") or "optuna") if multirun and "study_name" in hc.sweeper else None,
            sweep_dir=Path(hc.sweep.dir).resolve() if multirun else None,
        )


def slurm_job_id() -> str | None:
    """The SLURM job running this process as ``squeue`` shows it (``<array>_<task>`` for an array task), or None."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '')}"
    return env.get("SLURM_JOB_ID")


def plan_launch(run_dir: Path, cfg: DictConfig, resume: bool) -> tuple[str, dict[str, Any]]:
    """What this launch does in ``run_dir``: ``new``, ``resume`` or ``skip`` (completed), with the previous summary.

    A directory that holds trained epochs is only ever resumed, with ``trainer.resume=true`` and the very
    settings it was trained with; anything else is refused, naming each differing key.
    """
    if not runfiles.has_records(run_dir):
        if resume:
            log.warning("nothing to resume in %s; starting from epoch 1", run_dir)
        return "new", {}
    try:
        previous = runfiles.read_summary(run_dir)
    except ValueError:
        previous = {}
    status = previous.get("status", "no summary")
    if not ((run_dir / runfiles.CHECKPOINT_FILE).exists() or (run_dir / runfiles.METRICS_FILE).exists()):
        log.info("%s holds a launch that trained nothing (%s); starting afresh", run_dir, status)
        return "new", previous
    if not resume:
        raise RunDirError(
            f"{run_dir} already holds a run ({status}, {previous.get('epochs_run', 'some')} epochs); add trainer.resume=true to continue it "
            "with the same settings, or launch into a new directory (hydra.run.dir, hydra.sweep.dir)"
        )
    try:
        recorded = runfiles.read_config(run_dir)
        changed = differences(identity(recorded), identity(cfg)) if recorded is not None else []
    except Exception as err:
        raise RunDirError(
            f"{run_dir / runfiles.CONFIG_FILE} cannot be read ({type(err).__name__}: {err}); launch into a new directory"
        ) from err
    if changed:
        raise RunDirError(
            f"cannot resume {run_dir}: it was trained with other settings ({'; '.join(changed)}); "
            "resume with the run's own settings, or launch into a new directory"
        )
    return ("skip" if status == "completed" else "resume"), previous


def make_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create {run_dir}: {err.strerror or err}") from err


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
