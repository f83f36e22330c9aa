"""Hydra callbacks: refuse an output directory that cannot be written, and report a sweep when it ends."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mnistlab.errors import EXIT_BUG, EXIT_OUTPUT, EXIT_SWEEP_INCOMPLETE

log = logging.getLogger(__name__)


def check_writable(folder: Path) -> str | None:
    """Create ``folder`` and a file in it; returns why that fails, or None."""
    probe = folder / ".mnistlab-write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
    except OSError as err:
        return f"cannot write the output directory {folder}: {err.strerror or err}"
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
    return None


class WritableOutput(Callback):
    """Checks the run or sweep directory before Hydra creates it, so a bad one costs one line, not a traceback."""

    def _check(self, folder: Any) -> None:
        problem = check_writable(Path(str(folder)))
        if problem:
            print(f"mnistlab: {problem}", file=sys.stderr)
            sys.exit(EXIT_OUTPUT)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir)


class SweepReport(Callback):
    """Aggregates every job's run files (not in-memory returns, which remote launchers drop).

    The sweep exits non-zero when its report lists jobs without a result, or when no report could be written.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mnistlab.report import write_report

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            report, incomplete = write_report([sweep_dir])
        except Exception:
            log.exception("could not write the sweep report for %s", sweep_dir)
            sys.exit(EXIT_BUG)
        log.info("sweep report: %s", report)
        print(report.read_text().split("## Figures")[0].rstrip())
        if incomplete:
            log.error("%d job(s) without a result; see %s", incomplete, report)
            sys.exit(EXIT_SWEEP_INCOMPLETE)
