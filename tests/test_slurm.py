"""mnistlab on a real one-node SLURM cluster with accounting (``scripts/slurm-local.sh up``, then ``pytest -m slurm``).

Without a running cluster these tests skip; ``.ci/run`` starts one and sets MNISTLAB_SLURM=required, which
turns a missing cluster into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT
from mnistlab.runs.files import read_metrics, read_summary

pytestmark = pytest.mark.slurm

LAUNCHER = ("hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1")
FAST = ("model=mlp", "run.plots=false", "trainer.epochs=1", "trainer.limit_batches=20")
SLOW = ("model=mlp", "run.plots=false", "trainer.epochs=4", "trainer.batch_size=32", "trainer.limit_batches=300")
COLUMNS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    up = shutil.which("sbatch") and subprocess.run(["scontrol", "ping"], capture_output=True).returncode == 0
    if not up:
        message = "no SLURM cluster is running (scripts/slurm-local.sh up starts one, as root)"
        if os.environ.get("MNISTLAB_SLURM") == "required":
            pytest.fail(message)
        pytest.skip(message)


def sweep(*args: str, sweep_dir: Path) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "mnistlab"), "-m", *LAUNCHER, *args, f"hydra.sweep.dir={sweep_dir}"]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def wait_for_rows(sweep_dir: Path, rows: int, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sweep_dir.glob("*/metrics.csv"):
            if len(read_metrics(path)) >= rows:
                return path.parent
        time.sleep(0.2)
    pytest.fail(f"no job wrote {rows} epochs in {timeout} s")


def running_jobs() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True, check=True).stdout
    return out.split()


def release(job: str, timeout: float = 60) -> None:
    """SLURM holds a requeued job for two minutes before it may start again; let it start now."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()
        if state == "PENDING":
            subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now"], check=True)
            return
        time.sleep(0.2)
    pytest.fail(f"job {job} did not return to the queue after its requeue")


def test_a_2x2_sweep_runs_as_one_array_with_threads_from_cpus_per_task(tmp_path):
    proc = sweep(*FAST, "model=lenet5,mlp", "seed=0,1", sweep_dir=tmp_path)
    out = finish(proc)
    assert proc.returncode == 0, out[-3000:]
    table = pd.read_csv(tmp_path / "summary.csv")
    assert len(table) == 4 and (table["status"] == "completed").all()
    assert (tmp_path / "report.md").is_file()
    arrays = {path.name.split("_")[0] for path in (tmp_path / ".submitit").iterdir() if path.name[0].isdigit()}
    assert len(arrays) == 1  # one job array, its tasks N_0 .. N_3
    for run_dir in table["run_dir"]:
        assert json.loads((Path(run_dir) / "summary.json").read_text())["threads"] == 1


@pytest.mark.parametrize("how", ["scontrol requeue", "submitit's preemption signal"])
def test_a_requeued_job_resumes_by_itself_to_the_metrics_of_an_uninterrupted_one(tmp_path, how):
    mnistlab = str(Path(sys.executable).parent / "mnistlab")
    reference = subprocess.Popen([mnistlab, *SLOW, "trainer.threads=1", f"hydra.run.dir={tmp_path}/reference"], cwd=ROOT)
    proc = sweep(*SLOW, "seed=0", sweep_dir=tmp_path / "sweep")
    run_dir = wait_for_rows(tmp_path / "sweep", 2)
    job = read_summary(run_dir)["slurm_job"]
    assert job in running_jobs()
    if how == "scontrol requeue":
        subprocess.run(["scontrol", "requeue", job], check=True)
    else:  # what SLURM sends before the time limit; submitit checkpoints the job and requeues it
        subprocess.run(["scancel", "--signal=USR2", job], check=True)
    release(job)
    out = finish(proc)
    assert proc.returncode == 0, out[-3000:]
    assert reference.wait(timeout=300) == 0
    summary = read_summary(run_dir)
    assert summary["status"] == "completed" and summary["requeues"] == 1
    expected, got = pd.read_csv(tmp_path / "reference" / "metrics.csv"), pd.read_csv(run_dir / "metrics.csv")
    pd.testing.assert_frame_equal(expected[COLUMNS], got[COLUMNS], check_exact=True)


