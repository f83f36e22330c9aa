"""The training loop on tiny data: what each epoch records, divergence, callbacks and the API they see, resume."""

import math
import time

import pytest
import torch

from conftest import new_dir, run_interrupted_then_resumed, settings
from mnistlab.errors import CheckpointError, ConfigError
from mnistlab.models import MLP, LeNet5
from mnistlab.runs import files, resume, task
from mnistlab.runs.loggers import CsvLogger
from mnistlab.runs.recorder import EpochRecorder
from mnistlab.training import Callback, Column
from mnistlab.training.callbacks import EarlyStopping, GradClip, KeepBest, TargetAccuracy
from mnistlab.training.schedules import constant, onecycle
from mnistlab.training.trainer import Trainer


def make_trainer(data, run_dir=None, model=None, lr=0.05, callbacks=None, **trainer):
    model = model or MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    trainer = {"batch_size": 64, "epochs": 2, **trainer}
    steps = math.ceil(len(data.train) / trainer["batch_size"])
    scheduler = onecycle(optimizer, total_steps=steps * trainer["epochs"], steps_per_epoch=steps)
    record = EpochRecorder(run_dir, True, CsvLogger()) if run_dir is not None else None
    loss = torch.nn.CrossEntropyLoss()
    return Trainer(model, optimizer, scheduler, data, settings(**trainer), loss, callbacks=callbacks, record=record, run_dir=run_dir)


