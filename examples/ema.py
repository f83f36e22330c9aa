"""An exponential moving average of the weights as a callback, evaluated every epoch and kept in checkpoints."""

from __future__ import annotations

from typing import Any

from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from mnistlab.training import Callback, Column, Weights


class EMA(Callback):
    """Averages the weights (and batch-norm statistics) after every step with ``decay``; adds the average's test
    metrics to each epoch's row (``ema_test_acc``, ...); with ``finish_with_average``, the run finishes with the
    average (the summary, the checkpoint and mnistlab-eval then use it). Its state is checkpointed, so a resumed run
    equals an uninterrupted one."""

    def __init__(self, decay: float = 0.999, finish_with_average: bool = False):
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay, self.finish_with_average, self.average, self.restored = decay, finish_with_average, None, None

    def on_fit_start(self, trainer: Any) -> None:
        self.average = AveragedModel(trainer.model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)
        if self.restored is not None:
            self.average.load_state_dict(self.restored)

    def on_step_end(self, trainer: Any) -> None:
        self.average.update_parameters(trainer.model)

    def on_epoch_end(self, trainer: Any, row: dict[str, Any]) -> None:
        row |= {f"ema_test_{name}": value for name, value in trainer.evaluate(self.average.module, trainer.data.test).items()}

    def final_weights(self, trainer: Any) -> Weights | None:
        if not self.finish_with_average or self.average is None:
            return None
        return Weights(self.average.module.state_dict(), trainer.epoch)

    def columns(self, trainer: Any) -> dict[str, Column]:
        """The average's test metrics, each shown and tested in the sweep report like the metric it repeats."""
        return {
            f"ema_test_{m.name}": Column(f"EMA test {m.label or m.name}", m.higher_is_better, m.digits, tested=True)
            for m in trainer.metrics
        }

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average.state_dict() if self.average is not None else self.restored}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.restored = state["average"]
