"""The ``callback`` group: the hooks a callback implements, and ours (early stopping, keep-best, target accuracy, the
chance-level check, gradient clipping, stopping after some epochs), each selected and configured from ``conf/callback/`` like a user's own."""

from mnistlab.training.callbacks.base import Callback, Weights
from mnistlab.training.callbacks.chance_level import ChanceLevel
from mnistlab.training.callbacks.grad_clip import GradClip
from mnistlab.training.callbacks.selection import EarlyStopping, KeepBest
from mnistlab.training.callbacks.stop_after import StopAfter
from mnistlab.training.callbacks.target_accuracy import TargetAccuracy

__all__ = ["Callback", "ChanceLevel", "EarlyStopping", "GradClip", "KeepBest", "StopAfter", "TargetAccuracy", "Weights"]
