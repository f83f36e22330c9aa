"""Running an Optuna study: its search space, its storage, and workers that each take a new trial as soon as
they finish one, on this machine or as one SLURM job array (Hydra's side is ``hydra_plugins/mnistlab_optuna``).

Every worker runs the same loop against the shared storage: fail the trials whose worker is gone (and enqueue
their retry), stop when the study holds ``n_trials`` finished trials, else ask for a trial, train it as a Hydra
job in this process, and tell the result. The job reports each epoch's validation accuracy to the trial
(:class:`Pruning`), and a trial the pruner stops is told ``PRUNED``. Optuna loads only when a study runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistlab.callbacks import Callback
from mnistlab.errors import UserError
from mnistlab.lock import Holder
from mnistlab.runfiles import read_summary

if TYPE_CHECKING:
    import optuna

    from mnistlab.engine import Trainer

log = logging.getLogger("mnistlab")

JOURNAL_FILE = "optuna.journal"  # the study's storage in its sweep directory unless hydra.sweeper.storage says otherwise
SAMPLERS = {
    "tpe": "optuna.samplers.TPESampler",
    "random": "optuna.samplers.RandomSampler",
    "cmaes": "optuna.samplers.CmaEsSampler",
    "gp": "optuna.samplers.GPSampler",
    "qmc": "optuna.samplers.QMCSampler",
    "nsgaii": "optuna.samplers.NSGAIISampler",
}
PRUNERS = {
    "median": "optuna.pruners.MedianPruner",
    "hyperband": "optuna.pruners.HyperbandPruner",
    "none": "optuna.pruners.NopPruner",
}
WORKERS_HERE = "MNISTLAB_STUDY_WORKERS"  # how many of the study's workers share this machine (torch's threads divide)

_active: optuna.Trial | None = None  # the trial the job running in this process trains


def active_trial() -> optuna.Trial | None:
    """The Optuna trial this process trains now, if a study's worker launched it."""
    return _active


def workers_here() -> int | None:
    """How many study workers share this machine's cores (None outside a study's local workers)."""
    value = os.environ.get(WORKERS_HERE, "")
    return int(value) if value.isdigit() else None


class Pruning(Callback):
    """Reports each epoch's objective (validation accuracy, else test) to the trial; stops a trial the pruner
    gives up on, with the status ``pruned``."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial
        self.pruned_at: int | None = None

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        value = row.get("val_acc", row["test_acc"])
        if value is None or math.isnan(value):
            return
        self.trial.report(float(value), int(row["epoch"]))
        if self.trial.should_prune():
            self.pruned_at = int(row["epoch"])
            log.info("trial %d pruned after epoch %d (%.2f%%)", self.trial.number, self.pruned_at, value)
            trainer.stop("pruned by the study's pruner", status="pruned")

    def summary(self) -> dict[str, Any]:
        return {"pruned_at_epoch": self.pruned_at}


# -- the search space


def distribution(key: str, text: str) -> optuna.distributions.BaseDistribution | None:
    """Hydra's sweep syntax as an Optuna distribution: ``interval(a, b)`` (float; ``tag(int, ...)`` for an int),
    ``range(a, b[, step])`` (int, b excluded), ``choice(...)``, each optionally ``tag(log, ...)``; None for a fixed value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from hydra.errors import OverrideParseException
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    try:
        override = OverridesParser.create().parse_overrides([f"{key}={text}"])[0]
    except OverrideParseException as err:
        raise UserError(f"hydra.sweeper.params.{key}: cannot read {text!r}: {err}") from None
    if not override.is_sweep_override():
        return None
    sweep, log_scale = override.value(), "log" in (override.value().tags or set())
    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution(list(sweep.list))
    if isinstance(sweep, RangeSweep):
        start, step = int(sweep.start), 1 if log_scale else int(sweep.step)
        last = start + (int(sweep.stop) - 1 - start) // step * step  # range's stop is excluded
        return IntDistribution(start, last, log=log_scale, step=step)
    if isinstance(sweep, IntervalSweep):
        if "int" in sweep.tags:
            return IntDistribution(int(sweep.start), int(sweep.end), log=log_scale)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log_scale)
    raise UserError(f"hydra.sweeper.params.{key}: {text!r} is not interval(...), range(...) or choice(...)")


