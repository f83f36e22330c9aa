"""Your own model, optimizer and scheduler without forking: examples/ through a sweep and its report; any torch scheduler."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from conftest import ROOT, run_cli, settings
from mnistlab.config import check
from mnistlab.errors import ConfigError
from mnistlab.models import MLP
from mnistlab.runs.assemble import make_scheduler
from mnistlab.training.trainer import Trainer

EXAMPLES = ROOT / "examples"
LOSS = torch.nn.CrossEntropyLoss()


def test_regularization_a_model_does_not_read_is_refused(tmp_path):
    proc = run_cli(
        "--config-dir",
        str(EXAMPLES / "conf"),
        "model=small_cnn",
        "regularization=all",
        f"hydra.run.dir={tmp_path / 'run'}",
        env={"PYTHONPATH": str(EXAMPLES)},
    )
    assert proc.returncode == 2 and "regularization.batch_norm=True would have no effect" in proc.stdout + proc.stderr
    assert not (tmp_path / "run" / "metrics.csv").exists()


def scheduler_for(node: dict, epochs: int = 3, steps_per_epoch: int = 10):
    optimizer = torch.optim.SGD(MLP().parameters(), lr=0.1)
    return make_scheduler(OmegaConf.create(node), optimizer, epochs, steps_per_epoch)


def lrs(scheduler, interval: str, epochs: int = 3, steps_per_epoch: int = 10) -> list[float]:
    """The learning rate at the start of each epoch, the scheduler stepped as the trainer steps it."""
    optimizer, out = scheduler.optimizer, []
    for _ in range(epochs):
        out.append(optimizer.param_groups[0]["lr"])
        for _ in range(steps_per_epoch if interval == "step" else 1):
            optimizer.step()  # no gradients: changes nothing, but is the order torch expects
            scheduler.step(*([1.0] if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) else []))
    return out


@pytest.mark.parametrize(
    ("node", "interval", "expected"),
    [
        ({"_target_": "torch.optim.lr_scheduler.ExponentialLR", "gamma": 0.5}, "epoch", [0.1, 0.05, 0.025]),
        ({"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 2}, "epoch", [0.1, 0.1, 0.01]),
        ({"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "T_max": 3}, "epoch", [0.1, 0.075, 0.025]),
        ({"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "patience": 0}, "epoch", [0.1, 0.1, 0.01]),
        ({"_target_": "mnistlab.training.schedules.step", "step_epochs": 1, "interval": "epoch"}, "epoch", [0.1, 0.01, 0.001]),
    ],
)
def test_any_torch_scheduler_and_ours_get_the_run_length_they_take(node, interval, expected):
    """No ``_partial_`` needed; a per-epoch scheduler's length counts epochs (ours: ``steps_per_epoch`` is 1 step)."""
    scheduler, got = scheduler_for(node)
    assert got == interval and lrs(scheduler, interval) == pytest.approx(expected)


@pytest.mark.parametrize("target", ["torch.optim.lr_scheduler.OneCycleLR", "mnistlab.training.schedules.onecycle"])
def test_a_per_step_scheduler_spans_exactly_the_steps_of_the_run(target):
    node = {"_target_": target} | ({"max_lr": 0.1} if "OneCycleLR" in target else {})
    scheduler, interval = scheduler_for(node)
    assert interval == "step" and scheduler.total_steps == 30
    for _ in range(30):
        scheduler.optimizer.step()
        scheduler.step()
    with pytest.raises(ValueError):  # a 31st step is past the end of the cycle
        scheduler.step()


def test_per_epoch_schedulers_step_after_each_epoch(tiny_data):
    model = MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler, interval = make_scheduler(
        OmegaConf.create({"_target_": "torch.optim.lr_scheduler.ExponentialLR", "gamma": 0.5}), optimizer, 3, 4
    )
    trainer = Trainer(model, optimizer, scheduler, tiny_data, settings(epochs=3, batch_size=64), LOSS, scheduler_interval=interval)
    assert [row["lr"] for row in trainer.fit().history] == pytest.approx([0.1, 0.05, 0.025])


def test_reduce_on_plateau_watches_the_training_loss_without_a_validation_split(tiny_data):
    model = MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)  # learns too slowly to improve the loss by the 50% threshold
    node = OmegaConf.create({"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "patience": 0, "factor": 0.5, "threshold": 0.5})
    scheduler, interval = make_scheduler(node, optimizer, 4, 4)
    seen, original = [], scheduler.step
    scheduler.step = lambda metric: seen.append(metric) or original(metric)
    trainer = Trainer(model, optimizer, scheduler, tiny_data, settings(epochs=4, batch_size=64), LOSS, scheduler_interval=interval)
    history = trainer.fit().history
    assert seen == [row["train_loss"] for row in history]  # never the test loss: the test set does not steer training
    tiny_data.val = type(tiny_data.test)(tiny_data.test.images.clone(), tiny_data.test.labels.clone())
    scheduler, interval = make_scheduler(node, torch.optim.SGD(MLP().parameters(), lr=1e-4), 2, 4)
    seen, original = [], scheduler.step
    scheduler.step = lambda metric: seen.append(metric) or original(metric)
    history = (
        Trainer(MLP(), scheduler.optimizer, scheduler, tiny_data, settings(epochs=2, batch_size=64), LOSS, scheduler_interval=interval)
        .fit()
        .history
    )
    assert seen == [row["val_loss"] for row in history]  # with a validation split, its loss


def test_a_bad_scheduler_interval_names_the_key(make_cfg):
    with pytest.raises(ConfigError, match="scheduler.interval must be one of step, epoch, got 'batch'"):
        check(make_cfg("+scheduler.interval=batch"))
    check(make_cfg("+scheduler.interval=epoch"))
