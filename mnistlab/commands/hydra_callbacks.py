"""Hydra callbacks: refuse an output directory that cannot be written, follow a sweep's jobs as they end, and
report the sweep when it ends."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mnistlab.errors import EXIT_BAD_INPUT, EXIT_BUG, EXIT_OUTPUT, EXIT_SWEEP_INCOMPLETE, NoRunsError, UserError
from mnistlab.runs.launch import NEW_SWEEP

log = logging.getLogger(__name__)


def check_writable(folder: Path) -> str | None:
    """Whether ``folder`` can be created and written: a file is made in it, then the file and every folder this made
    are removed again (a launch refused later leaves nothing). Returns why it cannot, or None."""
    probe = folder / ".mnistlab-write-test"
    made = [parent for parent in [folder, *folder.parents] if not parent.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
    except OSError as err:
        return f"cannot write the output directory {folder}: {err.strerror or err}"
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
            for parent in made:
                parent.rmdir()
    return None


class WritableOutput(Callback):
    """Checks a single run's settings, then the run or sweep directory, before Hydra creates it: bad input costs one
    line and leaves no directory behind."""

    def _check(self, folder: Any) -> None:
        problem = check_writable(Path(str(folder)))
        if problem:
            print(f"mnistlab: {problem}", file=sys.stderr)
            sys.exit(EXIT_OUTPUT)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mnistlab.config import check

        try:
            check(config)  # again in the run, with the data; a sweep's jobs are checked there, each recorded
        except UserError as err:
            print(f"mnistlab: {err}", file=sys.stderr)
            sys.exit(err.exit_code)
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.exists():
            NEW_SWEEP.append(sweep_dir)  # a sweep refused before its first job removes it again
        self._check(sweep_dir)


def _sweep_logger(config: DictConfig) -> tuple[type, dict[str, Any]] | None:
    """The logger class of the sweep's config and its options, for what it does once per sweep."""
    node = config.get("logger")
    if node is None or "_target_" not in node:
        return None
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    options = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if not k.startswith("_")}
    return get_class(node._target_), options


class SweepReport(Callback):
    """Prints a line as each job ends (:mod:`mnistlab.reports.progress`), then aggregates every job's run files (not
    in-memory returns, which remote launchers drop).

    The sweep exits non-zero when its report lists jobs without a result (5), when no job ran (2), or when no
    report could be written (1, or 4 for a disk that refuses it), with one line saying why.
    It also starts and finishes what the logger keeps per sweep (MLflow's parent run).
    """

    def __init__(self) -> None:
        self.progress: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"progress": None}  # the watcher stays in the launching process; joblib and submitit send callbacks to jobs

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mnistlab.reports.plan import planned
        from mnistlab.reports.progress import SweepProgress

        sweep_dir = Path(str(config.hydra.sweep.dir))
        names, total = planned(config.hydra)
        self.progress = SweepProgress(sweep_dir, names, total).start()
        logger = _sweep_logger(config)
        if logger is not None:
            sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
            try:
                logger[0].sweep_start(logger[1], sweep_dir)
            except UserError as err:  # Hydra would turn any exception of a callback into a warning and go on
                _stop(str(err), err.exit_code)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if self.progress is not None:
            self.progress.stop()
        try:
            from mnistlab.reports.sweep import write_report

            report, incomplete = write_report([sweep_dir])  # the jobs' figures too, left to the sweep's end
        except NoRunsError:
            _stop("the sweep launched no job (is a swept range or list empty?): nothing to report", EXIT_BAD_INPUT)
        except UserError as err:  # no job ran, a bad baseline, a disk that refuses the files
            _stop(str(err), err.exit_code)
        except Exception as err:  # a disk that refuses it, a broken install, a bug: the sweep must not look successful
            if not isinstance(err, ImportError | OSError):
                log.exception("the sweep report failed")
            code = EXIT_OUTPUT if isinstance(err, OSError) else EXIT_BUG
            _stop(f"the sweep ran, but its report could not be written ({type(err).__name__}: {err})", code)
        log.info("sweep report: %s", report)
        print(report.read_text().split("## Figures")[0].rstrip())
        logger = _sweep_logger(config)
        if logger is not None:
            try:
                logger[0].sweep_end(logger[1], sweep_dir.resolve())
            except Exception as err:  # the report is written; a tracking server's trouble is only a warning
                log.warning("the logger could not finish the sweep (%s: %s)", type(err).__name__, err)
        if incomplete:
            log.error("%d job(s) without a result; see %s", incomplete, report)
            sys.exit(EXIT_SWEEP_INCOMPLETE)


def _stop(message: str, code: int) -> None:
    """End the sweep with one line and ``code`` (SystemExit passes through Hydra's callback guard)."""
    print(f"mnistlab: {message}", file=sys.stderr)
    sys.exit(code)
