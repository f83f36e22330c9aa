"""Every extension point keeps its promise: a metric's pass starts fresh, torchmetrics works as is, a callback owns its
settings and says what it needs, the weights a run reports are the weights it keeps, each part is built once, a
callback's fields and statuses reach the report, and every mistake is one line."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
import torch

from conftest import COUNTING, frozen_trainer, make_folder, run_cli, write
from mnistlab import api
from mnistlab.config import check
from mnistlab.data import Idx
from mnistlab.errors import ConfigError
from mnistlab.runs.assemble import Parts
from mnistlab.training import Metric
from mnistlab.training.callbacks import ChanceLevel
from mnistlab.training.evaluation import evaluate
from mnistlab.training.metrics import with_built_in

FAST = ("model=mlp", "trainer.epochs=2", "trainer.limit_batches=5", "run.plots=false")


class Correct(Metric):
    """Written to the documented interface only: update() and compute(), state set up in __init__, no reset()."""

    name, label = "correct", "correct"

    def __init__(self):
        self.hits = 0

    def update(self, logits, labels):
        self.hits += int((logits.argmax(1) == labels).sum())

    def compute(self):
        return float(self.hits)


def test_a_metric_without_reset_starts_every_pass_afresh(tiny_data):
    """Two splits, three passes: each counts its own split's correct answers, never the passes before."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    metrics = with_built_in({"correct": Correct()})
    truth = {
        name: float((model(split.images).argmax(1) == split.labels).sum())
        for name, split in (("test", tiny_data.test), ("train", tiny_data.train))
    }
    for name, split in (("test", tiny_data.test), ("train", tiny_data.train), ("test", tiny_data.test)):
        assert evaluate(model, split.images, split.labels, metrics).values["correct"] == truth[name]
    assert metrics[-1].prototype.hits == 0  # the metric as built is never updated itself


def test_any_torchmetrics_metric_works_as_a_metric_entry_with_its_direction(tmp_path):
    pytest.importorskip("torchmetrics")
    conf = write(
        tmp_path / "conf",
        {
            "metric/calibration.yaml": """\
                # @package metric.calibration
                _target_: torchmetrics.classification.MulticlassCalibrationError
                num_classes: 10
                """
        },
    )
    result = api.train(api.compose(*FAST, "metric=calibration", config_dir=conf), tmp_path / "run")
    assert result.summary["metrics"]["calibration"]["higher_is_better"] is False
    rows = result.metrics
    assert 0 < rows["test_calibration"].iloc[-1] < 1 and result.summary["final_test_calibration"] == pytest.approx(
        rows["test_calibration"].iloc[-1]
    )


@pytest.fixture
def counting(tmp_path, monkeypatch):
    """A model and a callback of a user's own that count their constructions, in a config folder."""
    monkeypatch.syspath_prepend(str(write(tmp_path / "code", {"counting.py": COUNTING})))
    conf = write(
        tmp_path / "conf",
        {
            "model/counted.yaml": """\
                _target_: counting.CountedMLP
                in_channels: ${data.channels}
                num_classes: ${data.num_classes}
                """,
            "callback/first.yaml": """\
                # @package callback.first
                _target_: counting.FirstEpoch
                """,
        },
    )
    import counting

    counting.BUILT.update(model=0, callback=0)
    return conf, counting


def test_each_part_is_built_once_and_the_weights_a_run_reports_are_the_weights_it_keeps(tmp_path, counting):
    conf, module = counting
    result = api.train(
        api.compose("model=counted", "callback=first", "trainer.epochs=3", "trainer.limit_batches=20", config_dir=conf), tmp_path / "run"
    )
    assert module.BUILT == {"model": 1, "callback": 1}
    summary = result.summary
    assert summary["weights"] == {"from": "first", "epoch": 1}
    assert summary["final_test_acc"] == result.metrics["test_acc"].iloc[0] != result.metrics["test_acc"].iloc[-1]
    loaded = api.load(tmp_path / "run")
    assert loaded.epoch == 1
    test = Idx().load()
    images = loaded.dataset.normalize(test.test_images)
    assert evaluate(loaded.model, images, test.test_labels).values["acc"] == pytest.approx(summary["final_test_acc"])


def test_a_callback_that_needs_a_validation_split_is_refused_before_the_data_are_read(make_cfg, monkeypatch):
    def never(self):
        raise AssertionError("the data were read")

    monkeypatch.setattr(Idx, "read", never)
    with pytest.raises(ConfigError, match=r"callback.early_stopping reads val_acc, which needs a validation split: set data.val_size"):
        Parts(check(make_cfg("callback.early_stopping.patience=3")))


