"""The project's own error types, and the exit codes of ``mnistlab`` (docs/reliability.md)."""

EXIT_BUG = 1  # an unexpected exception, shown with its traceback
EXIT_BAD_INPUT = 2  # a setting, a data file, a checkpoint or a run directory (UserError)
EXIT_NOT_LEARNED = 3  # the run learned nothing: its loss became NaN or infinite (diverged), or stayed at chance (collapsed)
NOT_LEARNED = ("diverged", "collapsed")  # the statuses of exit 3
EXIT_OUTPUT = 4  # a run file cannot be written (OutputError): a full disk, a read-only folder
EXIT_SWEEP_INCOMPLETE = 5  # a sweep ran to its end, but its report lists jobs without a result
EXIT_CALLBACK_STATUS = 6  # a callback ended the run with a status of its own (trainer.stop(reason, status=...))
EXIT_STOPPED = {"interrupted": 130, "terminated": 143}  # Ctrl-C, SIGTERM


class UserError(Exception):
    """A problem the user can fix, never a bug: reported as one line, exiting with ``exit_code``."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(UserError):
    """A setting is out of range, unknown or inconsistent; the message names the key."""


class DataError(UserError):
    """The dataset files are missing, unreadable, truncated or corrupt."""


class CheckpointError(UserError):
    """A checkpoint is missing or does not fit the configured run."""


class RunDirError(UserError):
    """The run directory holds another run, or a run this launch may not touch."""


class NoRunsError(UserError):
    """A sweep or a report found no run: nothing was launched, or the paths hold no run directory."""


class OutputError(UserError):
    """A run file cannot be written: the disk is full, the folder read-only, or permission is denied."""

    exit_code = EXIT_OUTPUT


class Terminated(KeyboardInterrupt):
    """SIGTERM (sent by ``kill``, SLURM, container runtimes), handled like Ctrl-C but recorded apart."""


def stop_status(err: BaseException) -> str:
    """The ``summary.json`` status of a run ended by ``err``: terminated (SIGTERM), interrupted (Ctrl-C) or failed."""
    return "terminated" if isinstance(err, Terminated) else "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
