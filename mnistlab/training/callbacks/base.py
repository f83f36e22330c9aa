"""The callback hooks: code that runs at fixed points of training, with state that checkpoints carry.

Subclass :class:`Callback` and override the hooks you need. What a hook may read and call on the trainer it
gets is the API listed in docs/extending.md (``trainer.model``, ``.optimizer``, ``.data``, ``.epoch``,
``.step``, ``.history``, ``.stop()``, ``.evaluate()``, ...). The hooks, in the order they run:

- ``on_fit_start(trainer)``: before the first epoch trained by this process (after a resume restored state);
- ``on_before_optimizer_step(trainer)``: every step, after ``backward()`` and before ``optimizer.step()``: the
  gradients of this batch are in ``p.grad`` and may be read or changed (clipped, logged);
- ``on_step_end(trainer)``: after every optimizer update (the scheduler has stepped);
- ``on_epoch_end(trainer, row)``: after an epoch is evaluated, before it is checkpointed and written; add
  columns to ``row`` (its metrics.csv row), or call ``trainer.stop(reason)`` to end training after this epoch;
- ``on_fit_end(trainer, status)``: once, however the fit ended (``completed``, ``diverged``, ...);
- ``final_weights(trainer)``: after a completed fit, the weights the run finishes with instead of the last step's
  (keep-best's best epoch, an average), or None: the one seam that replaces them, so that the summary, the
  checkpoint and every command that loads the run use the same weights.

What it declares: ``needs()``, the columns of each row its hooks read (``val_acc``: a validation split is needed,
checked before the data are read); ``columns(trainer)``, the columns it adds to ``row``, each a
:class:`~mnistlab.training.metrics.Column`; ``fields()``, the summary fields of ``summary()`` that the sweep report
shows, each a Column; ``state_dict()`` / ``load_state_dict(state)``: what a checkpoint keeps, so that a resumed run
continues exactly where it stopped. ``trainer.stop(reason, status)`` ends training after this epoch, with a status
of its own if given (docs/reliability.md gives its exit code).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from mnistlab.training.metrics import Column
    from mnistlab.training.trainer import Trainer


@dataclass(frozen=True)
class Weights:
    """Weights a callback gives the run to finish with: a model state_dict and the epoch they stand for."""

    state: dict[str, torch.Tensor]
    epoch: int


class Callback:
    """The hooks; each does nothing until overridden."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_before_optimizer_step(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer) -> None: ...

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None: ...

    def on_fit_end(self, trainer: Trainer, status: str) -> None: ...

    def final_weights(self, trainer: Trainer) -> Weights | None:
        """After a completed fit: the weights to finish with, or None to keep the model's."""
        return None

    def needs(self) -> Sequence[str]:
        """The columns of each row the hooks read (``["val_acc"]``), checked before the data are read."""
        return ()

    def columns(self, trainer: Trainer) -> dict[str, Column]:
        """The columns :meth:`on_epoch_end` adds to each row, declared; an undeclared column is only shown."""
        return {}

    def fields(self) -> dict[str, Column]:
        """The fields of :meth:`summary` the sweep report shows (summary.csv, report.md), declared."""
        return {}

    def summary(self) -> dict[str, Any]:
        """Fields for summary.json."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def overrides(callback: Callback, hook: str) -> bool:
    """Whether ``callback`` implements ``hook`` (the trainer calls per-step hooks only on those that do)."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)
