"""The ``mnistlab`` command: Hydra's command line over :func:`mnistlab.runs.task.run`.

Composing, ``--help``, ``--cfg`` and shell completion load no torch: it is imported when a run starts.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mnistlab import extras, paths
from mnistlab.config import register
from mnistlab.errors import EXIT_BAD_INPUT, EXIT_CALLBACK_STATUS, EXIT_NOT_LEARNED, EXIT_STOPPED, NOT_LEARNED, UserError, stop_status
from mnistlab.runs import files
from mnistlab.runs.launch import Job, sigterm_as_interrupt

log = logging.getLogger("mnistlab")


@hydra.main(config_path=str(paths.config_dir()), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Hydra task: returns the sweep objective; a single run that does not complete exits non-zero."""
    from mnistlab.runs.results import objective
    from mnistlab.runs.task import run

    multirun = Job.current().multirun
    try:
        with sigterm_as_interrupt():
            # a sweep's jobs leave their figures to the sweep's end; a single run draws them in a process of their own
            summary = run(cfg, Path(HydraConfig.get().runtime.output_dir), figures="later" if multirun else "background")
    except UserError as err:
        if multirun:  # one bad job must not sink the sweep; the report lists it
            log.error("%s", err)
            return math.nan
        print(f"mnistlab: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt as stop:  # before or after the epochs (fit records a stop during them)
        log.warning("%s; the run's files are as its last finished epoch left them", stop_status(stop))
        sys.exit(EXIT_STOPPED[stop_status(stop)])
    except Exception:
        if multirun:
            log.exception("job failed")
            return math.nan
        raise
    status = summary["status"]
    if status in EXIT_STOPPED:  # a sweep stops too: Ctrl-C and SIGTERM mean "stop now"
        sys.exit(EXIT_STOPPED[status])
    if status != "completed" and not multirun:
        sys.exit(EXIT_NOT_LEARNED if status in NOT_LEARNED else EXIT_CALLBACK_STATUS)
    return objective(summary)


def quiet_openmp_spin() -> None:
    """Idle OpenMP threads spin 10,000 iterations before they sleep, not libgomp's 300,000: alone a run is as
    fast, and runs sharing cores are 1.4-7x faster (docs/performance.md). Set before torch loads, inherited by
    a sweep's jobs, and never over your own OMP_WAIT_POLICY or GOMP_SPINCOUNT."""
    if not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & os.environ.keys():
        os.environ["GOMP_SPINCOUNT"] = "10000"


def cli() -> None:
    """``mnistlab``: Hydra's command line, with ``--version`` answering for mnistlab (Hydra's would print its own)."""
    if "--version" in sys.argv[1:]:
        versions = files.versions()
        print(f"mnistlab {versions.pop('mnistlab')} ({', '.join(f'{name} {v}' for name, v in versions.items())})")
        return
    try:
        extras.check_overrides(arg for arg in sys.argv[1:] if not arg.startswith("-"))
    except extras.MissingExtra as err:
        print(f"mnistlab: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    quiet_openmp_spin()
    register()
    full_errors = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises what it finds composing, and we say it in one line
    try:
        main()
    except SystemExit as stop:
        leave(stop.code)
    except Exception as err:
        from mnistlab.commands.mistakes import COMPOSING, one_line
        from mnistlab.runs.launch import discard_new_sweep

        if full_errors or not isinstance(err, COMPOSING):
            raise
        discard_new_sweep()  # a sweep whose jobs cannot be composed leaves no directory
        print(f"mnistlab: {one_line(err)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    leave(0)


KEEP_TEARDOWN = ("joblib", "submitit", "mlflow", "optuna", "torch.utils.tensorboard")  # their exit handlers matter


def leave(code: int | str | None) -> None:
    """Exit with ``code``; once torch is loaded, without Python's teardown of its modules (about 1 s on 2 cores):
    every run file is written and closed by then, and the log and the streams are flushed first."""
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    code = code or 0
    if "torch" not in sys.modules or any(name in sys.modules for name in KEEP_TEARDOWN):
        sys.exit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    cli()
