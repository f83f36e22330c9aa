"""The project's own error types: each means bad input (a setting, a data file, a checkpoint), never a bug."""


class UserError(Exception):
    """Bad input: reported as one line, with the bad-input exit code."""


class ConfigError(UserError):
    """A setting is out of range or inconsistent; the message names the key."""


class DataError(UserError):
    """The dataset files are missing, unreadable, truncated or corrupt."""


class CheckpointError(UserError):
    """A checkpoint is missing or does not fit the configured run."""
