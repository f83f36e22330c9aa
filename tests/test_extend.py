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


@pytest.mark.parametrize(
    ("node", "interval"),
    [
        ({"_target_": "torch.optim.lr_scheduler.ExponentialLR", "gamma": 0.5}, "epoch"),
        ({"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 2}, "epoch"),
        ({"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "T_max": 3}, "epoch"),
        ({"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "patience": 0}, "epoch"),
        ({"_target_": "torch.optim.lr_scheduler.OneCycleLR", "max_lr": 0.1}, "step"),
        ({"_target_": "mnistlab.training.schedules.onecycle"}, "step"),
        ({"_target_": "mnistlab.training.schedules.step", "step_epochs": 1, "interval": "epoch"}, "epoch"),
    ],
)
def test_any_torch_scheduler_and_ours_get_the_run_length_they_take(node, interval):
    """No ``_partial_`` needed; ``total_steps`` counts the steps the scheduler will take, per batch or per epoch."""
    scheduler, got = scheduler_for(node)
    assert got == interval
    if hasattr(scheduler, "total_steps"):
        assert scheduler.total_steps == (30 if interval == "step" else 3)


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
    trainer = Trainer(model, optimizer, scheduler, tiny_data, settings(epochs=4, batch_size=64), LOSS, scheduler_interval=interval)
    assert [row["lr"] for row in trainer.fit().history] == pytest.approx([1e-4, 1e-4, 5e-5, 2.5e-5])  # halved after each flat epoch


def test_a_bad_scheduler_interval_names_the_key(make_cfg):
    with pytest.raises(ConfigError, match="scheduler.interval must be one of step, epoch, got 'batch'"):
        check(make_cfg("+scheduler.interval=batch"))
    check(make_cfg("+scheduler.interval=epoch"))
