"""Bad input gets a clear error and a non-zero exit; faults lose nothing; sweeps survive failed jobs."""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import ROOT, run_cli
from mnistlab import extras
from mnistlab.data.idx import load_mnist
from mnistlab.errors import DataError
from mnistlab.runs.files import read_metrics

FAST = ("model=mlp", "run.plots=false", "trainer.limit_batches=20")


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def output(proc) -> str:
    return proc.stdout + proc.stderr


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
    assert not (tmp_path / "run").exists()  # refused while reading the data, after Hydra made the directory: removed


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


@pytest.mark.parametrize("mode", ["run", "sweep"])
def test_unwritable_output_directory_is_one_line(tmp_path, mode):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    key = "hydra.run.dir" if mode == "run" else "hydra.sweep.dir"
    proc = run_cli(*(["-m"] if mode == "sweep" else []), *FAST, f"{key}={blocker}/out")
    assert proc.returncode == 4
    assert output(proc).strip() == f"mnistlab: cannot write the output directory {blocker}/out: Not a directory"


def _small_disk(path: Path, size: str) -> None:
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root (or CAP_SYS_ADMIN)")


def test_full_disk_is_one_line_keeps_the_checkpoint_and_records_failed(tmp_path):
    disk = tmp_path / "disk"
    _small_disk(disk, "1400k")  # the MLP's checkpoint is ~0.9 MB: epoch 1 fits, its replacement does not
    try:
        proc = run_cli(*FAST, "trainer.epochs=3", f"hydra.run.dir={disk}/run")
        run_dir = disk / "run"
        assert proc.returncode == 4, output(proc)[-3000:]
        lines = [line for line in output(proc).splitlines() if line.startswith("mnistlab: ")]
        assert lines == [f"mnistlab: cannot write {run_dir}/checkpoint.pt: No space left on device"]
        assert "Traceback" not in output(proc)
        assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 1  # the previous one, intact
        assert not list(run_dir.rglob("*.tmp"))
        assert summary(run_dir)["status"] == "failed" and "No space left on device" in summary(run_dir)["error"]
        assert len(read_metrics(run_dir / "metrics.csv")) == 1
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_unreadable_data_file_says_permission_denied(tmp_path):
    raw = tmp_path / "data" / "MNIST" / "raw"
    shutil.copytree(ROOT / "data" / "MNIST" / "raw", raw)
    (raw / "t10k-labels-idx1-ubyte.gz").chmod(0)
    code = f"from mnistlab.data.idx import load_mnist; load_mnist({str(tmp_path / 'data')!r}, download=False)"
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that let it
        command = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search", *command]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1
    assert f"DataError: {raw}/t10k-labels-idx1-ubyte.gz: cannot be read: Permission denied; make it readable" in proc.stderr


def test_divergence_stops_with_status_and_exit_code(tmp_path):
    proc = run_cli(*FAST, "optimizer.lr=1e6", "trainer.epochs=3", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 3 and "diverged" in output(proc)
    assert summary(tmp_path / "run")["status"] == "diverged"
    assert not (tmp_path / "run" / "metrics.csv").exists()


def _start(run_dir: Path, *args: str) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).parent / "mnistlab"),
        *FAST[:2],
        "trainer.epochs=50",
        "trainer.batch_size=32",
        "trainer.limit_batches=400",
        *args,
        f"hydra.run.dir={run_dir}",
    ]
    # As from a terminal: Ctrl-C's default action, whatever this process inherited (a shell's background job ignores SIGINT,
    # and so would everything it starts)
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=default_sigint)


