"""Fault injection: a run SIGKILLed at seeded random moments and resumed after each kill ends exactly as one never interrupted."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import ROOT
from mnistlab.runs.files import read_metrics, read_summary

COLUMNS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"]
POINTS = ("step", "evaluate", "checkpoint", "metrics", "mid-write", "timed")


class Launcher:
    """tests/killpoint.py as a server: mnistlab is imported once and each launch is a forked process."""

    def __init__(self, swap_writes: bool = False) -> None:
        command = [sys.executable, str(ROOT / "tests" / "killpoint.py"), *(["--swap-writes"] if swap_writes else [])]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __call__(self, run_dir: Path, point: str, n: int, *args: str, delay: float | None = None) -> tuple[int, float]:
        """One launch into ``run_dir``, SIGKILLed at ``point`` or after ``delay`` seconds; returns its exit code (-9: killed)
        and its wall time in seconds."""
        request = [point, n, delay, [*args, "run.resume=true", f"hydra.run.dir={run_dir}"]]
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        code, seconds = self.proc.stdout.readline().split()
        assert int(code) in (0, -9), f"launch {request} exited {code}"
        return int(code), float(seconds)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def check_consistent(run_dir: Path) -> None:
    """What a kill may leave: metrics.csv never shows an epoch that checkpoint.pt does not hold."""
    rows = read_metrics(run_dir / "metrics.csv")
    if rows:
        assert (run_dir / "checkpoint.pt").exists(), f"metrics.csv shows {len(rows)} epochs, but there is no checkpoint"
        state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
        assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1)), rows
        assert len(rows) <= state["epoch"], f"metrics.csv shows {len(rows)} epochs, the checkpoint holds {state['epoch']}"


def survive_kills(
    tmp_path: Path, kills: int, seed: int, args: tuple[str, ...], steps: int, epochs: int, points=POINTS, swap_writes: bool = False
) -> dict[str, int]:
    """Kill one run ``kills`` times at seeded random points, resuming after each; compare with an uninterrupted run.

    Every kind of point is survived at least once, however fast this machine: a timed kill's delay is drawn within
    the time the reference run took for the epochs still to train, and a kind of point that a launch finished
    before reaching is tried again next.
    """
    launch = Launcher(swap_writes)
    code, seconds = launch(tmp_path / "reference", "none", 0, *args)
    assert code == 0
    rng, run_dir, survived, launches = random.Random(seed), tmp_path / "killed", {}, 0
    order = rng.sample(points, len(points))  # every kind of point once, in a random order, then random ones
    while sum(survived.values()) < kills or set(survived) != set(points):
        launches += 1
        assert launches <= 3 * kills + 20, f"{launches} launches for {kills} kills: {survived}"
        point = order.pop(0) if order else rng.choice(points)
        n = rng.randint(1, steps * 2) if point == "step" else rng.randint(1, 2)
        left = epochs - len(read_metrics(run_dir / "metrics.csv"))
        delay = rng.uniform(0.05, 0.9) * seconds * max(left, 1) / epochs if point == "timed" else None
        code, _ = launch(run_dir, "none" if point == "timed" else point, n, *args, delay=delay)
        assert code == -9 or read_summary(run_dir).get("status") == "completed"
        if code == -9:
            survived[point] = survived.get(point, 0) + 1
            check_consistent(run_dir)
        else:  # finished before the kill point: start the run over for the kills still to come
            assert len(read_metrics(run_dir / "metrics.csv")) == epochs
            run_dir = run_dir.with_name(f"{run_dir.name}-again")
            if point not in survived:
                order.insert(0, point)
    code, _ = launch(run_dir, "none", 0, *args)
    assert code == 0
    launch.close()
    assert read_summary(run_dir)["status"] == "completed" and not list(run_dir.glob("*.tmp"))
    expected, got = pd.read_csv(tmp_path / "reference" / "metrics.csv"), pd.read_csv(run_dir / "metrics.csv")
    pd.testing.assert_frame_equal(expected[COLUMNS], got[COLUMNS], check_exact=True)
    return survived


ARGS = ("model=mlp", "run.plots=false", "trainer.limit_batches=12", "trainer.batch_size=32", "trainer.epochs=5", "seed=3")


def test_kills_at_random_moments_then_resume_equals_uninterrupted(tmp_path):
    survive_kills(tmp_path, kills=6, seed=14, args=ARGS, steps=12, epochs=5)  # every kill kind, then equal to an uninterrupted run


@pytest.mark.e2e
def test_ten_kills_at_random_moments_then_resume_equals_uninterrupted(tmp_path):
    survive_kills(tmp_path, kills=10, seed=14, args=(*ARGS[:-2], "trainer.epochs=8", "seed=3"), steps=12, epochs=8)


def test_the_kills_catch_metrics_written_before_their_checkpoint(tmp_path):
    """The fault test can fail: with the two writes of an epoch swapped, a kill between them is caught."""
    with pytest.raises(AssertionError, match="metrics.csv shows"):
        survive_kills(
            tmp_path,
            kills=2,
            seed=0,
            args=(*ARGS[:-2], "trainer.epochs=3", "seed=3"),
            steps=12,
            epochs=3,
            points=("metrics",),
            swap_writes=True,
        )


@pytest.mark.slow
def test_forty_kills_of_lenet5_with_validation_then_resume_equals_uninterrupted(tmp_path):
    args = (
        "experiment=early_stopping",
        "run.plots=false",
        "trainer.limit_batches=60",
        "trainer.epochs=12",
        "callback.early_stopping.patience=100",
        "seed=1",
    )
    survive_kills(tmp_path, kills=40, seed=2026, args=args, steps=60, epochs=12)
