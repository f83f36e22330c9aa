"""Hydra's Optuna sweeper, continuing a stored study (``hparams_search`` presets select it).

Hydra's Optuna sweeper numbers its jobs from 0 at every launch and seeds its sampler afresh, so a study
relaunched with persistent storage (``hydra.sweeper.storage=sqlite:///study.db``) re-sampled trial 0's
parameters and wrote over trial 0's directory. :class:`StudySweeper` numbers jobs by the study's trial
numbers and seeds the sampler with ``seed + trials already stored``; the presets name each job's directory
``trial_<number>``.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("mnistlab")

try:
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:  # the optuna extra is not installed: no study to continue
    OptunaSweeper = None

if OptunaSweeper is not None:

    class StudySweeper(OptunaSweeper):
        """Job numbers are trial numbers, and the sampler's seed moves on by the trials already stored, so a
        continued study neither reuses a directory nor draws an earlier trial's parameters again."""

        def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
            from mnistlab.studies import existing_trials

            super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
            impl = self.sweeper
            existing = existing_trials(impl.storage, impl.study_name)
            if not existing:
                return
            impl.job_idx = existing
            sampler = config.hydra.sweeper.get("sampler")
            if sampler is not None and sampler.get("seed") is not None:
                from hydra.utils import instantiate

                impl.sampler = instantiate(sampler, seed=int(sampler.seed) + existing)
            log.info("continuing study %s: %d trials stored; new trials are numbered from %d", impl.study_name, existing, existing)