def test_a_short_run_at_chance_is_not_judged_and_says_so(tiny_data, caplog):
    with caplog.at_level(logging.INFO):
        result = frozen_trainer(tiny_data, ChanceLevel(min_steps=1000), epochs=2).fit()
    assert result.status == "completed"
    assert any("fewer than callback.chance_level.min_steps=1000: it is not judged" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("regularization.dropuot=0.2", "mnistlab: regularization.dropuot is not a setting (did you mean regularization.dropout?)"),
        ("model.activaton=tanh", "mnistlab: model.activaton is not a setting (did you mean model.activation?)"),
        ("regularisation=dropout", "mnistlab: regularisation is not a setting (did you mean regularization?)"),
        (
            "regularization=dropuot",
            "mnistlab: regularization=dropuot: no such option (did you mean regularization=dropout?); regularization has: all,",
        ),
        ("metric=top3", "mnistlab: metric=top3: the metric group has no option 'top3' here; add yours as metric/top3.yaml"),
        ("trainer.epochs=abc", "mnistlab: trainer.epochs: Value 'abc' of type 'str' could not be converted to Integer"),
        ("trainer.resume=true", "mnistlab: trainer.resume has moved: use run.resume=true"),
        ("x=[1,2", "mnistlab: cannot read an override: no viable alternative at input '[1,2'"),
    ],
)
def test_every_mistake_on_the_command_line_is_one_line_exit_2_and_leaves_nothing(tmp_path, argument, message):
    for multirun in ((), ("-m",)):
        proc = run_cli(*multirun, argument, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
        assert proc.returncode == 2 and proc.stderr.startswith(message), proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "+" not in proc.stderr.split(":", 1)[1].split("(")[0]
        assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()


USERS_CALLBACK = """\
    from mnistlab.training import Callback, Column


    class Watch(Callback):
        \"\"\"A field of its own in the summary, and on seed 1 a stop with a status of its own.\"\"\"

        def __init__(self, stop_on_seed=None):
            self.stop_on_seed, self.epochs = stop_on_seed, 0

        def on_epoch_end(self, trainer, row):
            self.epochs += 1
            if trainer.generator.initial_seed() == self.stop_on_seed:
                trainer.stop("watched a spike", status="unstable")

        def fields(self):
            return {"watched_epochs": Column("epochs watched", higher_is_better=None, digits=0)}

        def summary(self):
            return {"watched_epochs": self.epochs}
    """


def test_a_callbacks_own_field_and_status_reach_the_summary_the_sweep_report_and_the_exit_code(tmp_path):
    code = write(tmp_path / "code", {"watch.py": USERS_CALLBACK})
    conf = write(tmp_path / "conf", {"callback/watch.yaml": "# @package callback.watch\n_target_: watch.Watch\nstop_on_seed: null\n"})
    env = {"PYTHONPATH": str(code)}
    single = run_cli(
        "--config-dir", str(conf), *FAST, "callback=watch", "callback.watch.stop_on_seed=0", f"hydra.run.dir={tmp_path / 'run'}", env=env
    )
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert single.returncode == 6 and summary["status"] == "unstable" and summary["stop_reason"] == "watched a spike"
    assert summary["stopped_by"] == "watch"
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "-m",
        "--config-dir",
        str(conf),
        *FAST,
        "callback=watch",
        "callback.watch.stop_on_seed=1",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
        env=env,
    )
    assert proc.returncode == 5, proc.stderr[-2000:]  # the unstable job has no result: the report lists it
    table = pd.read_csv(sweep / "summary.csv").set_index("seed")
    assert table.loc[0, "watched_epochs"] == 2 and table.loc[1, "status"] == "unstable"
    report = (sweep / "report.md").read_text()
    assert "epochs watched" in report and "unstable: watched a spike" in report


def test_a_run_on_a_relative_folder_is_evaluated_from_any_directory(tmp_path):
    make_folder(tmp_path / "work" / "shades")
    run = tmp_path / "work" / "run"
    proc = run_cli("data=folder", "data.root=shades", "model=mlp", "trainer.epochs=1", "trainer.batch_size=16", "run.plots=false",
                   f"hydra.run.dir={run}", cwd=tmp_path / "work")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "work" / "run" / ".hydra" / "config.yaml").read_text().count(str(tmp_path / "work" / "shades")) == 1
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    scored = run_cli(str(run), script="mnistlab-eval", cwd=elsewhere)
    assert scored.returncode == 0 and "test set: accuracy" in scored.stdout, scored.stderr[-2000:]
    moved = tmp_path / "moved"
    (tmp_path / "work" / "shades").rename(moved)
    assert run_cli(str(run), script="mnistlab-eval", cwd=elsewhere).returncode == 2  # the data moved: one line, exit 2
    again = run_cli(str(run), "--data-root", str(moved), script="mnistlab-eval", cwd=elsewhere)
    assert again.returncode == 0, again.stderr[-2000:]