def search_space(params: Mapping[str, Any], arguments: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
    """The study's distributions from ``hydra.sweeper.params`` and the command line's sweeps (which win), and the
    command line's plain overrides, which every trial gets."""
    space: dict[str, Any] = {}
    fixed: list[str] = []
    for key, text in params.items():
        dist = distribution(str(key), str(text))
        if dist is None:
            fixed.append(f"{key}={text}")
        else:
            space[str(key)] = dist
    for argument in arguments:
        key, _, text = argument.partition("=")
        dist = distribution(key.lstrip("+~"), text)
        if dist is None:
            fixed.append(argument)
        else:
            space[key.lstrip("+~")] = dist
    fixed_keys = {item.partition("=")[0].lstrip("+~") for item in fixed}
    for key in fixed_keys & space.keys():
        del space[key]  # a value fixed on the command line replaces its search range
    return space, fixed


def override(key: str, value: Any) -> str:
    """A sampled value as a command-line override (floats kept exactly)."""
    return f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"


# -- storage, sampler, pruner


def storage_address(storage: str | None, sweep_dir: Path) -> str:
    """A database URL as it is, else a journal file (the default: the sweep directory's ``optuna.journal``)."""
    if storage is None or str(storage).strip() == "":
        return str((sweep_dir / JOURNAL_FILE).resolve())
    text = str(storage)
    return text if "://" in text else str(Path(text).expanduser().resolve())


def open_storage(address: str) -> optuna.storages.BaseStorage:
    """A URL (``sqlite:///study.db``, ``mysql+pymysql://...``) opens a database; a path, a journal file, which is
    safe on a shared filesystem where SQLite is not."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if "://" in address:
        return optuna.storages.RDBStorage(address)
    Path(address).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(address))


def component(spec: Any, names: Mapping[str, str], key: str, **extra: Any) -> Any:
    """A sampler or pruner from a name (``tpe``, ``median``) or a ``_target_`` node; ``extra`` fills its arguments."""
    from hydra.utils import get_class

    if isinstance(spec, str):
        if spec not in names:
            raise UserError(f"{key}: {spec!r} is not one of {', '.join(names)} (or a node with _target_)")
        spec = {"_target_": names[spec]}
    spec = dict(spec or {})
    target = spec.pop("_target_", None)
    if target is None:
        raise UserError(f"{key}: give a name ({', '.join(names)}) or a node with _target_")
    spec.pop("_recursive_", None)
    if target not in names and "." not in str(target):
        raise UserError(f"{key}: {target!r} is not one of {', '.join(names)} (or a class path)")
    target = names.get(target, target)
    try:
        return get_class(target)(**{**spec, **extra})
    except (ImportError, TypeError, ValueError) as err:
        raise UserError(f"{key} ({target}): {err}") from None


def make_sampler(spec: Any, stored: int, worker: int) -> optuna.samplers.BaseSampler:
    """The sampler, its seed drawn from (seed, trials stored, worker index): a continued study or a second worker
    never repeats the draws another sampler already made. The first launch's single worker keeps the seed as set."""
    import numpy as np

    spec = {"_target_": spec} if isinstance(spec, str) else dict(spec or {"_target_": "tpe"})
    seed = spec.pop("seed", None)
    if seed is not None and (stored, worker) != (0, 0):
        seed = int(np.random.SeedSequence([int(seed), stored, worker]).generate_state(1)[0])
    extra = {"seed": int(seed)} if seed is not None else {}
    return component(spec, SAMPLERS, "hydra.sweeper.sampler", **extra)


# -- progress


def _retry(max_retry: int) -> Any:
    """Optuna's callback that enqueues a failed trial's parameters again (renamed in Optuna 4.9)."""
    import optuna

    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return retry(max_retry=max_retry)


def retried_from(trial: optuna.trial.FrozenTrial) -> int | None:
    """The number of the failed trial ``trial`` retries, if it is a retry."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _retry(0).retried_trial_number(trial)


def retries(sweep_dir: Path) -> dict[int, int]:
    """``{failed trial: its retry}`` as the sweep's stored study records them ({} without Optuna or a stored study)."""
    try:
        import optuna
        from omegaconf import OmegaConf
    except ImportError:
        return {}
    try:
        sweeper = OmegaConf.load(sweep_dir / "multirun.yaml").hydra.sweeper
        name, address = sweeper.get("study_name") or "study", storage_address(sweeper.get("storage"), sweep_dir)
        if "://" not in address and not Path(address).exists():
            return {}
        trials = optuna.load_study(study_name=name, storage=open_storage(address)).trials
    except Exception:  # no sweep config, no such study, a database out of reach: the run files alone speak
        return {}
    return {number: t.number for t in trials if (number := retried_from(t)) is not None}


def finished(trials: Sequence[optuna.trial.FrozenTrial]) -> int:
    """Trials that count toward ``n_trials``: complete, pruned, or failed by their own job (a failed trial that was
    retried counts through its retry)."""
    from optuna.trial import TrialState

    retried = {retried_from(t) for t in trials}
    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and t.number not in retried) for t in trials
    )


def fail_abandoned(study: optuna.Study, max_retry: int) -> int:
    """Mark failed every running trial whose worker no longer runs (killed, node lost, SLURM job ended) and enqueue
    its parameters again, up to ``max_retry`` times; returns how many."""
    from optuna.trial import TrialState

    count = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if not worker:
            continue
        holder = Holder(**worker)
        why = holder.gone()
        if why is None:
            continue
        study.tell(trial.number, state=TrialState.FAIL)
        _retry(max_retry)(study, study.get_trials(deepcopy=False)[trial.number])
        log.warning("trial %d failed: %s (%s); its parameters are queued again", trial.number, why, holder)
        count += 1
    return count


# -- a worker


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
        os.environ[WORKERS_HERE] = str(sharing)
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

        global _active
        overrides = [*self.plan.fixed, *(override(k, v) for k, v in trial.params.items())]
        started = time.perf_counter()
        _active = trial
        try:
            (job,) = launcher.launch([overrides], initial_job_idx=trial.number)
        except BaseException:  # Ctrl-C, SIGTERM: the trial is failed and queued again for the next launch
            study.tell(trial, state=TrialState.FAIL)
            _retry(self.plan.max_retry)(study, study.get_trials(deepcopy=False)[trial.number])
            raise
        finally:
            _active = None
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
