"""Hydra's submitit launchers, waiting for every job of the array even when some never return a result.

A job cancelled with ``scancel``, killed by SLURM or lost with its node has no result, and the plugin's
launcher then raises on the first such job: the sweep ends at once, before the other jobs and without its
report. These launchers turn a missing result into a NaN objective instead; the job's own run files say
what happened, and the sweep report lists it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn, JobStatus

log = logging.getLogger(__name__)

try:
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher
except ImportError:  # the slurm extra is not installed: no launcher to offer (mnistlab's command line says what to install)
    submitit_launcher = None


class _Tolerant:
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        results = submitit.Job.results

        def tolerant_results(job: Any) -> list[Any]:
            try:
                return results(job)
            except Exception as err:  # submitit's UncompletedJobError: cancelled, killed, node lost
                log.error("job %s ended without a result: %s", job.job_id, str(err).splitlines()[0])
                missing = JobReturn(status=JobStatus.COMPLETED)
                missing.return_value = math.nan  # the sweeper's objective; the job's run files say what happened
                return [missing]

        submitit.Job.results = tolerant_results  # for this sweep's wait only
        try:
            return super().launch(job_overrides, initial_job_idx)  # type: ignore[misc]
        finally:
            submitit.Job.results = results


if submitit_launcher is not None:

    class SlurmLauncher(_Tolerant, submitit_launcher.SlurmLauncher):
        """``hydra/launcher=slurm``: one job array; a job without a result does not end the sweep."""

    class LocalLauncher(_Tolerant, submitit_launcher.LocalLauncher):
        """``hydra/launcher=local``: submitit's local processes, with the same tolerance."""
