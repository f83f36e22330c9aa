"""Running a study: workers that each take a new trial as soon as they finish one, on this machine or as one SLURM
job array (Hydra's side is ``hydra_plugins/mnistlab_optuna``).

Every worker runs the same loop against the shared storage: fail the trials whose worker is gone (and enqueue
their retry), stop when the study holds ``n_trials`` finished trials, else ask for a trial, train it as a Hydra
job in this process with :class:`~mnistlab.studies.pruning.StudyPruning` among its callbacks, and tell the
result. Optuna loads only when a study runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistlab.runs.files import read_summary
from mnistlab.runs.launch import SHARED_BY_ENV
from mnistlab.runs.lock import Holder
from mnistlab.studies import pruning
from mnistlab.studies.space import override
from mnistlab.studies.storage import PRUNERS, component, make_sampler, open_storage
from mnistlab.studies.trials import fail_abandoned, finished, retry_callback

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("mnistlab")


@dataclasses.dataclass
class StudyPlan:
    """What every worker of one study needs, in plain values (it travels to SLURM jobs by pickle)."""

    name: str
    direction: str
    storage: str
    n_trials: int
    space: dict[str, Any]
    fixed: list[str]
    sampler: Any
    pruner: Any
    max_retry: int
    sweep_dir: Path

    def load(self, worker: int = 0) -> optuna.Study:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # each trial's line is ours
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # constant_liar, retries
        storage = open_storage(self.storage)
        stored = len(optuna.load_study(study_name=self.name, storage=storage).trials) if self.exists(storage) else 0
        return optuna.create_study(
            storage=storage,
            study_name=self.name,
            direction=self.direction,
            load_if_exists=True,
            sampler=make_sampler(self.sampler, stored, worker),
            pruner=component(self.pruner, PRUNERS, "hydra.sweeper.pruner"),
        )

    def exists(self, storage: Any) -> bool:
        return any(summary.study_name == self.name for summary in storage.get_all_studies())


class Worker:
    """Runs trials one after another until the study holds ``n_trials`` finished ones. Picklable: a SLURM array
    task or a local process runs it as it is, with Hydra's state."""

    def __init__(self, plan: StudyPlan, hydra_context: Any, task_function: Any, config: Any):
        self.plan, self.hydra_context, self.task_function, self.config = plan, hydra_context, task_function, config

    def __call__(self, index: int, sharing: int, hydra_state: Any = None) -> int:
        from hydra._internal.core_plugins.basic_launcher import BasicLauncher
        from hydra.core.singleton import Singleton
        from hydra.core.utils import setup_globals
        from optuna.storages.journal import JournalFileSymlinkLock
        from optuna.trial import TrialState

        if hydra_state is not None:  # a process of its own: Hydra's registered configs and plugins
            Singleton.set_state(hydra_state)
            setup_globals()
        os.environ[SHARED_BY_ENV] = str(sharing)
        launcher = BasicLauncher()
        launcher.setup(hydra_context=self.hydra_context, task_function=self.task_function, config=self.config)
        study = self.plan.load(worker=index)
        asking = JournalFileSymlinkLock(str(self.plan.sweep_dir / "study"))  # check-then-ask, one worker at a time
        ran = 0
        while True:
            with _held(asking):
                fail_abandoned(study, self.plan.max_retry)
                trials = study.get_trials(deepcopy=False)
                waiting = any(t.state == TrialState.WAITING for t in trials)
                running = sum(t.state == TrialState.RUNNING for t in trials)
                if not waiting and finished(trials) + running >= self.plan.n_trials:
                    break
                trial = study.ask(self.plan.space)
                trial.set_user_attr("worker", dataclasses.asdict(Holder()))
            self.run_trial(study, trial, launcher)
            ran += 1
        return ran

    def run_trial(self, study: optuna.Study, trial: optuna.Trial, launcher: Any) -> None:
        """Train ``trial`` as job number ``trial.number`` and tell the study how it ended."""
        from hydra.core.utils import JobStatus
        from optuna.trial import TrialState

        overrides = [
            *self.plan.fixed,
            *(override(k, v) for k, v in trial.params.items()),
            f"+callback.study_pruning._target_={pruning.TARGET}",
        ]
        started = time.perf_counter()
        try:
            with pruning.reporting_to(trial):
                (job,) = launcher.launch([overrides], initial_job_idx=trial.number)
        except BaseException:  # Ctrl-C, SIGTERM: the trial is failed and queued again for the next launch
            study.tell(trial, state=TrialState.FAIL)
            retry_callback(self.plan.max_retry)(study, study.get_trials(deepcopy=False)[trial.number])
            raise
        run_dir = Path(job.hydra_cfg.hydra.runtime.output_dir)
        try:
            summary = read_summary(run_dir)
        except ValueError:  # an unreadable summary: the trial failed
            summary = {}
        value = job.return_value if job.status == JobStatus.COMPLETED else math.nan
        seconds = time.perf_counter() - started
        if summary.get("status") == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d: pruned after epoch %s (%.0f s)", trial.number, summary.get("epochs_run"), seconds)
        elif isinstance(value, (int, float)) and math.isfinite(value):
            study.tell(trial, float(value))
            log.info("trial %d: %.2f (%.0f s) %s", trial.number, value, seconds, " ".join(override(k, v) for k, v in trial.params.items()))
        else:
            study.tell(trial, state=TrialState.FAIL)
            log.warning("trial %d: failed (%s); see %s", trial.number, summary.get("status", "no summary"), run_dir)


@contextlib.contextmanager
def _held(lock: Any) -> Iterator[None]:
    """Optuna's journal file lock (safe on a shared filesystem) around a block."""
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
