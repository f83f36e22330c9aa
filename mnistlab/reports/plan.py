"""A sweep's plan: the jobs Hydra's grid sweeper launches, in order, worked out from its own record (multirun.yaml).

The same product of the swept values the sweeper takes (its ``hydra.sweeper.params``, then the command line's
overrides, a later value of a key replacing an earlier one), so progress lines can count to the end and a report
of a sweep still running can list the jobs not started yet.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from mnistlab.config.identity import job_dirname, sweep_values, swept_keys

GRID = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"  # Hydra's own sweeper, named as its config names it
STUDY = "hydra_plugins.mnistlab_optuna.StudySweeper"


def grid_jobs(hydra: DictConfig) -> list[list[str]] | None:
    """Each job's overrides, in launch order, for Hydra's grid sweeper; None for a sweeper that decides as it goes."""
    if hydra.sweeper.get("_target_") != GRID:
        return None
    values = sweep_values(hydra.sweeper.get("params"), list(hydra.overrides.task))
    return [list(job) for job in itertools.product(*values.values())]


def job_names(hydra: DictConfig, jobs: list[list[str]]) -> list[str]:
    """The directories of ``jobs``, named as the sweep names them (by the keys it varies)."""
    swept = swept_keys(hydra) or None
    return [job_dirname(job, swept) for job in jobs]


def planned(hydra: DictConfig) -> tuple[list[str] | None, int | None]:
    """The planned job directories (None where a sweeper decides as it goes) and how many jobs the sweep runs
    (None where nobody can say: another sweeper)."""
    jobs = grid_jobs(hydra)
    if jobs is not None:
        return job_names(hydra, jobs), len(jobs)
    if hydra.sweeper.get("_target_") == STUDY:
        return None, int(hydra.sweeper.n_trials)
    return None, None


def recorded(sweep_dir: Path) -> DictConfig | None:
    """The ``hydra`` node a sweep recorded in its multirun.yaml, or None (not a sweep directory, or unreadable)."""
    try:  # libyaml's parser where PyYAML has it: the file is Hydra's whole config, 0.5 s to parse in pure Python
        text = (Path(sweep_dir) / "multirun.yaml").read_text()
        return OmegaConf.create(yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))).hydra
    except Exception:
        return None