def test_a_cancelled_job_is_listed_and_a_relaunch_completes_it(tmp_path):
    proc = sweep(*SLOW, "seed=0,1", sweep_dir=tmp_path)
    cancelled = wait_for_rows(tmp_path, 1)
    job = read_summary(cancelled)["slurm_job"]
    assert job in running_jobs()
    subprocess.run(["scancel", job], check=True)
    out = finish(proc)
    assert proc.returncode == 5, out[-3000:]
    table = pd.read_csv(tmp_path / "summary.csv").set_index("run_dir")
    assert table.loc[str(cancelled), "status"] == "terminated"
    assert (table["status"] == "completed").sum() == 1
    relaunch = sweep(*SLOW, "seed=0,1", "run.resume=true", sweep_dir=tmp_path)
    out = finish(relaunch)
    assert relaunch.returncode == 0, out[-3000:]
    assert (pd.read_csv(tmp_path / "summary.csv")["status"] == "completed").all()


def test_one_bad_job_does_not_sink_the_array(tmp_path):
    proc = sweep(*FAST, "optimizer.lr=0.05,-1", sweep_dir=tmp_path)
    out = finish(proc)
    assert proc.returncode == 5, out[-3000:]
    table = pd.read_csv(tmp_path / "summary.csv")
    assert sorted(table["status"]) == ["completed", "failed"]
    assert "optimizer.lr must be > 0, got -1" in (tmp_path / "report.md").read_text()


def test_a_lock_held_by_a_slurm_job_is_refused_while_it_runs_and_taken_over_after(tmp_path):
    """A run directory held by a SLURM job on another host: refused while the job runs, taken over once it ended."""
    from mnistlab.errors import RunDirError
    from mnistlab.runs import lock

    submitted = subprocess.run(
        ["sbatch", "--parsable", "--wrap", "sleep 300", "-o", "/dev/null"], capture_output=True, text=True, check=True
    )
    job = submitted.stdout.strip().split(";")[0]
    holder = lock.Holder(host="another-node", pid=12345, slurm_job=job)
    (tmp_path / lock.LOCK_FILE).write_text(json.dumps(holder.__dict__))
    try:
        deadline = time.monotonic() + 60
        while lock._slurm_state(job) != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.5)
        with pytest.raises(RunDirError, match=f"SLURM job {job}"), lock.hold(tmp_path):
            pass
    finally:
        subprocess.run(["scancel", job], check=True)
    deadline = time.monotonic() + 60
    while lock._slurm_state(job) in lock.ACTIVE and time.monotonic() < deadline:  # cancelled
        time.sleep(0.5)
    with lock.hold(tmp_path) as me:
        assert lock.read_holder(tmp_path) == me


def test_a_study_runs_two_workers_as_one_array_sharing_its_journal(tmp_path):
    """hydra/launcher=slurm with n_jobs=2: one array of two workers; every trial once, no parameters twice."""
    optuna = pytest.importorskip("optuna")
    from mnistlab.studies import storage

    proc = sweep("hparams_search=lenet5_optuna", *FAST, "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=2", sweep_dir=tmp_path)
    out = finish(proc)
    assert proc.returncode == 0, out[-3000:]
    trials = optuna.load_study(study_name="lenet5_optuna", storage=storage.open_storage(str(tmp_path / storage.JOURNAL_FILE))).trials
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6
    arrays = {read_summary(tmp_path / f"trial_{t.number}")["slurm_job"].split("_")[0] for t in trials}
    assert len(arrays) == 1 and f"2 workers as SLURM job array {arrays.pop()}" in out
    assert sorted(p.name.split("_")[1] for p in tmp_path.glob(".submitit/*/*_result.pkl")) == ["0", "1"]  # both tasks ended well


def test_an_adaptive_seed_sweep_launches_each_round_as_one_array(tmp_path):
    proc = sweep(
        *FAST,
        "trainer.limit_batches=10",
        "regularization=none,dropout",
        "hydra/sweeper=seeds",
        "hydra.sweeper.max_seeds=4",
        sweep_dir=tmp_path,
    )
    out = finish(proc, timeout=600)
    assert proc.returncode == 0, out[-3000:]
    state = json.loads((tmp_path / "seeds.json").read_text())
    arrays = {json.loads(p.read_text())["slurm_job"].split("_")[0] for p in tmp_path.glob("*/summary.json")}
    assert len(arrays) == len(state["rounds"]) >= 1  # one array per round
    assert len(list(tmp_path.glob("*/summary.json"))) == sum(state["rounds"][-1].values())
    assert (tmp_path / "decisions.csv").is_file() and "## Adaptive seeds" in (tmp_path / "report.md").read_text()
