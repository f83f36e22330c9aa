"""Hydra callback: write the sweep report when a multirun ends."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepReport(Callback):
    """Aggregates every job's run files (not in-memory returns, which remote launchers drop)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mnistlab.report import write_report

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            report = write_report([sweep_dir])
        except Exception:  # a report problem must not turn a finished sweep into a failure
            log.exception("could not write the sweep report for %s", sweep_dir)
            return
        log.info("sweep report: %s", report)
        print(report.read_text().split("## Figures")[0].rstrip())
