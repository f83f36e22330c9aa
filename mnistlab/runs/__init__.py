"""One run and its directory: the task function, the parts built from the config, the files it writes and
reads back, its lock, its loggers, and resuming it."""
