"""How far a sweep is: a line as each job ends under every launcher, and the report of a sweep still running."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from conftest import run_cli
from mnistlab.reports.progress import SweepProgress
from mnistlab.reports.sweep import write_report

FAST = ("model=mlp", "trainer.epochs=2", "trainer.limit_batches=20", "run.plots=false")
LINE = re.compile(r"^\[(\d)/4\] (\S+) (completed \d+\.\d\d%|failed.*) in \d+ s · \d+ s elapsed(?: · about (.+) left)?$")


def progress_lines(output: str) -> list[re.Match]:
    return [match for line in output.splitlines() if (match := LINE.match(line))]


@pytest.mark.parametrize("launcher", ["basic", pytest.param("joblib", marks=pytest.mark.e2e)])
def test_a_four_job_sweep_prints_a_line_as_each_job_ends_with_the_time_left(tmp_path, launcher):
    if launcher == "joblib":
        pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    options = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *FAST, "seed=0,1", "optimizer.lr=0.05,-1", *options, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 5, proc.stderr[-3000:]  # the two jobs with lr -1 are refused
    lines = progress_lines(proc.stdout)
    assert [int(m.group(1)) for m in lines] == [1, 2, 3, 4], proc.stdout[-3000:]
    assert sorted(m.group(2) for m in lines) == sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert sum(m.group(3).startswith("completed") for m in lines) == 2 and sum(m.group(3).startswith("failed") for m in lines) == 2
    assert all(m.group(4) for m in lines[:3]) and lines[3].group(4) is None  # the time left, until nothing is left


def write_job(sweep, name, status, acc=98.0):
    run = sweep / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(name.split(",")))
    summary = {"status": status, "wall_seconds": 3.0} | ({"final_test_acc": acc} if status == "completed" else {})
    (run / "summary.json").write_text(json.dumps(summary))
    if status == "completed":
        pd.DataFrame(
            [{"epoch": 1, "train_loss": 0.1, "train_acc": 99.0, "test_loss": 0.1, "test_acc": acc, "lr": 0.1, "seconds": 1.0}]
        ).to_csv(run / "metrics.csv", index=False)
    return run


def test_jobs_ending_together_each_get_their_line_and_a_relaunch_counts_what_it_skips(tmp_path):
    write_job(tmp_path, "seed=0", "completed", 98.5)  # from an earlier launch of the sweep
    out = io.StringIO()
    progress = SweepProgress(tmp_path, ["seed=0", "seed=1", "seed=2", "seed=3"], 4, out)
    assert progress.poll() == []
    write_job(tmp_path, "seed=1", "running")
    assert progress.poll() == []
    for name, status in (("seed=1", "completed"), ("seed=2", "failed"), ("seed=3", "collapsed")):
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / "summary.json").write_text(json.dumps({"status": status, "final_test_acc": 9.8, "wall_seconds": 2}))
        time.sleep(0.01)
    lines = progress.poll()
    assert [line.split()[0] for line in lines] == ["[2/4]", "[3/4]", "[4/4]"]
    assert "seed=3 collapsed at 9.80% in 2 s" in lines[2] and "left" in lines[0] and "left" not in lines[2]
    assert out.getvalue().splitlines() == lines


def test_the_report_of_a_sweep_still_running_lists_its_running_and_pending_jobs(tmp_path):
    hydra = {
        "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": None},
        "overrides": {"task": ["seed=0,1,2,3"]},
    }
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra, "seed": 0}))
    write_job(tmp_path, "seed=0", "completed")
    running = write_job(tmp_path, "seed=1", "running")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from mnistlab.runs import lock; import time\nwith lock.hold({str(running)!r}): time.sleep(60)"]
    )
    try:
        deadline = time.monotonic() + 30
        while not (running / "run.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        report, incomplete = write_report([tmp_path])
    finally:
        holder.kill()
        holder.wait()
    table = pd.read_csv(tmp_path / "summary.csv").set_index("job")
    assert dict(table["status"]) == {"seed=0": "completed", "seed=1": "running", "seed=2": "pending", "seed=3": "pending"}
    assert incomplete == 3 and "job seed=2 (seed=2): pending" in report.read_text()


def test_a_runs_epoch_line_says_how_much_is_left(tmp_path):
    proc = run_cli(*FAST, f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"epoch=1 .* · epoch 1/2, about \d+ s left$", proc.stdout + proc.stderr, re.M)
    assert re.search(r"epoch=2 .* · epoch 2/2$", proc.stdout + proc.stderr, re.M)
