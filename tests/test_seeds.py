"""The adaptive-seed sweeper: its decisions and their error rate by simulation, its rounds, its report, relaunches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.seed_simulation import run as simulate
from conftest import ROOT, run_cli
from mnistlab.reports.seeds import SeedSweep, assess, next_round
from mnistlab.reports.sequential import Design, decide

ABLATION = Design(min_seeds=3, max_seeds=20, alpha=0.05, delta=0.1, comparisons=7)  # experiment=regularization's shape
FAST = ("model=mlp", "trainer.epochs=1", "trainer.limit_batches=10", "trainer.plots=false")


def test_under_the_null_the_family_wise_rate_of_false_decisions_stays_at_alpha():
    """2,000 simulated sweeps of a baseline and 7 groups with no difference, runs spread like LeNet-5's seeds (0.06
    points): a false "better" or "worse" in at most alpha of them, within Monte Carlo error."""
    result = simulate(ABLATION, groups=7, effect=0.0, sd=0.06, sweeps=2000, seed=1)
    assert result["fwer"] <= ABLATION.alpha + 2 * result["fwer_se"], result


def test_under_a_real_effect_it_finds_it_with_fewer_seeds_than_a_fixed_design_of_the_same_power():
    """One group 0.2 points better: found in nearly every sweep, with fewer seeds on average than a fixed paired t-test
    needs for the same power at the same level."""
    result = simulate(ABLATION, groups=7, effect=0.2, sd=0.06, sweeps=500, seed=2)
    assert result["power"] >= 0.9 and result["fwer"] <= ABLATION.alpha + 2 * result["fwer_se"]
    assert result["mean_effect_seeds"] < result["fixed_seeds"], result


def test_a_decision_comes_from_the_repeated_interval_and_is_final():
    design = Design(min_seeds=3, max_seeds=10, alpha=0.05, delta=0.5, comparisons=1)
    rng = np.random.default_rng(0)
    gain = rng.normal(0.3, 0.1, 10)
    assert decide(gain[:3], [3], design).state == "open"  # three seeds decide nothing at this level
    better = decide(gain, range(3, 11), design)
    assert better.state == "better" and 0 < better.low < 0.3 < better.high and better.seeds < 10
    assert decide(-gain, range(3, 11), design).state == "worse"
    same = decide(rng.normal(0.0, 0.05, 10), range(3, 11), design)
    assert same.state == "no difference that matters" and -0.5 < same.low < same.high < 0.5
    assert decide(rng.normal(0.0, 5.0, 10), range(3, 11), design).state == "open"


def test_only_open_comparisons_and_their_baseline_get_more_seeds_up_to_the_budget():
    sweep = SeedSweep({"none": [], "a": [], "b": []}, {"none": None, "a": "none", "b": "none"}, Design(3, 5, 0.05, 0.1, 2), 2)
    assert next_round(sweep, {}) == {"none": 3, "a": 3, "b": 3}
    sweep.rounds.append({"none": 3, "a": 3, "b": 3})
    results = {"none": {0: 99.0, 1: 99.1, 2: 99.2}, "a": {0: 99.0, 1: 99.1, 2: 99.2}, "b": {0: 97.0, 1: 97.1, 2: 97.2}}
    assessed = assess(sweep, results)  # a equals the baseline exactly; b is 2 points worse on every seed
    assert assessed["a"].decision.state == "no difference that matters" and assessed["b"].decision.state == "worse"
    assert next_round(sweep, assessed) is None
    open_ = {**assessed, "b": assessed["b"].__class__(assessed["b"].decision.__class__("open", -3, 1, 3), None, ())}
    assert next_round(sweep, open_) == {"none": 5, "a": 3, "b": 5}
    sweep.rounds.append({"none": 5, "a": 3, "b": 5})
    assert next_round(sweep, open_) is None  # b has the budget's 5 seeds


def sweep_args(sweep: Path, *extra: str) -> list[str]:
    return [
        "-m",
        *FAST,
        "regularization=none,dropout",
        "hydra/sweeper=seeds",
        "hydra.sweeper.max_seeds=4",
        *extra,
        f"hydra.sweep.dir={sweep}",
    ]


def test_a_seeds_sweep_runs_its_rounds_reports_its_decisions_and_mnistlab_report_gives_the_same(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(*sweep_args(sweep))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "seeds sweep, round 1: 6 jobs (seeds 0-2 of 2 groups)" in out
    state = json.loads((sweep / "seeds.json").read_text())
    assert state["rounds"][0] == {"regularization=none": 3, "regularization=dropout": 3}
    rounds = len(state["rounds"])
    assert f"seeds sweep, after round {rounds}:" in out and "· round 1" in out
    runs = sorted(p.name for p in sweep.iterdir() if (p / "summary.json").exists())
    seeds = [name.split("seed=")[1].split(",")[0] for name in runs]
    assert len(runs) == sum(state["rounds"][-1].values()) and len(set(runs)) == len(runs)  # no seed twice
    assert sorted(seeds) == sorted([str(s) for s in range(state["rounds"][-1]["regularization=none"])] * 2)
    decisions = pd.read_csv(sweep / "decisions.csv")
    report = (sweep / "report.md").read_text()
    assert "## Adaptive seeds" in report and "| regularization=dropout | regularization=none |" in report
    again = run_cli(str(sweep), "-o", str(tmp_path / "again"), script="mnistlab-report")
    assert again.returncode == 0, again.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / "decisions.csv"), decisions)


def test_bad_sweeper_settings_are_refused_before_any_job_naming_the_key(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(*sweep_args(sweep, "hydra.sweeper.min_seeds=5"))
    assert proc.returncode == 2 and "hydra.sweeper.max_seeds must be >= hydra.sweeper.min_seeds (5), got 4" in proc.stdout + proc.stderr
    assert not list(sweep.glob("*/summary.json"))
    proc = run_cli(*sweep_args(sweep, "hydra.sweeper.delta=0"))
    assert proc.returncode == 2 and "hydra.sweeper.delta must be > 0" in proc.stdout + proc.stderr


@pytest.mark.e2e
def test_a_killed_seeds_sweep_relaunched_continues_from_its_rounds_and_never_repeats_a_seed(tmp_path):
    sweep = tmp_path / "sweep"
    args = sweep_args(sweep, "hydra.sweeper.seeds_per_round=1", "hydra.sweeper.max_seeds=5")
    first = subprocess.Popen(
        [str(Path(sys.executable).parent / "mnistlab"), *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:  # killed in its second round, when some of its jobs have finished
            state = json.loads((sweep / "seeds.json").read_text()) if (sweep / "seeds.json").exists() else {"rounds": []}
            if len(state["rounds"]) >= 2 and len(list(sweep.glob("*seed=3*/metrics.csv"))) >= 1:
                break
            assert first.poll() is None, "the sweep ended before its second round"
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    finished = {
        p.parent.name: p.stat().st_mtime_ns for p in sweep.glob("*/summary.json") if json.loads(p.read_text())["status"] == "completed"
    }
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"seeds sweep: continuing {sweep} after round 2" in again.stdout + again.stderr
    for name, mtime in finished.items():  # a finished job is never run again
        assert (sweep / name / "summary.json").stat().st_mtime_ns == mtime, name
    state = json.loads((sweep / "seeds.json").read_text())
    runs = [p.parent.name for p in sweep.glob("*/summary.json")]
    assert len(runs) == sum(state["rounds"][-1].values())
    assert all(json.loads((sweep / name / "summary.json").read_text())["status"] == "completed" for name in runs)


def test_a_relaunch_with_another_design_is_refused_naming_what_differs(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    recorded = SeedSweep(
        {"regularization=none": ["regularization=none"], "regularization=dropout": ["regularization=dropout"]},
        {"regularization=none": None, "regularization=dropout": "regularization=none"},
        Design(3, 6, 0.05, 0.1, 1),
        2,
    )
    recorded.save(sweep)
    proc = run_cli(*sweep_args(sweep))
    assert proc.returncode == 2 and "holds an adaptive-seed sweep of other settings (max_seeds: 6 -> 4)" in proc.stdout + proc.stderr


@pytest.mark.e2e
def test_a_seeds_sweep_runs_each_round_through_joblib(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    proc = run_cli(*sweep_args(sweep, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr and (sweep / "decisions.csv").is_file()
    state = json.loads((sweep / "seeds.json").read_text())
    assert len(list(sweep.glob("*/summary.json"))) == sum(state["rounds"][-1].values())


def test_the_groups_are_the_swept_values_besides_the_seed_each_with_its_baseline():
    from hydra_plugins.mnistlab_seeds import SeedSweeper

    sweep, fixed = SeedSweeper(params={"seed": "0,1,2"})._plan(["model=lenet5,mlp", "regularization=none,all", "trainer.epochs=1"])
    assert list(sweep.groups) == [
        "model=lenet5,regularization=none",
        "model=lenet5,regularization=all",
        "model=mlp,regularization=none",
        "model=mlp,regularization=all",
    ]
    assert sweep.baselines["model=mlp,regularization=all"] == "model=mlp,regularization=none" and fixed == ["trainer.epochs=1"]
    assert sweep.baseline == "regularization=none" and sweep.design.comparisons == 2
    chosen, _ = SeedSweeper(baseline="model=mlp")._plan(["model=lenet5,mlp"])
    assert chosen.baselines == {"model=lenet5": "model=mlp", "model=mlp": None}
