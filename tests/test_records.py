"""A run's records never sit next to settings that did not produce them: resume, refused launches, relaunched sweeps."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import compose_config, new_dir, run_cli, run_interrupted_then_resumed
from mnistlab.errors import DataError, RunDirError
from mnistlab.runs import task
from mnistlab.runs.files import read_summary

FAST = ("model=mlp", "run.plots=false", "trainer.limit_batches=10", "trainer.batch_size=32")


def fingerprint(run_dir: Path) -> dict[str, str]:
    """The run's records, byte for byte (Hydra's log file aside, which every launch appends to)."""
    return {
        str(path.relative_to(run_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(run_dir.rglob("*"))
        if path.is_file() and path.suffix != ".log"
    }


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A 3-epoch MLP run stopped by Ctrl-C after epoch 1 (its checkpoint holds epoch 1)."""
    from _pytest.monkeypatch import MonkeyPatch
    from hydra.core.global_hydra import GlobalHydra

    run_dir = tmp_path_factory.mktemp("interrupted") / "run"
    with MonkeyPatch.context() as mp:
        stopped, _ = run_interrupted_then_resumed(compose_config, [*FAST, "trainer.epochs=3"], run_dir, mp, resume=False)
    GlobalHydra.instance().clear()
    assert stopped["status"] == "interrupted" and stopped["epochs_run"] == 1
    return run_dir


@pytest.mark.parametrize(
    "change,message",
    [
        ("optimizer.lr=0.5", "optimizer.lr: 0.05 -> 0.5"),
        ("trainer.epochs=5", "trainer.epochs: 3 -> 5"),
        ("regularization.dropout=0.2", "model.dropout: 0.0 -> 0.2; regularization.dropout: 0.0 -> 0.2"),
        ("scheduler=cosine", "scheduler._target_: mnistlab.training.schedules.onecycle -> mnistlab.training.schedules.cosine"),
        ("data.val_size=5000", "data.val_size: 0 -> 5000"),
        ("seed=7", "seed: 0 -> 7"),
        ("trainer.batch_size=64", "trainer.batch_size: 32 -> 64"),
        ("model=lenet5", "model._target_: mnistlab.models.MLP -> mnistlab.models.LeNet5"),
    ],
)
def test_resume_with_a_changed_setting_is_refused_naming_each_old_and_new_value(make_cfg, interrupted, change, message):
    before = fingerprint(interrupted)
    with pytest.raises(RunDirError, match="trained with other settings") as refused:
        task.run(make_cfg(*FAST, "trainer.epochs=3", change, "run.resume=true"), interrupted)
    assert message in str(refused.value)
    assert fingerprint(interrupted) == before


def test_a_resume_that_fails_before_training_leaves_the_records(make_cfg, interrupted):
    before = fingerprint(interrupted)
    with pytest.raises(DataError, match="MNIST files missing"):
        task.run(make_cfg(*FAST, "trainer.epochs=3", "data.root=/nowhere", "data.download=false", "run.resume=true"), interrupted)
    assert fingerprint(interrupted) == before


def test_execution_settings_may_differ_on_resume(make_cfg, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    stopped, resumed = run_interrupted_then_resumed(
        make_cfg, [*FAST, "trainer.epochs=2"], run_dir, monkeypatch, resume_with=["trainer.threads=1", "trainer.eval_batch_size=500"]
    )
    assert stopped["status"] == "interrupted" and resumed["status"] == "completed" and resumed["epochs_run"] == 2


@pytest.mark.e2e
def test_refused_and_failed_launches_leave_a_runs_records_as_they_were(tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli(*FAST[1:], "trainer.epochs=2", f"hydra.run.dir={run_dir}").returncode == 0  # LeNet-5
    before = fingerprint(run_dir)
    assert {".hydra/config.yaml", ".hydra/overrides.yaml", "summary.json", "metrics.csv", "checkpoint.pt"} <= set(before)
    for launch, message in [
        (["model=mlp", "run.resume=true"], "model._target_: mnistlab.models.LeNet5 -> mnistlab.models.MLP"),
        (["optimizer.lr=0"], "optimizer.lr must be > 0, got 0"),
        ([], "already holds a run (completed, 2 epochs); add run.resume=true"),
        (["+trainer.epoch=3", "run.resume=true"], "trainer.epoch is not a setting: nothing reads it (did you mean trainer.epochs?)"),
    ]:
        proc = run_cli(*FAST[1:], "trainer.epochs=2", *launch, f"hydra.run.dir={run_dir}")
        assert proc.returncode == 2 and message in proc.stdout + proc.stderr, (launch, proc.stdout[-2000:])
        assert fingerprint(run_dir) == before, launch
    assert read_summary(run_dir)["status"] == "completed"
    skipped = run_cli(*FAST[1:], "trainer.epochs=2", "run.resume=true", "trainer.threads=1", f"hydra.run.dir={run_dir}")
    assert skipped.returncode == 0 and "already completed; skipping" in skipped.stdout + skipped.stderr
    assert fingerprint(run_dir) == before
    assert yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) == [*FAST[1:], "trainer.epochs=2"]


def test_a_launch_that_failed_before_training_is_recorded_and_can_be_replaced(make_cfg, tmp_path, monkeypatch):
    """A bug before the launch is accepted is recorded (a sweep's report lists it); the next launch starts afresh."""
    from mnistlab.data import Idx

    run_dir = new_dir(tmp_path / "run")
    real = Idx.load
    monkeypatch.setattr(Idx, "load", lambda self: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        task.run(make_cfg(*FAST, "trainer.epochs=1"), run_dir)
    assert read_summary(run_dir)["status"] == "failed" and (run_dir / ".hydra" / "config.yaml").is_file()
    monkeypatch.setattr(Idx, "load", real)
    assert task.run(make_cfg(*FAST, "trainer.epochs=1"), run_dir)["status"] == "completed"
    assert yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["optimizer"]["lr"] == 0.05


@pytest.mark.e2e
def test_relaunched_sweep_matches_jobs_by_settings_not_by_number(tmp_path):
    sweep = tmp_path / "sweep"
    first = run_cli("-m", *FAST, "trainer.epochs=1", "optimizer.lr=0.01,0.03,0.05", f"hydra.sweep.dir={sweep}")
    assert first.returncode == 0, first.stderr[-3000:]
    finished = {path.parent.name: path.stat().st_mtime_ns for path in sweep.glob("*/metrics.csv")}
    assert len(finished) == 3
    again = run_cli("-m", *FAST, "trainer.epochs=1", "optimizer.lr=0.005,0.01,0.03,0.05", "run.resume=true", f"hydra.sweep.dir={sweep}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert (again.stdout + again.stderr).count("already completed; skipping") == 3
    for name, mtime in finished.items():
        assert (sweep / name / "metrics.csv").stat().st_mtime_ns == mtime, name
    table = pd.read_csv(sweep / "summary.csv")
    assert sorted(table["optimizer.lr"]) == [0.005, 0.01, 0.03, 0.05]
    for _, row in table.iterrows():  # each result sits next to the config that produced it
        recorded = yaml.safe_load((Path(row["run_dir"]) / ".hydra" / "config.yaml").read_text())
        assert recorded["optimizer"]["lr"] == row["optimizer.lr"]
        assert read_summary(Path(row["run_dir"]))["final_test_acc"] == pytest.approx(row["final_test_acc"])
    assert len({row["final_test_acc"] for _, row in table.iterrows()}) == 4