def _wait_for_rows(run_dir: Path, rows: int, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while len(read_metrics(run_dir / "metrics.csv")) < rows:
        assert proc.poll() is None, "run ended before writing the expected rows"
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {rows} metrics rows after {timeout} s")
        time.sleep(0.05)


@pytest.mark.parametrize(
    "sig,status,code",
    [(signal.SIGINT, "interrupted", 130), pytest.param(signal.SIGTERM, "terminated", 143, marks=pytest.mark.e2e)],
)
def test_ctrl_c_and_sigterm_keep_the_finished_epochs_and_are_recorded(tmp_path, sig, status, code):
    run_dir = tmp_path / "run"
    proc = _start(run_dir)
    try:
        _wait_for_rows(run_dir, 1, proc)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()  # a run that outlived the test stops with it
    assert proc.returncode == code
    assert f"{status}; the last finished epoch is kept in {run_dir}" in out
    rows = len(read_metrics(run_dir / "metrics.csv"))
    assert summary(run_dir)["status"] == status and summary(run_dir)["epochs_run"] == rows >= 1
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == rows
    if sig == signal.SIGINT:
        return
    resumed = _start(run_dir, "run.resume=true")  # SLURM requeues a preempted job the same way
    _wait_for_rows(run_dir, rows + 1, resumed)
    resumed.kill()
    resumed.wait()


def test_sweep_with_a_failing_and_a_diverging_job_reports_all_and_exits_5(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *FAST, "trainer.epochs=1", "optimizer.lr=0.05,1e6,-1", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 5, output(proc)[-3000:]
    table = pd.read_csv(sweep / "summary.csv")
    assert list(table["status"]) == ["completed", "diverged", "failed"]
    report = (sweep / "report.md").read_text()
    assert (
        "optimizer.lr=1000000.0): diverged" in report
        and "optimizer.lr=-1): failed: ConfigError: optimizer.lr must be > 0, got -1" in report
    )


@pytest.mark.e2e
def test_sweep_in_which_every_job_fails_still_writes_its_report(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *FAST, "trainer.epochs=1", "regularization.dropout=1.5,2", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 5, output(proc)[-3000:]
    assert "Traceback" not in output(proc)
    report = (sweep / "report.md").read_text()
    assert "2 jobs, 0 completed" in report
    assert "regularization.dropout=1.5): failed: ConfigError: regularization.dropout must be < 1, got 1.5" in report
    assert "regularization.dropout=2): failed: ConfigError: regularization.dropout must be < 1, got 2" in report
    assert list(pd.read_csv(sweep / "comparison.csv")["jobs"]) == [1, 1]


@pytest.mark.e2e
def test_submitit_local_sweep_gives_each_job_its_cpus_per_task(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *FAST, "trainer.epochs=1", "seed=0,1", "hydra/launcher=local", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, output(proc)[-3000:]
    table = pd.read_csv(sweep / "summary.csv")
    assert len(table) == 2 and (table["status"] == "completed").all()
    assert {json.loads((Path(d) / "summary.json").read_text())["threads"] for d in table["run_dir"]} == {1}


def test_a_sweep_with_no_job_says_so_in_one_line(tmp_path):
    proc = run_cli("-m", "seed=range(0,0)", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 2, output(proc)[-3000:]
    assert proc.stderr.strip() == "mnistlab: the sweep launched no job (is a swept range or list empty?): nothing to report"


@pytest.mark.e2e
def test_a_sweep_whose_report_cannot_be_written_fails_and_says_why(tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / "report.md").mkdir(parents=True)  # the report's own file cannot be written
    proc = run_cli("-m", *FAST, "trainer.epochs=1", "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 4, output(proc)[-3000:]
    assert (
        proc.stderr.strip().splitlines()[-1].startswith("mnistlab: the sweep ran, but its report could not be written (IsADirectoryError")
    )
    assert "Traceback" not in output(proc) and len(list(sweep.glob("*/summary.json"))) == 2  # the jobs' files stay


def test_a_choice_that_needs_a_missing_extra_is_refused_naming_the_extra(monkeypatch):
    monkeypatch.setitem(extras.MODULES, "slurm", "mnistlab_no_such_module")
    extras.check_overrides(["model=mlp", "hydra/launcher=basic", "logger=csv"])  # nothing optional asked for
    with pytest.raises(extras.MissingExtra, match=r'^hydra/launcher=slurm needs: pip install "mnistlab\[slurm\]"$'):
        extras.check_overrides(["model=mlp", "hydra/launcher=slurm"])
    with pytest.raises(extras.MissingExtra, match=r"^hydra/launcher=local needs"):
        extras.check_overrides(["hydra/launcher=basic,local"])
    from mnistlab.runs.loggers import _needs

    monkeypatch.setitem(extras.MODULES, "mlflow", "mnistlab_no_such_module")
    with pytest.raises(extras.MissingExtra, match=r'^logger=mlflow needs: pip install "mnistlab\[mlflow\]"$'):
        _needs("mlflow", "mlflow")
