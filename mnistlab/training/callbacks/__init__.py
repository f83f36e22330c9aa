"""The ``callback`` group: the hooks a callback implements, and ours (early stopping, keep-best, target accuracy,
gradient clipping), each selected and configured from ``conf/callback/`` like a user's own."""

from mnistlab.training.callbacks.base import Callback
from mnistlab.training.callbacks.grad_clip import GradClip
from mnistlab.training.callbacks.selection import EarlyStopping, KeepBest
from mnistlab.training.callbacks.target_accuracy import TargetAccuracy

__all__ = ["Callback", "EarlyStopping", "GradClip", "KeepBest", "TargetAccuracy"]
