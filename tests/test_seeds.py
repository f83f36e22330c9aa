"""The adaptive-seed sweeper: its decisions and their error rate by simulation on the accuracies runs really produce
(steps, ties, collapses), its rounds and their record, its report, relaunches."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.seed_simulation import Noise, fixed_seeds, wrong
from benchmarks.seed_simulation import run as simulate
from conftest import ROOT, run_cli
from mnistlab.errors import ConfigError
from mnistlab.reports.seeds import FAILED, SeedSweep, assess, next_round, outcome, to_launch
from mnistlab.reports.sequential import (
    BETTER,
    BETTER_LARGE,
    BETTER_SMALL,
    OPEN,
    SAME,
    WORSE,
    WORSE_LARGE,
    WORSE_SMALL,
    Design,
    boundaries,
    classify,
    decide,
)

ABLATION = Design(min_seeds=3, max_seeds=20, alpha=0.05, delta=0.1, families=(7,))  # experiment=regularization's shape
FAST = ("model=mlp", "trainer.epochs=1", "trainer.limit_batches=3", "run.plots=false")

# The cut-down simulation of docs/seeds.md: 2,000 sweeps of a baseline and 7 groups with no difference (one group
# collapsing), accuracies rounded to the test set's resolution; each family-wise rate of false decisions must stay
# within alpha plus two standard errors. The ties and the collapse run by default, the other two under -m e2e.
SCENARIOS = {
    "MNIST steps of 0.01, seeds spread by 0.02": (ABLATION, 0.0, Noise(sd=0.02, step=0.01)),
    "the digits' steps of 0.22, spread 0.22, delta 0.5": (Design(3, 20, 0.05, 0.5, (7,)), 0.0, Noise(sd=0.22, step=100 / 450)),
    "min_seeds=2, spread 0.06": (Design(2, 20, 0.05, 0.1, (7,)), 0.0, Noise(sd=0.06, step=0.01)),
    "a group +0.10 when it trains that collapses on 30% of its seeds": (ABLATION, 0.1, Noise(sd=0.06, step=0.01, collapse=0.3)),
}


LONGER = {"the digits' steps of 0.22, spread 0.22, delta 0.5", "min_seeds=2, spread 0.06"}  # CI's -m e2e runs them


@pytest.mark.parametrize("scenario", [pytest.param(s, marks=pytest.mark.e2e) if s in LONGER else s for s in SCENARIOS])
def test_the_family_wise_rate_of_false_decisions_stays_at_alpha_on_stepped_and_collapsing_accuracies(scenario):
    design, effect, noise = SCENARIOS[scenario]
    result = simulate(design, effect, noise, sweeps=2000, seed=1)
    assert result["fwer"] <= design.alpha + 2 * result["fwer_se"], result


def test_a_collapse_enters_its_comparison_and_a_group_seen_collapsing_is_never_better():
    """A group 0.3 points better on every seed it trains, which collapsed to 11.35% on seed 1: at every look up to
    its budget the collapse counts, and the group is worse or open, never better."""
    sweep = SeedSweep({"none": [], "a": []}, {"none": None, "a": "none"}, Design(3, 20, 0.05, 0.1, (1,)), step=0.01)
    rng = np.random.default_rng(0)
    results = {"none": {}, "a": {}}
    for s in range(20):
        results["none"][s] = round(99.2 + 0.06 * rng.standard_normal(), 2)
        results["a"][s] = 11.35 if s == 1 else round(99.5 + 0.06 * rng.standard_normal(), 2)
    states = []
    for n in range(3, 21):
        sweep.rounds.append({"none": n, "a": n})
        states.append(assess(sweep, results)["a"].decision.state)
    assert BETTER not in states and BETTER_SMALL not in states, states


def test_exact_ties_decide_nothing_by_themselves():
    """Three seeds that differ by exactly one step (0.01 on MNIST) have no spread; the rounding's variance keeps
    the interval from shrinking to a point."""
    design = Design(3, 20, 0.05, 0.1, (1,))
    for d in ([0.01] * 3, [-0.01] * 3, [0.02] * 3):
        decision = decide(d, design, step=0.01)
        assert decision.low < 0 < decision.high and decision.state == SAME, decision  # within ±delta, and so said
    assert decide([0.22] * 3, Design(3, 20, 0.05, 0.5, (1,)), step=0.22).state == OPEN  # one step of the digits


def test_the_states_exclude_each_other():
    """Every interval names exactly one state: a real gain smaller than delta is 'better, by less than delta', never
    both 'better' and 'no difference that matters'."""
    delta = 0.2
    assert classify(0.02, 0.18, delta) == BETTER_SMALL
    assert classify(0.02, 0.25, delta) == BETTER
    assert classify(0.25, 0.5, delta) == BETTER_LARGE and classify(-0.5, -0.2, delta) == WORSE_LARGE
    assert classify(-0.02, 0.18, delta) == SAME
    assert classify(-0.18, -0.02, delta) == WORSE_SMALL
    assert classify(-0.3, -0.02, delta) == WORSE
    assert classify(-0.3, 0.1, delta) == OPEN
    claims = {BETTER: 0.1, BETTER_SMALL: 0.1, SAME: 0.1, WORSE: -0.1, WORSE_SMALL: -0.1}
    assert not any(wrong(state, truth, delta) for state, truth in claims.items())
    assert wrong(BETTER_SMALL, 0.25, delta) and wrong(SAME, 0.2, delta) and wrong(BETTER, 0.0, delta)


def test_the_first_looks_are_exact_bounds_and_every_look_can_decide():
    """A look whose spending would rest on few simulated sweeps takes the exact Bonferroni bound of the t
    distribution; every boundary is finite; the Monte Carlo error of the whole design is stated."""
    tiny = boundaries(Design(2, 20, 0.001, 0.1, (7,)))
    assert tiny.bound[0] and all(np.isfinite(tiny.values)) and tiny.mc_error < 0.0002
    assert not boundaries(ABLATION).bound[-1]  # where enough simulated sweeps cross, they set the boundary


def test_comparisons_that_share_a_baseline_get_lower_boundaries_than_bonferroni():
    """Dunnett's idea over the looks: seven comparisons with one baseline are correlated, so their joint boundary is
    below seven independent ones'."""
    shared = boundaries(ABLATION).values[-1]
    independent = boundaries(Design(3, 20, 0.05, 0.1, (1,) * 7)).values[-1]
    assert shared < independent


