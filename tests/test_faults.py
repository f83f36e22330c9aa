"""Fault injection: a run SIGKILLed at seeded random moments and resumed after each kill ends exactly as one never interrupted."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import ROOT
from mnistlab.runfiles import read_metrics, read_summary

COLUMNS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"]
POINTS = ("step", "evaluate", "checkpoint", "metrics", "mid-write", "timed")


class Launcher:
    """tests/killpoint.py as a server: mnistlab is imported once and each launch is a forked process."""

    def __init__(self) -> None:
        command = [sys.executable, str(ROOT / "tests" / "killpoint.py")]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __call__(self, run_dir: Path, point: str, n: int, *args: str, delay: float | None = None) -> int:
        """One launch into ``run_dir``, SIGKILLed at ``point`` or after ``delay`` seconds; returns its exit code (-9: killed)."""
        request = [point, n, delay, [*args, "trainer.resume=true", f"hydra.run.dir={run_dir}"]]
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        code = int(self.proc.stdout.readline())
        assert code in (0, -9), f"launch {request} exited {code}"
        return code

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def check_consistent(run_dir: Path) -> None:
    """What a kill may leave: metrics.csv never shows an epoch that checkpoint.pt does not hold."""
    rows = read_metrics(run_dir / "metrics.csv")
    if rows:
        state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
        assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1)) and len(rows) <= state["epoch"]


def survive_kills(tmp_path: Path, kills: int, seed: int, args: tuple[str, ...], steps: int, epochs: int, seconds: float) -> dict[str, int]:
    """Kill one run ``kills`` times at seeded random points, resuming after each; compare with an uninterrupted run."""
    launch = Launcher()
    assert launch(tmp_path / "reference", "none", 0, *args) == 0
    rng, run_dir, survived = random.Random(seed), tmp_path / "killed", {}
    order = rng.sample(POINTS, len(POINTS))  # every kind of point once, in a random order, then random ones
    while sum(survived.values()) < kills:
        point = order.pop(0) if order else rng.choice(POINTS)
        n = rng.randint(1, steps * 2) if point == "step" else rng.randint(1, 2)
        delay = rng.uniform(0.2, seconds) if point == "timed" else None
        code = launch(run_dir, "none" if point == "timed" else point, n, *args, delay=delay)
        assert code == -9 or read_summary(run_dir).get("status") == "completed"
        if code == -9:
            survived[point] = survived.get(point, 0) + 1
            check_consistent(run_dir)
        else:  # finished before the kill point: start the run over for the kills still to come
            assert len(read_metrics(run_dir / "metrics.csv")) == epochs
            run_dir = run_dir.with_name(f"{run_dir.name}-again")
    assert launch(run_dir, "none", 0, *args) == 0
    launch.close()
    assert read_summary(run_dir)["status"] == "completed" and not list(run_dir.glob("*.tmp"))
    expected, got = pd.read_csv(tmp_path / "reference" / "metrics.csv"), pd.read_csv(run_dir / "metrics.csv")
    pd.testing.assert_frame_equal(expected[COLUMNS], got[COLUMNS], check_exact=True)
    return survived


def test_ten_kills_at_random_moments_then_resume_equals_uninterrupted(tmp_path):
    args = ("model=mlp", "trainer.plots=false", "trainer.limit_batches=12", "trainer.batch_size=32", "trainer.epochs=8", "seed=3")
    survived = survive_kills(tmp_path, kills=10, seed=14, args=args, steps=12, epochs=8, seconds=2.0)
    assert sum(survived.values()) == 10 and set(survived) == set(POINTS), survived


@pytest.mark.slow
def test_forty_kills_of_lenet5_with_validation_then_resume_equals_uninterrupted(tmp_path):
    args = (
        "experiment=early_stopping",
        "trainer.plots=false",
        "trainer.limit_batches=60",
        "trainer.epochs=12",
        "regularization.early_stopping_patience=100",
        "seed=1",
    )
    started = time.monotonic()
    survived = survive_kills(tmp_path, kills=40, seed=2026, args=args, steps=60, epochs=12, seconds=6.0)
    assert sum(survived.values()) == 40 and set(survived) == set(POINTS), (survived, time.monotonic() - started)
