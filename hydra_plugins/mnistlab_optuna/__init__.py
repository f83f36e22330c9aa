"""mnistlab's Optuna sweeper: ``hydra/sweeper=study``, which the ``hparams_search`` presets select.

Hydra takes sweepers only from its plugin package, so the class is here; what its workers do is
:mod:`mnistlab.studies`. One worker runs in this process; ``hydra.sweeper.n_jobs=K`` starts K worker processes
here, and ``hydra/launcher=slurm`` starts K workers as one SLURM job array. They share the study's storage, and
each takes a new trial as soon as it finishes one.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("mnistlab")


class StudySweeper(Sweeper):
    """An Optuna study on current Optuna: pruning, retried trials, and workers here or on SLURM."""

    def __init__(
        self,
        direction: str = "maximize",
        study_name: str | None = None,
        storage: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        sampler: Any = "tpe",
        pruner: Any = "median",
        max_retry: int = 3,
        params: Any = None,
    ):
        self.keys = {
            "direction": direction,
            "study_name": study_name,
            "storage": storage,
            "n_trials": n_trials,
            "n_jobs": n_jobs,
            "sampler": _plain(sampler),
            "pruner": _plain(pruner),
            "max_retry": max_retry,
            "params": _plain(params) or {},
        }

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def sweep(self, arguments: list[str]) -> Sequence[Sequence[JobReturn]]:
        from mnistlab.errors import UserError

        try:
            return self._sweep(arguments)
        except UserError as err:  # bad settings: one line naming the key, before any trial
            log.error("%s", err)
            sys.exit(err.exit_code)

    def _sweep(self, arguments: list[str]) -> Sequence[Sequence[JobReturn]]:
        from mnistlab import extras
        from mnistlab.errors import UserError
        from mnistlab.studies import space, storage, trials, worker

        extras.require("optuna", "hydra/sweeper=study")
        keys = self.keys
        for key in ("n_trials", "n_jobs", "max_retry"):
            if not isinstance(keys[key], int) or keys[key] < (0 if key == "max_retry" else 1):
                raise UserError(f"hydra.sweeper.{key}: must be an integer >= {0 if key == 'max_retry' else 1}, got {keys[key]!r}")
        if keys["direction"] not in ("maximize", "minimize"):
            raise UserError(f"hydra.sweeper.direction: maximize or minimize, got {keys['direction']!r}")
        sweep_dir = Path(self.config.hydra.sweep.dir)
        space, fixed = space.search_space(keys["params"], arguments)
        storage.make_sampler(keys["sampler"], 0, 0)  # refused here, before the sweep directory exists
        storage.component(keys["pruner"], storage.PRUNERS, "hydra.sweeper.pruner")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        plan = worker.StudyPlan(
            name=keys["study_name"] or "study",
            direction=keys["direction"],
            storage=storage.storage_address(keys["storage"], sweep_dir),
            n_trials=keys["n_trials"],
            space=space,
            fixed=fixed,
            sampler=keys["sampler"],
            pruner=keys["pruner"],
            max_retry=keys["max_retry"],
            sweep_dir=sweep_dir.resolve(),
        )
        opened = plan.load()
        if opened.direction.name.lower() != plan.direction:
            raise UserError(f"hydra.sweeper.direction: study {plan.name} in {plan.storage} was created to {opened.direction.name.lower()}")
        done = trials.finished(opened.trials)
        log.info("study %s (%s): %d of %d trials finished; storage %s", plan.name, plan.direction, done, plan.n_trials, plan.storage)
        runner = worker.Worker(plan, self.hydra_context, self.task_function, self.config)
        launcher = str(self.config.hydra.launcher.get("_target_", ""))
        if keys["n_jobs"] > 1 or "submitit" in launcher.lower() or "mnistlab_launchers" in launcher:
            self._run_workers(runner, keys["n_jobs"], plan, opened)
        else:
            runner(0, 1)
        self._write_results(plan, sweep_dir)
        return []

    def _run_workers(self, worker: Any, count: int, plan: Any, opened: Any) -> None:
        """``count`` workers as processes here, or as one SLURM job array; waits for all of them."""
        import submitit
        from hydra.core.singleton import Singleton

        launcher = OmegaConf.to_container(self.config.hydra.launcher, resolve=True)
        on_slurm = "slurm" in str(launcher.get("_target_", "")).lower()
        folder = plan.sweep_dir / ".submitit" / "%j"
        if on_slurm:
            executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=launcher.get("max_num_timeout", 0))
            executor.update_parameters(**_slurm_parameters(launcher, count, plan.name))
        else:
            executor = submitit.AutoExecutor(folder=folder, cluster="local")
            executor.update_parameters(timeout_min=int(launcher.get("timeout_min") or 7 * 24 * 60), name=plan.name)
        sharing = 1 if on_slurm else count
        jobs = executor.map_array(worker, list(range(count)), [sharing] * count, [Singleton.get_state()] * count)
        where = f"SLURM job array {jobs[0].job_id.split('_')[0]}" if on_slurm else "processes on this machine"
        log.info("study %s: %d workers as %s; their logs are in %s", plan.name, count, where, folder.parent)
        last = None
        try:
            while not all(job.done() for job in jobs):
                time.sleep(2)
                line = _progress(opened, plan.n_trials)
                if line != last:
                    log.info("%s", line)
                    last = line
        except KeyboardInterrupt:
            for job in jobs:
                job.cancel(check=False)
            raise
        for job in jobs:
            try:
                job.result()
            except Exception as err:  # a worker cancelled, killed or lost: its trial is retried by the next launch
                log.error("study worker %s ended without finishing: %s", job.job_id, str(err).strip().splitlines()[0])

    def _write_results(self, plan: Any, sweep_dir: Path) -> None:
        """``optimization_results.yaml``: the best trial's parameters and value, as Optuna has them."""
        opened = plan.load()
        try:
            best = opened.best_trial
        except ValueError:  # no complete trial
            log.warning("study %s has no complete trial", plan.name)
            return
        results = {"name": plan.name, "best_trial": best.number, "best_params": best.params, "best_value": best.value}
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        log.info("study %s: best trial %d, %.2f: %s", plan.name, best.number, best.value, best.params)


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def _slurm_parameters(launcher: dict[str, Any], count: int, name: str) -> dict[str, Any]:
    """The ``hydra/launcher=slurm`` keys as submitit's: shared ones as they are, SLURM's own with ``slurm_``."""
    shared = {"timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes", "name", "stderr_to_stdout"}
    skip = {"_target_", "submitit_folder", "max_num_timeout", "array_parallelism"}
    out: dict[str, Any] = {"name": name, "slurm_array_parallelism": count}
    for key, value in launcher.items():
        if key in skip or value is None:
            continue
        out[key if key in shared else f"slurm_{key}"] = value
    return out


def _progress(opened: Any, n_trials: int) -> str:
    from optuna.trial import TrialState

    from mnistlab.studies.trials import finished

    trials = opened.get_trials(deepcopy=False)
    counts = {state: sum(t.state == state for t in trials) for state in (TrialState.RUNNING, TrialState.PRUNED, TrialState.FAIL)}
    complete = [t.value for t in trials if t.state == TrialState.COMPLETE]
    best = f", best {max(complete) if opened.direction.name == 'MAXIMIZE' else min(complete):.2f}" if complete else ""
    return (
        f"study {opened.study_name}: {finished(trials)}/{n_trials} finished ({len(complete)} complete, "
        f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed), {counts[TrialState.RUNNING]} running{best}"
    )
