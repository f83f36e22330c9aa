"""The logger group: TensorBoard and MLflow read back through their own readers; a failing logger never stops a run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import run_cli, settings
from mnistlab.config.identity import identity
from mnistlab.models import MLP
from mnistlab.runs import files
from mnistlab.runs.loggers import CsvLogger, GuardedLogger
from mnistlab.runs.recorder import EpochRecorder
from mnistlab.training.schedules import constant
from mnistlab.training.trainer import Trainer

FAST = ("model=mlp", "trainer.epochs=2", "trainer.limit_batches=20", "run.plots=false")


def test_tensorboard_holds_each_epochs_metrics_and_the_settings_as_hparams(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    proc = run_cli(*FAST, "logger=tensorboard", "optimizer.lr=0.03", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    for tag, column in (("acc/test", "test_acc"), ("loss/train", "train_loss"), ("lr", "lr")):
        assert [e.step for e in events.Scalars(tag)] == [1, 2]
        assert [e.value for e in events.Scalars(tag)] == pytest.approx(metrics[column].tolist(), rel=1e-6)
    start = plugin_data_pb2.HParamsPluginData.FromString(events.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["optimizer.lr"].number_value == pytest.approx(0.03) and hparams["model._target_"].string_value == "mnistlab.models.MLP"
    assert "trainer.device" not in hparams  # execution settings are not what a run trained
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert events.Scalars("hparams/final_test_acc")[0].value == pytest.approx(summary["final_test_acc"])


@pytest.mark.e2e
def test_an_mlflow_sweep_is_one_experiment_with_nested_runs(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *FAST, "seed=0,1", "logger=mlflow", f"logger.tracking_uri={uri}", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("sweep")  # named after the sweep directory
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and len(children) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert "report.md" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    for child in children:
        run_dir = child.data.tags["mnistlab.run_dir"]
        metrics = pd.read_csv(f"{run_dir}/metrics.csv")
        history = client.get_metric_history(child.info.run_id, "test_acc")
        assert [(m.step, m.value) for m in history] == list(zip(metrics["epoch"], metrics["test_acc"], strict=True))
        assert child.data.params["optimizer.lr"] == "0.05" and child.data.params["seed"] in ("0", "1")
        summary = files.read_summary(Path(run_dir))
        assert child.data.metrics["final_test_acc"] == pytest.approx(summary["final_test_acc"])
        assert {"summary.json", "metrics.csv"} <= {a.path for a in client.list_artifacts(child.info.run_id)}


class Broken(CsvLogger):
    def log_epoch(self, row):
        raise ConnectionError("tracking server unreachable")


def test_a_logger_that_fails_while_training_warns_once_and_the_run_completes(tiny_data, tmp_path, caplog):
    model = MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    logger = GuardedLogger(Broken())
    logger.start(tmp_path, {}, 1, None)
    record = EpochRecorder(tmp_path, False, logger)
    trainer = Trainer(
        model,
        optimizer,
        constant(optimizer, 4, 4),
        tiny_data,
        settings(epochs=3, batch_size=64),
        torch.nn.CrossEntropyLoss(),
        record=record,
    )
    with caplog.at_level(logging.WARNING, logger="mnistlab"):
        result = trainer.fit()
    assert result.status == "completed" and len(result.history) == 3
    assert [r.getMessage() for r in caplog.records].count(
        "Broken stopped logging (ConnectionError: tracking server unreachable); the run goes on, its own files are complete"
    ) == 1


def test_the_logger_is_not_part_of_what_a_run_trained(make_cfg):
    assert identity(make_cfg("logger=tensorboard")) == identity(make_cfg()) == identity(make_cfg("logger=mlflow"))


def test_every_column_and_result_reaches_the_loggers_by_its_name():
    from mnistlab.runs.loggers import results, scalar_name

    assert [scalar_name(c) for c in ("train_loss", "test_acc", "test_ece", "ema_test_acc", "lr", "seconds")] == [
        "loss/train",
        "acc/test",
        "ece/test",
        "acc/ema_test",
        "lr",
        "seconds",
    ]
    summary = {"final_test_ece": 0.01, "best_test_acc": 99.0, "final_ema_test_acc": 98.5, "seconds": 3, "stopped_early": False, "params": 5}
    assert results(summary) == {"final_test_ece": 0.01, "best_test_acc": 99.0, "final_ema_test_acc": 98.5, "seconds": 3.0}
