"""A run that learned nothing ends as such, and a small training split trains as many steps as a large one."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from conftest import frozen_trainer, run_cli, settings
from mnistlab.data.batches import Split, epoch_batches, steps_per_epoch
from mnistlab.models import MLP
from mnistlab.training.callbacks import ChanceLevel
from mnistlab.training.schedules import constant
from mnistlab.training.trainer import Trainer


def test_a_small_split_repeats_its_passes_until_an_epoch_has_its_steps():
    assert steps_per_epoch(60_000, 128, None, 100) == 469  # MNIST: one pass, as before
    assert steps_per_epoch(600, 128, None, 100) == 100 and steps_per_epoch(600, 128, 20, 100) == 20  # limit_batches wins
    assert steps_per_epoch(600, 128, None, None) == 5
    tagged = Split(torch.arange(256).float().view(256, 1, 1, 1), torch.arange(256))
    seen = [y for _, y in epoch_batches(tagged, 64, torch.Generator().manual_seed(0), 10)]
    assert len(seen) == 10
    for start in (0, 4):  # each pass of 4 batches is a fresh permutation of every image
        assert sorted(torch.cat(seen[start : start + 4]).tolist()) == list(range(256))
    assert not torch.equal(torch.cat(seen[0:4]), torch.cat(seen[4:8]))
    last = [y for _, y in epoch_batches(tagged, 100, torch.Generator().manual_seed(0), 3)]  # a pass whose last batch is short
    assert [len(y) for y in last] == [100, 100, 56] and sorted(torch.cat(last).tolist()) == list(range(256))


def test_a_folder_clips_its_gradients_by_default_and_a_user_can_turn_it_off(make_cfg):
    def clip(*overrides):
        return make_cfg(*overrides).callback.get("grad_clip")

    assert clip() is None  # MNIST, Fashion-MNIST and the digits train as they always did
    assert clip("data=folder", "data.root=x").max_norm == 1.0
    assert clip("data=folder", "data.root=x", "callback=grad_clip", "callback.grad_clip.max_norm=5").max_norm == 5
    assert clip("data=folder", "data.root=x", "~callback@callback.grad_clip") is None


def test_a_network_at_chance_with_a_flat_loss_stops_after_patience_epochs(tiny_data):
    result = frozen_trainer(tiny_data, ChanceLevel(patience=2, min_steps=0)).fit()
    assert result.status == "collapsed" and len(result.history) == 2
    assert result.stop["by"] == "chance_level"
    verdict = result.stop["reason"]
    assert verdict.startswith("training stayed at chance level for 2 epochs: loss ") and "(a uniform guess: ln 10 = 2.30)" in verdict
    assert verdict.endswith("the network learned nothing: lower optimizer.lr, or add callback=grad_clip")


def test_a_blow_up_before_a_flat_stretch_at_chance_does_not_hide_it(tiny_data):
    callback = ChanceLevel(patience=2, min_steps=0)
    trainer = frozen_trainer(tiny_data, callback)
    for epoch, loss in enumerate((5.1e9, 2.33, 2.329), start=1):  # lr=3 on MNIST: epoch 1 explodes, then ln 10
        trainer.epoch = epoch
        callback.on_epoch_end(trainer, {"train_loss": loss, "train_acc": 10.3})
        assert (trainer.stopped_as == "collapsed") == (epoch == 3)


def test_the_last_epoch_is_judged_and_a_short_run_is_not(tiny_data):
    assert frozen_trainer(tiny_data, ChanceLevel(patience=None, min_steps=0), epochs=2).fit().status == "collapsed"
    assert frozen_trainer(tiny_data, ChanceLevel(min_steps=1000), epochs=2).fit().status == "completed"  # 8 steps: not judged
    assert frozen_trainer(tiny_data, ChanceLevel(enabled=False, min_steps=0), epochs=2).fit().status == "completed"


def test_a_network_that_learns_is_never_at_chance(tiny_data):
    model = MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    callback = ChanceLevel(patience=1, min_steps=0)
    trainer = Trainer(
        model, optimizer, constant(optimizer, 1, 1), tiny_data, settings(epochs=8, batch_size=64), torch.nn.CrossEntropyLoss(),
        callbacks={"chance_level": callback},
    )  # fmt: skip
    result = trainer.fit()  # 256 random images with random labels: memorized, far above chance
    assert result.status == "completed" and result.history[-1]["train_acc"] > 50 and callback.verdict is None


def test_a_run_that_learned_nothing_ends_collapsed_with_exit_3_and_one_line(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(
        "optimizer.lr=3",
        "scheduler=none",
        "trainer.epochs=2",
        "trainer.limit_batches=60",
        "run.plots=false",
        f"hydra.run.dir={run_dir}",
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "collapsed: training stayed at chance level" in line]
    assert len(lines) == 1 and "lower optimizer.lr" in lines[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "collapsed" and summary["final_test_acc"] < 15 and summary["stop_reason"] in lines[0]


@pytest.mark.e2e
def test_a_sweep_lists_a_collapsed_job_and_never_averages_it(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "-m", "optimizer.lr=0.05,3", "scheduler=none", "trainer.epochs=2", "trainer.limit_batches=60", "run.plots=false",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert proc.returncode == 5, proc.stderr[-3000:]
    table = pd.read_csv(sweep / "summary.csv").set_index("optimizer.lr")
    assert table.loc[3.0, "status"] == "collapsed" and pd.isna(table.loc[3.0, "final_test_acc"])
    comparison = pd.read_csv(sweep / "comparison.csv").set_index("optimizer.lr")
    assert comparison.loc[3.0, "n"] == 0 and comparison.loc[3.0, "jobs"] == 1 and comparison.loc[0.05, "n"] == 1
    report = (sweep / "report.md").read_text()
    lines = [line for line in report.splitlines() if line.startswith("- job optimizer.lr=3 (")]
    assert len(lines) == 1 and "): collapsed: training stayed at chance level" in lines[0]
