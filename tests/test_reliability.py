"""Bad input gets a clear error and a non-zero exit; faults lose nothing; sweeps survive failed jobs."""

import gzip
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, run_cli
from mnistlab import train
from mnistlab.data import load_mnist
from mnistlab.errors import CheckpointError, DataError
from mnistlab.runfiles import read_metrics

FAST = ("model=mlp", "trainer.plots=false", "trainer.limit_batches=20")


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def output(proc) -> str:
    return proc.stdout + proc.stderr


def test_unknown_key_is_reported_by_hydra(tmp_path):
    proc = run_cli("trainer.epochz=3", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 1 and "Could not override 'trainer.epochz'" in output(proc)


def test_a_bug_shows_its_traceback_and_is_not_reported_as_bad_input(tmp_path):
    """Only mnistlab's own errors mean bad input (exit 2); torch's ValueError for a model without parameters is not one."""
    proc = run_cli(*FAST, "model._target_=torch.nn.Identity", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 1
    assert "Traceback" in output(proc) and "ValueError: optimizer got an empty parameter list" in output(proc)
    assert summary(tmp_path / "run")["status"] == "failed"


def test_missing_data_folder_says_what_to_do(tmp_path):
    proc = run_cli(*FAST, f"data.root={tmp_path}/nowhere", "data.download=false", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 2
    assert f"MNIST files missing in {tmp_path}/nowhere/MNIST/raw" in output(proc) and "train-images-idx3-ubyte.gz" in output(proc)
    assert summary(tmp_path / "run")["status"] == "failed"


@pytest.mark.parametrize(
    "damage,message", [("truncate", "truncated or corrupt"), ("flip", "does not match the expected"), ("magic", "wrong magic number")]
)
def test_damaged_idx_file_is_named(tmp_path, damage, message):
    raw = tmp_path / "data" / "MNIST" / "raw"
    shutil.copytree(ROOT / "data" / "MNIST" / "raw", raw)
    target = raw / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(target.read_bytes()))
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:2000])
    elif damage == "flip":
        content[100] ^= 0xFF
        target.write_bytes(gzip.compress(bytes(content)))
    else:
        (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x09" + bytes(content[4:]))
        target.unlink()
    with pytest.raises(DataError, match=f"t10k-labels-idx1-ubyte.*{message}"):
        load_mnist(tmp_path / "data", download=False)


def test_resume_with_another_models_checkpoint(make_cfg, tmp_path):
    assert train.run(make_cfg(*FAST, "trainer.epochs=1"), tmp_path)["status"] == "completed"
    with pytest.raises(CheckpointError, match="belongs to another run"):
        train.run(make_cfg("model=lenet5", "trainer.epochs=1", "trainer.resume=true"), tmp_path)


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_cli(*FAST, f"hydra.run.dir={blocker}/run")
    assert proc.returncode != 0 and str(blocker) in output(proc)


def test_divergence_stops_with_status_and_exit_code(tmp_path):
    proc = run_cli(*FAST, "optimizer.lr=1e6", "trainer.epochs=3", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 3 and "diverged" in output(proc)
    assert summary(tmp_path / "run")["status"] == "diverged"
    assert not (tmp_path / "run" / "metrics.csv").exists()


def _start(run_dir: Path, *args: str) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).parent / "mnistlab"),
        *FAST[:2],
        "trainer.limit_batches=250",
        "trainer.epochs=3",
        "trainer.batch_size=32",
        "seed=5",
        *args,
        f"hydra.run.dir={run_dir}",
    ]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for_rows(run_dir: Path, rows: int, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while len(read_metrics(run_dir / "metrics.csv")) < rows:
        assert proc.poll() is None, "run ended before writing the expected rows"
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {rows} metrics rows after {timeout} s")
        time.sleep(0.05)


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    reference = _start(tmp_path / "reference")
    assert reference.wait(timeout=300) == 0
    killed = _start(tmp_path / "killed")
    _wait_for_rows(tmp_path / "killed", 1, killed)
    time.sleep(0.3)  # into epoch 2
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert summary(tmp_path / "killed")["status"] == "running"
    resumed = _start(tmp_path / "killed", "trainer.resume=true")
    assert resumed.wait(timeout=300) == 0
    a, b = pd.read_csv(tmp_path / "reference" / "metrics.csv"), pd.read_csv(tmp_path / "killed" / "metrics.csv")
    columns = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"]
    pd.testing.assert_frame_equal(a[columns], b[columns], rtol=1e-6)
    assert summary(tmp_path / "killed")["status"] == "completed"


def test_ctrl_c_keeps_the_finished_epochs(tmp_path):
    proc = _start(tmp_path / "run")
    _wait_for_rows(tmp_path / "run", 1, proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert summary(tmp_path / "run")["status"] == "interrupted"
    assert len(read_metrics(tmp_path / "run" / "metrics.csv")) >= 1


def test_sweep_survives_a_diverging_job_and_relaunch_skips_finished_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *FAST, "trainer.epochs=1", "optimizer.lr=0.05,1e6", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, output(proc)[-3000:]
    table = pd.read_csv(sweep / "summary.csv")
    assert list(table["status"]) == ["completed", "diverged"]
    assert "optimizer.lr=1000000.0): diverged" in (sweep / "report.md").read_text()

    finished = (sweep / "0" / "metrics.csv").stat().st_mtime_ns
    relaunch = run_cli("-m", *FAST, "trainer.epochs=1", "optimizer.lr=0.05,0.01", "trainer.resume=true", f"hydra.sweep.dir={sweep}")
    assert relaunch.returncode == 0, output(relaunch)[-3000:]
    assert "already completed; skipping" in output(relaunch)
    assert (sweep / "0" / "metrics.csv").stat().st_mtime_ns == finished
    assert list(pd.read_csv(sweep / "summary.csv")["status"]) == ["completed", "completed"]


def test_submitit_local_sweep(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *FAST, "trainer.epochs=1", "seed=0,1", "hydra/launcher=submitit_local", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, output(proc)[-3000:]
    table = pd.read_csv(sweep / "summary.csv")
    assert len(table) == 2 and (table["status"] == "completed").all()
