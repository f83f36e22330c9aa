"""A sweep's plan: the jobs Hydra's grid sweeper launches, in order, worked out from its own record (multirun.yaml).

The same product of the swept values the sweeper takes (its ``hydra.sweeper.params``, then the command line's
overrides, a later value of a key replacing an earlier one), so progress lines can count to the end and a report
of a sweep still running can list the jobs not started yet.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mnistlab.config.identity import job_dirname

GRID = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"  # Hydra's own sweeper, named as its config names it
STUDY = "hydra_plugins.mnistlab_optuna.StudySweeper"


def grid_jobs(hydra: DictConfig) -> list[list[str]] | None:
    """Each job's overrides, in launch order, for Hydra's grid sweeper; None for a sweeper that decides as it goes."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if hydra.sweeper.get("_target_") != GRID:
        return None
    given = [f"{key}={value}" for key, value in (hydra.sweeper.get("params") or {}).items()] + list(hydra.overrides.task)
    values: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(given):
        key = override.get_key_element()
        if override.is_sweep_override():
            values[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            values[key] = [f"{key}={override.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*values.values())]


def planned(hydra: DictConfig) -> tuple[list[str] | None, int | None]:
    """The planned job directories (None where a sweeper decides as it goes) and how many jobs the sweep runs
    (None where nobody can say: another sweeper)."""
    jobs = grid_jobs(hydra)
    if jobs is not None:
        return [job_dirname(job) for job in jobs], len(jobs)
    if hydra.sweeper.get("_target_") == STUDY:
        return None, int(hydra.sweeper.n_trials)
    return None, None


def recorded(sweep_dir: Path) -> DictConfig | None:
    """The ``hydra`` node a sweep recorded in its multirun.yaml, or None (not a sweep directory, or unreadable)."""
    try:
        return OmegaConf.load(Path(sweep_dir) / "multirun.yaml").hydra
    except Exception:
        return None
