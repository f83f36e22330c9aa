"""A lock on every run directory: a second launch is refused naming the holder; a dead holder's lock is taken over."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT
from mnistlab.errors import RunDirError
from mnistlab.runs import lock
from mnistlab.runs.files import read_metrics, read_summary

RUN = ("model=mlp", "run.plots=false", "trainer.limit_batches=300", "trainer.epochs=3")


def start(*args: str) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "mnistlab"), *args]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"ended before {what}: {proc.stdout.read()[-2000:]}"
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} after {timeout} s")
        time.sleep(0.05)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_held_directory_is_refused_naming_its_holder(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from mnistlab.runs import lock; import time\nwith lock.hold({str(tmp_path)!r}): time.sleep(60)"]
    )
    try:
        wait_for(lambda: lock.read_holder(tmp_path) is not None, holder, "a lock")
        refused = f"in use by another launch \\(host {socket.gethostname()}, PID {holder.pid}, since "
        with pytest.raises(RunDirError, match=refused), lock.hold(tmp_path):
            pass
        assert lock.in_use(tmp_path).pid == holder.pid
    finally:
        holder.kill()
        holder.wait()
    assert lock.in_use(tmp_path) is None  # killed: nobody holds it now


def test_a_dead_holders_lock_is_taken_over_with_one_line(tmp_path, caplog):
    stale = lock.Holder(pid=dead_pid(), slurm_job=None)
    (tmp_path / lock.LOCK_FILE).write_text(json.dumps(stale.__dict__))
    with caplog.at_level(logging.INFO, logger="mnistlab"), lock.hold(tmp_path) as me:
        assert lock.read_holder(tmp_path) == me and me.pid == os.getpid()
    assert f"taking over the lock of {stale}: PID {stale.pid} no longer runs on {stale.host}" in caplog.text
    assert not (tmp_path / lock.LOCK_FILE).exists()  # released


def test_a_holder_on_another_host_without_slurm_is_taken_as_alive(tmp_path):
    (tmp_path / lock.LOCK_FILE).write_text(json.dumps(lock.Holder(host="elsewhere", pid=1, slurm_job=None).__dict__))
    with pytest.raises(RunDirError, match="host elsewhere, PID 1"), lock.hold(tmp_path):
        pass


@pytest.mark.e2e
def test_a_second_launch_is_refused_and_a_kill_9_is_taken_over(tmp_path):
    """Two launches into one run directory: the second is refused before it writes anything; after the first is
    killed with SIGKILL, a resume takes its lock over and finishes the run. The first is paused (SIGSTOP) after its
    first epoch, so that it still runs, however fast this machine, while the second launches."""
    run_dir = tmp_path / "run"
    first = start(*RUN, f"hydra.run.dir={run_dir}")
    try:
        wait_for(lambda: len(read_metrics(run_dir / "metrics.csv")) >= 1, first, "a finished epoch")
        first.send_signal(signal.SIGSTOP)
        records = [run_dir / "summary.json", *(run_dir / ".hydra").iterdir()]  # the first run writes them at its start and end
        files = {p: p.read_bytes() for p in records}
        second = start(*RUN, "run.resume=true", f"hydra.run.dir={run_dir}")
        out, _ = second.communicate(timeout=120)
        assert second.returncode == 2, out[-2000:]
        assert f"is in use by another launch (host {socket.gethostname()}, PID {first.pid}" in out
        assert {p: p.read_bytes() for p in records} == files  # the refused launch wrote none of them
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        first.kill()
    assert lock.read_holder(run_dir).pid == first.pid  # SIGKILL left its lock behind
    resumed = start(*RUN, "run.resume=true", f"hydra.run.dir={run_dir}")
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]
    assert f"taking over the lock of host {socket.gethostname()}, PID {first.pid}" in out
    assert f"PID {first.pid} no longer runs" in out
    assert read_summary(run_dir)["status"] == "completed" and [r["epoch"] for r in read_metrics(run_dir / "metrics.csv")] == [1, 2, 3]
    assert not (run_dir / lock.LOCK_FILE).exists()


@pytest.mark.e2e
def test_a_sweep_relaunched_while_a_job_runs_lists_it_running_and_trains_the_rest(tmp_path):
    sweep = tmp_path / "sweep"
    args = ("-m", *RUN, "optimizer.lr=0.01,0.02", f"hydra.sweep.dir={sweep}")
    first = start(*args)
    try:
        wait_for(lambda: any(len(read_metrics(p)) >= 1 for p in sweep.glob("*/metrics.csv")), first, "a finished epoch")
        first.send_signal(signal.SIGSTOP)  # still running, however fast this machine
        busy = next(d for d in sweep.iterdir() if lock.in_use(d))
        again = start(*args, "run.resume=true")
        out, _ = again.communicate(timeout=600)
        assert again.returncode == 5, out[-3000:]  # a sweep with a job without a result
        assert f"{busy} is in use by another launch" in out
    finally:
        first.kill()
        first.wait()
    table = pd.read_csv(sweep / "summary.csv").set_index("job")
    assert table.loc[busy.name, "status"] == "running"  # another launch trains it
    others = [name for name in table.index if name != busy.name]
    assert len(others) == 1 and table.loc[others[0], "status"] == "completed"
    assert f"job {busy.name} (" in (sweep / "report.md").read_text() and "): running" in (sweep / "report.md").read_text()
