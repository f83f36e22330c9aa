"""Training one model: the loop, and the parts it calls each step or epoch (callbacks, metrics, batch techniques,
schedules), with the device and speed policy. Nothing here reads a config or writes a file."""

from mnistlab.training.callbacks import Callback, Weights
from mnistlab.training.metrics import Column, Metric
from mnistlab.training.rows import FitResult
from mnistlab.training.trainer import Trainer

__all__ = ["Callback", "Column", "FitResult", "Metric", "Trainer", "Weights"]