def test_each_epoch_writes_its_checkpoint_then_its_metrics_row(tiny_data, tmp_path, monkeypatch):
    from mnistlab.runs import recorder

    written = []
    for name, label in (("save_checkpoint", "checkpoint"), ("write_metrics", "metrics")):
        original = getattr(recorder, name)
        monkeypatch.setattr(recorder, name, lambda *a, _o=original, _l=label: written.append(_l) or _o(*a))
    result = make_trainer(tiny_data, tmp_path).fit()
    assert written == ["checkpoint", "metrics"] * 2
    assert result.status == "completed" and len(result.history) == 2
    rows = files.read_metrics(tmp_path / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert set(rows[0]) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds"}
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 8 and len(state["history"]) == 2 and "optimizer" in state


def test_resume_without_checkpoint_is_explained(tiny_data, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        resume.restore(make_trainer(tiny_data), tmp_path)


def test_a_checkpoint_that_does_not_fit_the_model_is_refused(tiny_data, tmp_path):
    make_trainer(tiny_data, tmp_path, epochs=1).fit()
    with pytest.raises(CheckpointError, match="does not fit this model/optimizer/callbacks"):
        resume.restore(make_trainer(tiny_data, model=LeNet5()), tmp_path)


def test_corrupt_checkpoint_is_explained(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        files.load_checkpoint(tmp_path / "checkpoint.pt")


def scripted(trainer: Trainer, split: str, accuracies: list[float]) -> Trainer:
    """Make ``split``'s accuracy of the trained model read ``accuracies[epoch - 1]`` in each epoch's evaluation."""
    original, data = trainer.evaluation, getattr(trainer.data, split)

    def evaluation(model, part):
        out = original(model, part)
        if part is data and model is trainer.model and trainer.epoch:
            out.values["acc"] = accuracies[trainer.epoch - 1]
        return out

    trainer.evaluation = evaluation
    return trainer


class Snapshots(Callback):
    """Each epoch's weights, as they were when the epoch ended."""

    def __init__(self):
        self.weights = {}

    def on_epoch_end(self, trainer, row):
        self.weights[trainer.epoch] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def with_val(data):
    data.val = type(data.test)(data.test.images.clone(), data.test.labels.clone())  # a split of its own
    return data


def test_keep_best_finishes_with_the_weights_of_the_best_validation_epoch(tiny_data):
    torch.manual_seed(0)
    snapshots = Snapshots()
    trainer = make_trainer(with_val(tiny_data), epochs=3, callbacks={"snapshots": snapshots, "keep_best": KeepBest(enabled=True)})
    result = scripted(trainer, "val", [20.0, 60.0, 30.0]).fit()
    assert result.weights == {"from": "keep_best", "epoch": 2} and trainer.finished_with == result.weights
    final = trainer.model.state_dict()
    assert all(torch.equal(final[k], snapshots.weights[2][k]) for k in final)
    assert not all(torch.equal(final[k], snapshots.weights[3][k]) for k in final)


def test_two_callbacks_that_both_give_the_final_weights_are_refused(tiny_data):
    trainer = make_trainer(with_val(tiny_data), epochs=1, callbacks={"a": KeepBest(enabled=True), "b": KeepBest(enabled=True)})
    with pytest.raises(ConfigError, match="callbacks a, b each give the weights to finish with"):
        trainer.fit()


def test_interrupted_then_resumed_run_equals_uninterrupted(make_cfg, tmp_path, monkeypatch):
    overrides = ["model=mlp", "trainer.epochs=2", "trainer.limit_batches=40", "run.plots=false", "seed=3", "regularization.dropout=0.1"]
    full = task.run(make_cfg(*overrides), new_dir(tmp_path / "full"))
    assert full["status"] == "completed"

    stopped, resumed = run_interrupted_then_resumed(make_cfg, overrides, tmp_path / "resumed", monkeypatch)
    assert stopped["status"] == "interrupted" and stopped["epochs_run"] == 1
    assert resumed["status"] == "completed"

    a = files.read_metrics(tmp_path / "full" / "metrics.csv")
    b = files.read_metrics(tmp_path / "resumed" / "metrics.csv")
    assert len(a) == len(b) == 2
    for row_a, row_b in zip(a, b, strict=True):
        for key in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"):
            assert row_a[key] == pytest.approx(row_b[key], rel=1e-6, abs=1e-9), key


def test_regularization_all_trains_on_real_mnist(make_cfg, tmp_path):
    """Augmentation, batch norm, label smoothing and weight decay together learn: 40 steps reach far above chance."""
    overrides = ("regularization=all", "trainer.epochs=1", "trainer.limit_batches=40", "run.plots=false", "run.checkpoint=false")
    summary = task.run(make_cfg(*overrides), tmp_path)
    assert summary["status"] == "completed" and summary["final_test_acc"] >= 80.0


def test_limit_batches_trains_that_many_batches_and_steps_the_scheduler_every_batch(tiny_data):
    trainer = make_trainer(tiny_data, epochs=2, limit_batches=2, batch_size=32)
    steps = []
    original = trainer.train_step
    trainer.train_step = lambda x, y: steps.append(len(y)) or original(x, y)
    result = trainer.fit()
    assert result.status == "completed" and steps == [32] * 4
    assert trainer.scheduler.last_epoch == 4 and trainer.step == 4


def test_limit_batches_scales_the_schedule_of_a_cli_run(make_cfg, tmp_path):
    summary = task.run(make_cfg("model=mlp", "trainer.epochs=2", "trainer.limit_batches=3", "run.plots=false"), tmp_path)
    rows = files.read_metrics(tmp_path / "metrics.csv")
    assert summary["status"] == "completed" and [r["epoch"] for r in rows] == [1, 2]
    scheduler = files.load_checkpoint(tmp_path / "checkpoint.pt")["scheduler"]
    assert scheduler["total_steps"] == 6 == scheduler["last_epoch"]  # the one-cycle spans the 6 steps run, not 2 full epochs


def test_early_stopping_stops_after_patience_epochs_without_a_better_validation_accuracy(tiny_data):
    """An improvement resets the patience: 50, 40, 60 (better), 55, 54: stopped after epoch 5, not 3."""
    trainer = make_trainer(with_val(tiny_data), epochs=10, callbacks={"early_stopping": EarlyStopping(2)})
    result = scripted(trainer, "val", [50.0, 40.0, 60.0, 55.0, 54.0, 70.0, 70.0, 70.0, 70.0, 70.0]).fit()
    assert len(result.history) == 5 and result.status == "completed"
    assert result.stop == {"by": "early_stopping", "reason": "early stopping: no better val_acc for 2 epochs"}


def test_early_stopping_follows_the_direction_of_the_metric_it_monitors(tiny_data):
    trainer = make_trainer(with_val(tiny_data), epochs=6, callbacks={"early_stopping": EarlyStopping(1, monitor="val_loss")})
    original = trainer.evaluation
    losses = iter([0.9, 0.5, 0.7, 0.1, 0.1, 0.1])  # lower is better: epoch 3 is worse than 2, so it stops there

    def evaluation(model, part):
        out = original(model, part)
        if part is trainer.data.val:
            out.values["loss"] = next(losses)
        return out

    trainer.evaluation = evaluation
    assert len(trainer.fit().history) == 3


def test_our_callbacks_do_nothing_unless_set(tiny_data):
    ours = {"early_stopping": EarlyStopping(None), "keep_best": KeepBest(False), "target": TargetAccuracy(None)}
    trainer = make_trainer(tiny_data, lr=0.0, epochs=4, callbacks=ours)
    result = trainer.fit()
    assert len(result.history) == 4 and result.fields == {} and result.weights is None and result.stop is None
    assert all(not callback.needs() for callback in ours.values())


def test_target_accuracy_stops_at_the_first_epoch_that_reaches_it_and_records_the_time(tiny_data):
    started = time.perf_counter()
    trainer = scripted(make_trainer(tiny_data, epochs=5, callbacks={"target": TargetAccuracy(25)}), "test", [10.0, 20.0, 30.0, 40.0, 50.0])
    result = trainer.fit()
    wall = time.perf_counter() - started
    assert len(result.history) == 3 and 0 < result.fields["time_to_target"] <= wall
    assert result.fields["time_to_target"] == pytest.approx(sum(row["seconds"] for row in result.history))
    unreached = scripted(
        make_trainer(tiny_data, epochs=5, callbacks={"target": TargetAccuracy(99)}), "test", [10.0, 20.0, 30.0, 40.0, 50.0]
    )
    result = unreached.fit()
    assert len(result.history) == 5 and result.fields == {"time_to_target": None}


def test_a_small_lr_is_logged_readably_and_kept_exactly(tiny_data, tmp_path, caplog):
    model = MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=4.2e-05)
    record = EpochRecorder(tmp_path, True, CsvLogger())
    loss = torch.nn.CrossEntropyLoss()
    trainer = Trainer(model, optimizer, constant(optimizer, 4, 4), tiny_data, settings(epochs=1, batch_size=64), loss, record=record)
    with caplog.at_level("INFO", logger="mnistlab"):
        trainer.fit()
    assert any("lr=4.2e-05" in record.getMessage() for record in caplog.records)  # not lr=0.0000
    assert files.read_metrics(tmp_path / "metrics.csv")[0]["lr"] == 4.2e-05


class Probe(Callback):
    """Checks, at every hook, what docs/extending.md says a callback may read."""

    def __init__(self):
        self.seen, self.steps_with_gradients, self.norms = [], 0, []

    def check(self, trainer, hook):
        self.seen.append(hook)
        assert isinstance(trainer.model, torch.nn.Module) and isinstance(trainer.optimizer, torch.optim.Optimizer)
        assert callable(trainer.loss) and trainer.scheduler is not None and trainer.settings.epochs == 2
        assert len(trainer.data.train) == 256 and len(trainer.data.test) == 64 and trainer.data.val is None
        assert [m.name for m in trainer.metrics] == ["loss", "acc"] and trainer.device.type == "cpu"
        assert isinstance(trainer.generator, torch.Generator) and trainer.steps_per_epoch == 4 and trainer.elapsed >= 0
        assert trainer.run_dir is None and callable(trainer.stop) and callable(trainer.evaluate)

    def on_fit_start(self, trainer):
        self.check(trainer, "fit_start")
        assert trainer.step == 0 and trainer.history == []

    def on_before_optimizer_step(self, trainer):
        self.check(trainer, "before_step")
        if all(p.grad is not None for p in trainer.model.parameters()):
            self.steps_with_gradients += 1
        self.norms.append(float(torch.nn.utils.get_total_norm([p.grad for p in trainer.model.parameters()])))

    def on_step_end(self, trainer):
        self.check(trainer, "step_end")
        assert trainer.step == self.seen.count("step_end")  # this step included

    def on_epoch_end(self, trainer, row):
        self.check(trainer, "epoch_end")
        assert row["epoch"] == trainer.epoch and trainer.step == 4 * trainer.epoch and len(trainer.history) == trainer.epoch - 1
        row["gradient_steps"] = self.steps_with_gradients

    def on_fit_end(self, trainer, status):
        self.check(trainer, "fit_end")
        assert status == "completed" and len(trainer.history) == 2

    def columns(self, trainer):
        return {"gradient_steps": Column("steps with gradients", None, 0, tested=False)}


def test_a_callback_sees_the_documented_trainer_at_every_hook_and_the_gradients_of_every_step(tiny_data):
    probe = Probe()
    trainer = make_trainer(tiny_data, callbacks={"probe": probe})
    result = trainer.fit()
    assert probe.seen.count("before_step") == probe.seen.count("step_end") == 8 == probe.steps_with_gradients
    assert [row["gradient_steps"] for row in result.history] == [4, 8]
    assert probe.seen[0] == "fit_start" and probe.seen[-1] == "fit_end"
    assert trainer.columns()["gradient_steps"] == Column("steps with gradients", None, 0, tested=False)


def test_gradient_clipping_bounds_every_steps_norm_and_logs_the_largest(tiny_data):
    probe = Probe()
    trainer = make_trainer(tiny_data, lr=0.5, callbacks={"grad_clip": GradClip(max_norm=0.05), "probe": probe})
    result = trainer.fit()
    assert len(probe.norms) == 8 and max(probe.norms) <= 0.05 * (1 + 1e-4)  # the probe runs after the clip, on each step
    assert all(row["grad_norm_max"] > 0.05 for row in result.history)  # the norms before clipping were larger
    assert trainer.columns()["grad_norm_max"].tested is False


def test_a_callback_may_add_columns_but_not_change_or_redeclare_one(tiny_data):
    class Overwrites(Callback):
        def on_epoch_end(self, trainer, row):
            row["test_acc"] = 100.0

    with pytest.raises(ValueError, match="callback cheat changed test_acc in the epoch's row"):
        make_trainer(tiny_data, callbacks={"cheat": Overwrites()}).fit()

    class Redeclares(Callback):
        def columns(self, trainer):
            return {"test_loss": Column("mine")}

    with pytest.raises(ConfigError, match="callback.mine declares the column 'test_loss', which the run already has"):
        make_trainer(tiny_data, callbacks={"mine": Redeclares()}).columns()

    class Dotted(Callback):
        def columns(self, trainer):
            return {"grad.norm": Column("norm")}

    with pytest.raises(ConfigError, match="column name 'grad.norm' must be lower-case letters"):
        make_trainer(tiny_data, callbacks={"dotted": Dotted()}).columns()