def test_a_real_effect_is_found_with_fewer_seeds_than_the_fixed_design_of_the_same_power():
    result = simulate(ABLATION, 0.2, Noise(sd=0.06, step=0.01), sweeps=300, seed=2)
    assert result["power"] >= 0.95
    assert result["mean_seeds"] < fixed_seeds(ABLATION, 0.2, 0.06, min(result["power"], 0.99)), result


def test_a_collapsed_run_counts_at_its_accuracy_and_a_crash_is_a_failure():
    assert outcome({"status": "collapsed", "objective": "final_test_acc", "final_test_acc": 11.35}) == 11.35
    assert outcome({"status": "diverged", "objective": "final_test_acc", "num_classes": 10}) == 10.0  # no accuracy: chance
    assert outcome({"status": "completed", "objective": "final_val_acc", "final_val_acc": 99.1, "final_test_acc": 99.3}) == 99.1
    assert outcome({"status": "completed", "objective": "final_test_acc", "final_test_acc": float("nan")}) == FAILED
    assert outcome({"status": "failed"}) == FAILED
    assert outcome({"status": "running"}) is None and outcome({}) is None  # killed, or not run: launched again


def _sweep(max_seeds: int = 6) -> SeedSweep:
    return SeedSweep(
        {"none": [], "a": [], "b": []}, {"none": None, "a": "none", "b": "none"}, Design(3, max_seeds, 0.05, 0.1, (2,)), step=0.01
    )


def test_only_open_comparisons_and_their_baseline_get_more_seeds_up_to_the_budget():
    sweep = _sweep(max_seeds=4)
    assert next_round(sweep, {}) == {"none": 3, "a": 3, "b": 3}
    sweep.rounds.append({"none": 3, "a": 3, "b": 3})
    results = {"none": {0: 99.0, 1: 99.1, 2: 99.2}, "a": {0: 99.0, 1: 99.1, 2: 99.2}, "b": {0: 97.0, 1: 98.9, 2: 96.8}}
    assessed = assess(sweep, results)  # a equals the baseline; b is open after three seeds
    assert assessed["a"].decision.state == SAME and assessed["a"].round == 1 and assessed["b"].open
    assert next_round(sweep, assessed, results) == {"none": 4, "a": 3, "b": 4}
    sweep.rounds.append({"none": 4, "a": 3, "b": 4})
    results["none"][3], results["b"][3] = 99.1, 97.1
    assessed = assess(sweep, results)
    assert assessed["b"].decision.state in (WORSE, OPEN) and next_round(sweep, assessed, results) is None  # b has its budget


def test_a_recorded_decision_is_final_whatever_a_relaunch_finds():
    sweep = _sweep()
    sweep.rounds.append({"none": 3, "a": 3, "b": 3})
    results = {"none": {0: 99.0, 1: 99.1, 2: 99.2}, "a": {0: 99.0, 1: 99.1, 2: 99.2}, "b": {0: 99.0, 1: 99.1, 2: 99.2}}
    first = assess(sweep, results)
    changed = {**results, "a": {0: 98.0, 1: 98.2, 2: 98.1}}  # a run trained again, differently
    again = assess(sweep, changed)
    assert again["a"].decision == first["a"].decision and again["a"].round == first["a"].round == 1


