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
- ``columns(trainer)``: the columns it adds to ``row``, each a :class:`~mnistlab.training.metrics.Column`
  (label, direction, tested or only shown); ``summary()``: fields for summary.json; ``state_dict()`` /
  ``load_state_dict(state)``: what a checkpoint keeps, so that a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mnistlab.training.metrics import Column
    from mnistlab.training.trainer import Trainer


class Callback:
    """The hooks; each does nothing until overridden."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_before_optimizer_step(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer) -> None: ...

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None: ...

    def on_fit_end(self, trainer: Trainer, status: str) -> None: ...

    def columns(self, trainer: Trainer) -> dict[str, Column]:
        """The columns :meth:`on_epoch_end` adds to each row, declared; an undeclared column is only shown."""
        return {}

    def summary(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def overrides(callback: Callback, hook: str) -> bool:
    """Whether ``callback`` implements ``hook`` (the trainer calls per-step hooks only on those that do)."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)
