"""A study's trials as its workers see them: which are finished, which a dead worker left running, and retries."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistlab.runs.lock import Holder
from mnistlab.studies.storage import open_storage, storage_address

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("mnistlab")


def retry_callback(max_retry: int) -> Any:
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
        return retry_callback(0).retried_trial_number(trial)


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
        retry_callback(max_retry)(study, study.get_trials(deepcopy=False)[trial.number])
        log.warning("trial %d failed: %s (%s); its parameters are queued again", trial.number, why, holder)
        count += 1
    return count