def test_a_failed_run_is_launched_again_once_and_then_named_never_silently_dropped():
    sweep = _sweep()
    sweep.rounds.append({"none": 3, "a": 3, "b": 3})
    results = {"none": {0: 99.0, 1: 99.1, 2: 99.2}, "a": {0: 99.0, 1: FAILED, 2: 99.2}, "b": {0: 98.0, 1: 99.1, 2: 99.9}}
    assessed = assess(sweep, results)
    assert assessed["a"].open and assessed["a"].missing == (1,) and not assessed["a"].stuck  # no look with a pair missing
    counts = next_round(sweep, assessed, results)
    sweep.rounds.append(counts)
    assert ("a", 1) in to_launch(sweep, results) and sweep.retried == {"a": [1]}
    assessed = assess(sweep, results)  # it failed again
    assert assessed["a"].stuck and assessed["a"].failed == (("a", 1),)
    assert ("a", 1) not in to_launch(sweep, results)


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
    proc = run_cli(*sweep_args(sweep, "hydra.sweeper.seeds_per_round=1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "seeds sweep, round 1: 6 jobs (seeds 0-2 of 2 groups)" in out
    state = json.loads((sweep / "seeds.json").read_text())
    assert state["rounds"][0] == {"regularization=none": 3, "regularization=dropout": 3} and state["step"] == pytest.approx(0.01)
    rounds = len(state["rounds"])
    assert f"seeds sweep, after round {rounds}:" in out
    runs = sorted(p.name for p in sweep.iterdir() if (p / "summary.json").exists())
    assert all(name.count("=") == 2 for name in runs), runs  # named by the swept keys only: regularization and seed
    assert len(runs) == sum(state["rounds"][-1].values()) and len(set(runs)) == len(runs)  # no seed twice
    for name in runs:  # each job's progress line names its own round
        seed = int(name.split("seed=")[1])
        line = next(line for line in out.splitlines() if f"] {name} " in line)
        assert f"· round {1 if seed < 3 else seed - 1} ·" in line, line
    decisions = pd.read_csv(sweep / "decisions.csv")
    report = (sweep / "report.md").read_text()
    assert "## Adaptive seeds" in report and "| regularization=none | | baseline of the others | – |" in report
    assert "| regularization=dropout | regularization=none |" in report and "would have taken 8" in report
    again = run_cli(str(sweep), "-o", str(tmp_path / "again"), script="mnistlab-report")
    assert again.returncode == 0, again.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / "decisions.csv"), decisions)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"min_seeds": 5, "max_seeds": 4}, "hydra.sweeper.max_seeds must be >= hydra.sweeper.min_seeds (5), got 4"),
        ({"delta": 0}, "hydra.sweeper.delta must be > 0"),
        ({"alpha": 0.9}, "hydra.sweeper.alpha must be between 0.001 and 0.2"),
        ({"alpha": 0.00001}, "hydra.sweeper.alpha must be between 0.001 and 0.2"),
        ({"max_seeds": 101}, "hydra.sweeper.max_seeds must be <= 100"),
    ],
)
def test_bad_sweeper_settings_are_refused_naming_the_key(setting, message):
    from hydra_plugins.mnistlab_seeds import SeedSweeper

    with pytest.raises(ConfigError, match=re.escape(message)):
        SeedSweeper(**setting)._plan(["regularization=none,dropout"])


def test_a_refused_sweeper_setting_is_one_line_before_any_job_and_leaves_no_directory(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(*sweep_args(sweep, "hydra.sweeper.alpha=0.9"))
    assert proc.returncode == 2 and proc.stderr.startswith("mnistlab: hydra.sweeper.alpha must be between 0.001 and 0.2"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not sweep.exists()


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
    recorded = json.loads((sweep / "seeds.json").read_text())["decisions"]
    finished = {
        p.parent.name: p.stat().st_mtime_ns for p in sweep.glob("*/summary.json") if json.loads(p.read_text())["status"] == "completed"
    }
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"seeds sweep: continuing {sweep} in round 2" in again.stdout + again.stderr
    for name, mtime in finished.items():  # a finished job is never run again
        assert (sweep / name / "summary.json").stat().st_mtime_ns == mtime, name
    state = json.loads((sweep / "seeds.json").read_text())
    for group, decision in recorded.items():  # decisions recorded before the kill stand as they were
        if decision["state"] != "open":
            assert state["decisions"][group] == decision
    runs = [p.parent.name for p in sweep.glob("*/summary.json")]
    assert len(runs) == sum(state["rounds"][-1].values())
    assert all(json.loads((sweep / name / "summary.json").read_text())["status"] == "completed" for name in runs)


def test_a_relaunch_with_another_design_is_refused_naming_what_differs(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    recorded = SeedSweep(
        {"regularization=none": ["regularization=none"], "regularization=dropout": ["regularization=dropout"]},
        {"regularization=none": None, "regularization=dropout": "regularization=none"},
        Design(3, 6, 0.05, 0.1, (1,), 2),
    )
    recorded.save(sweep)
    proc = run_cli(*sweep_args(sweep, "hydra.sweeper.seeds_per_round=2"))
    assert proc.returncode == 2 and "holds an adaptive-seed sweep of other settings (max_seeds: 6 -> 4)" in proc.stderr
    assert sorted(p.name for p in sweep.iterdir()) == ["seeds.json"]  # nothing of the refused launch stays


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
    assert sweep.baseline == "regularization=none" and sweep.design.families == (1, 1)
    chosen, _ = SeedSweeper(baseline="model=mlp")._plan(["model=lenet5,mlp"])
    assert chosen.baselines == {"model=lenet5": "model=mlp", "model=mlp": None}
