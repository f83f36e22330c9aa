import math

import pytest
import torch

from conftest import new_dir, run_interrupted_then_resumed, settings
from mnistlab import runfiles, train
from mnistlab.data import prepare
from mnistlab.engine import Trainer, evaluate
from mnistlab.errors import CheckpointError
from mnistlab.models import MLP, LeNet5
from mnistlab.runfiles import load_checkpoint
from mnistlab.schedules import constant, onecycle
from mnistlab.settings import RegularizationSettings


def make_trainer(data, run_dir, model=None, lr=0.05, regularization=None, **trainer):
    model = model or MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    trainer = {"batch_size": 64, "epochs": 2, **trainer}
    steps = math.ceil(len(data.train) / trainer["batch_size"])
    scheduler = onecycle(optimizer, total_steps=steps * trainer["epochs"], steps_per_epoch=steps)
    return Trainer(
        model, optimizer, scheduler, data, settings(regularization=regularization, **trainer), run_dir, identity={"model._target_": "MLP"}
    )


def test_fit_writes_metrics_and_a_weights_only_checkpoint(tiny_data, tmp_path):
    result = make_trainer(tiny_data, tmp_path).fit()
    assert result.status == "completed" and len(result.history) == 2
    rows = runfiles.read_metrics(tmp_path / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert set(rows[0]) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds"}
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and "model" in state and "optimizer" in state


def test_divergence_stops_the_run(tiny_data, tmp_path):
    result = make_trainer(tiny_data, tmp_path, lr=1e12).fit()
    assert result.status == "diverged" and result.history == []


def test_resume_without_checkpoint_is_explained(tiny_data, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        make_trainer(tiny_data, tmp_path).resume()


def test_resume_with_another_models_checkpoint_is_refused(tiny_data, tmp_path):
    make_trainer(tiny_data, tmp_path, epochs=1).fit()
    other = make_trainer(tiny_data, tmp_path, model=LeNet5())
    other.identity = {"model._target_": "LeNet5"}
    with pytest.raises(CheckpointError, match=r"was trained with other settings \(model._target_: MLP -> LeNet5\)"):
        other.resume()


def test_corrupt_checkpoint_is_explained(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "checkpoint.pt")


def test_keep_best_restores_the_best_validation_epoch(tiny_data, tmp_path):
    tiny_data.val = tiny_data.test
    trainer = make_trainer(tiny_data, tmp_path, epochs=3, regularization=RegularizationSettings(keep_best=True))
    result = trainer.fit()
    best = max(result.history, key=lambda r: r["val_acc"])
    assert result.fields["selected_epoch"] == best["epoch"]
    assert evaluate(trainer.model, tiny_data.val).values["acc"] == pytest.approx(best["val_acc"])


def test_label_smoothing_raises_the_loss_of_confident_predictions():
    logits = torch.tensor([[10.0, 0, 0]])
    target = torch.tensor([0])
    plain = torch.nn.functional.cross_entropy(logits, target)
    smooth = torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1)
    assert smooth > plain
    expected = -(0.9 + 0.1 / 3) * torch.log_softmax(logits, 1)[0, 0] - (0.1 / 3) * torch.log_softmax(logits, 1)[0, 1:].sum()
    assert smooth.item() == pytest.approx(expected.item(), rel=1e-5)


def test_constant_schedule_keeps_lr():
    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.3)
    sched = constant(opt, 10, 5)
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.3


def test_interrupted_then_resumed_run_equals_uninterrupted(make_cfg, tmp_path, monkeypatch):
    overrides = ["model=mlp", "trainer.epochs=2", "trainer.limit_batches=40", "trainer.plots=false", "seed=3", "regularization.dropout=0.1"]
    full = train.run(make_cfg(*overrides), new_dir(tmp_path / "full"))
    assert full["status"] == "completed"

    stopped, resumed = run_interrupted_then_resumed(make_cfg, overrides, tmp_path / "resumed", monkeypatch)
    assert stopped["status"] == "interrupted" and stopped["epochs_run"] == 1
    assert resumed["status"] == "completed"

    a = runfiles.read_metrics(tmp_path / "full" / "metrics.csv")
    b = runfiles.read_metrics(tmp_path / "resumed" / "metrics.csv")
    assert len(a) == len(b) == 2
    for row_a, row_b in zip(a, b, strict=True):
        for key in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"):
            assert row_a[key] == pytest.approx(row_b[key], rel=1e-6, abs=1e-9), key


def test_one_epoch_of_lenet5_on_real_mnist(mnist, tmp_path):
    torch.manual_seed(0)
    data = prepare(mnist, "cpu")
    model = LeNet5()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    steps = math.ceil(60_000 / 128)
    trainer = Trainer(model, optimizer, onecycle(optimizer, steps, steps), data, settings(epochs=1, batch_size=128), tmp_path)
    result = trainer.fit()
    assert result.status == "completed"
    assert result.history[0]["test_acc"] >= 97.0


def test_regularization_all_on_real_mnist_after_one_epoch(make_cfg, tmp_path):
    overrides = ("regularization=all", "trainer.epochs=1", "trainer.limit_batches=150", "trainer.plots=false", "trainer.checkpoint=false")
    summary = train.run(make_cfg(*overrides), tmp_path)
    assert summary["status"] == "completed" and summary["final_test_acc"] >= 95.0


def test_limit_batches_trains_that_many_batches_and_completes_the_schedule(tiny_data, tmp_path):
    trainer = make_trainer(tiny_data, tmp_path, epochs=2, limit_batches=2, batch_size=32)
    steps = []
    original = trainer.train_step
    trainer.train_step = lambda x, y: steps.append(len(y)) or original(x, y)
    result = trainer.fit()
    assert result.status == "completed" and steps == [32] * 4
    assert trainer.scheduler.last_epoch == 4


def test_limit_batches_scales_the_schedule_of_a_cli_run(make_cfg, tmp_path):
    summary = train.run(make_cfg("model=mlp", "trainer.epochs=2", "trainer.limit_batches=3", "trainer.plots=false"), tmp_path)
    rows = runfiles.read_metrics(tmp_path / "metrics.csv")
    assert summary["status"] == "completed" and [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["lr"] > rows[0]["lr"]  # one-cycle warm-up spans the 6 steps run, not 2 full epochs


def test_early_stopping_stops_after_patience_without_improvement(tiny_data, tmp_path):
    tiny_data.val = tiny_data.test
    result = make_trainer(tiny_data, tmp_path, lr=0.0, epochs=10, regularization=RegularizationSettings(early_stopping_patience=2)).fit()
    assert result.fields["stopped_early"] and len(result.history) == 3  # epoch 1 sets the best; 2 and 3 do not improve


def test_target_accuracy_stops_the_run_and_records_the_time(tiny_data, tmp_path):
    result = make_trainer(tiny_data, tmp_path, epochs=5, target_acc=0.0).fit()
    assert len(result.history) == 1 and result.fields["time_to_target"] == pytest.approx(result.seconds)


def test_a_small_lr_is_logged_readably_and_kept_exactly(tiny_data, tmp_path, caplog):
    model = MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=4.2e-05)
    trainer = Trainer(model, optimizer, constant(optimizer, 4, 4), tiny_data, settings(epochs=1, batch_size=64), tmp_path)
    with caplog.at_level("INFO", logger="mnistlab"):
        trainer.fit()
    assert any("lr=4.2e-05" in record.getMessage() for record in caplog.records)  # not lr=0.0000
    assert runfiles.read_metrics(tmp_path / "metrics.csv")[0]["lr"] == 4.2e-05
