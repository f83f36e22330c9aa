"""Confidence intervals, tests against a baseline, Holm's correction, and the report that shows them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import run_cli
from mnistlab.reports.statistics import Baseline, choose_baseline, compare_to_baseline, holm, holm_levels, mean_ci, seeds_needed
from mnistlab.reports.sweep import write_report


def test_mean_ci_is_students_t_interval():
    low, high = mean_ci([1.0, 2.0, 3.0])
    half = stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)  # sd 1, n 3
    assert (low, high) == pytest.approx((2 - half, 2 + half))
    assert all(np.isnan(mean_ci([5.0])))
    assert mean_ci([4.0, 4.0]) == (4.0, 4.0)


def test_holm_adjusts_step_down_and_keeps_order():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, np.nan, 0.001]) == pytest.approx([0.5, np.nan, 0.002], nan_ok=True)
    assert holm([0.9, 0.8]).max() <= 1.0


def runs(groups: dict[tuple[str, str], list[float]], seeds=("0", "1", "2")) -> pd.DataFrame:
    rows = [
        {"model": m, "regularization": r, "seed": seed, "final_test_acc": value}
        for (m, r), values in groups.items()
        for seed, value in zip(seeds, values, strict=False)
    ]
    return pd.DataFrame(rows)


def test_the_baseline_rule():
    groups = pd.DataFrame({"model": ["lenet5", "lenet5", "mlp"], "regularization": ["dropout", "none", "none"]})
    assert choose_baseline(groups, ["model", "regularization"]) == Baseline("regularization", "none")
    assert choose_baseline(groups[["model"]].assign(x=1), ["model"]) == Baseline("model", "lenet5")  # first value launched
    assert choose_baseline(groups, ["model", "regularization"], "model=mlp") == Baseline("model", "mlp")
    with pytest.raises(ValueError, match="no group has model=resnet"):
        choose_baseline(groups, ["model", "regularization"], "model=resnet")
    with pytest.raises(ValueError, match="with a swept key"):
        choose_baseline(groups, ["model", "regularization"], "seed=1")


def test_groups_with_the_same_seeds_are_compared_paired_within_the_other_keys():
    data = {
        ("lenet5", "none"): [99.20, 99.30, 99.25],
        ("lenet5", "all"): [99.45, 99.50, 99.47],
        ("mlp", "none"): [98.20, 98.30, 98.25],
        ("mlp", "all"): [98.22, 98.28, 98.27],
    }
    table = compare_to_baseline(runs(data), ["model", "regularization"], Baseline("regularization", "none")).set_index(
        ["model", "regularization"]
    )
    lenet = table.loc[("lenet5", "all")]
    expected = stats.ttest_rel(data[("lenet5", "all")], data[("lenet5", "none")])
    assert lenet["test"] == "paired t" and lenet["baseline"] == "model=lenet5, regularization=none"
    assert lenet["diff"] == pytest.approx(np.mean(data[("lenet5", "all")]) - np.mean(data[("lenet5", "none")]))
    assert lenet["p"] == pytest.approx(expected.pvalue) and lenet["p_holm"] == pytest.approx(min(1, 2 * expected.pvalue))
    assert (lenet["diff_ci_low"], lenet["diff_ci_high"]) == pytest.approx(tuple(expected.confidence_interval(0.95)))
    assert bool(lenet["significant"]) and not bool(table.loc[("mlp", "all"), "significant"])
    assert table.loc[("mlp", "none"), "baseline"] == "" and np.isnan(table.loc[("mlp", "none"), "p"])


def test_groups_with_different_seeds_get_welchs_test():
    table = runs({("lenet5", "none"): [99.2, 99.3, 99.25]})
    table = pd.concat([table, runs({("lenet5", "all"): [99.5, 99.4, 99.45, 99.5]}, seeds=("3", "4", "5", "6"))])
    row = compare_to_baseline(table, ["model", "regularization"], Baseline("regularization", "none")).iloc[1]
    expected = stats.ttest_ind([99.5, 99.4, 99.45, 99.5], [99.2, 99.3, 99.25], equal_var=False)
    assert row["test"] == "Welch t" and row["p"] == pytest.approx(expected.pvalue)


def fake_sweep(root, groups: dict[str, list[float]]) -> None:
    """Run directories as a sweep leaves them (overrides, summary, metrics), with given test accuracies."""
    for reg, values in groups.items():
        for seed, acc in enumerate(values):
            run = root / f"regularization={reg},seed={seed}"
            (run / ".hydra").mkdir(parents=True)
            (run / ".hydra" / "overrides.yaml").write_text(f"- regularization={reg}\n- seed={seed}\n")
            summary = {"status": "completed", "model": "lenet5", "params": 61706, "final_test_acc": acc, "final_test_loss": 0.03}
            summary |= {"final_train_acc": 99.9, "final_train_loss": 0.001, "seconds": 1.0, "epochs_run": 1}
            (run / "summary.json").write_text(json.dumps(summary))
            (run / "metrics.csv").write_text(
                f"epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds\n1,0.001,99.9,0.03,{acc},0.05,1.0\n"
            )


@pytest.mark.parametrize("effect,level", [(1.0, 0.05), (0.5, 0.05 / 3), (2.0, 0.01)])
def test_seeds_needed_give_80_percent_power(effect, level):
    """At the seeds it names, a paired t-test at ``level`` finds a difference of ``effect`` standard deviations 80% of the
    time, and one seed fewer does not (simulated)."""
    rng = np.random.default_rng(0)
    differences = rng.normal(size=50)
    differences = (differences - differences.mean()) / differences.std(ddof=1) + effect  # mean `effect`, sd 1
    n = int(seeds_needed(differences, level))

    def simulated_power(seeds: int) -> float:
        samples = rng.normal(effect, 1.0, size=(20_000, seeds))
        return float((stats.ttest_1samp(samples, 0, axis=1).pvalue < level).mean())

    assert simulated_power(n) >= 0.78 and simulated_power(n - 1) < 0.8
    assert np.isnan(seeds_needed([0.1], level)) and np.isnan(seeds_needed([0.2, 0.2], level))


def test_a_large_difference_needs_few_seeds_not_more_than_any_budget():
    """Where the far tail of the noncentral t underflows (nan), it counts as 0: 8 standard deviations need 4 seeds."""
    differences = np.array([7.0, 8.0, 9.0])
    assert seeds_needed(differences, 0.05 / 7) == 4


def test_holm_levels_are_alpha_over_the_tests_left():
    assert list(holm_levels([0.04, 0.001, np.nan, 0.2])) == pytest.approx([0.05 / 2, 0.05 / 3, np.nan, 0.05], nan_ok=True)


def test_the_report_marks_what_is_significant(tmp_path):
    fake_sweep(tmp_path, {"none": [99.20, 99.30, 99.25], "augment": [99.45, 99.50, 99.47], "dropout": [99.22, 99.33, 99.24]})
    report, incomplete = write_report([tmp_path])
    assert incomplete == 0
    text = report.read_text()
    assert "the group with regularization=none" in text and "paired over seeds" in text and "Holm" in text
    assert "| none | 61,706 | 3/3 | 99.25 ± 0.05 |" in text and "| baseline |" in text
    augment = next(line for line in text.splitlines() if line.startswith("| augment"))
    dropout = next(line for line in text.splitlines() if line.startswith("| dropout"))
    assert "+0.22 [" in augment and "*" in augment.split("|")[7]
    assert "+0.01 [" in dropout and "*" not in dropout.split("|")[7]
    assert augment.split("|")[8].strip() == "" and int(dropout.split("|")[8]) > 3  # the seeds its difference needs
    comparison = pd.read_csv(tmp_path / "comparison.csv")
    statistics = ("ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high", "p", "p_holm", "significant", "seeds_needed")
    assert {f"final_test_acc.{name}" for name in statistics} | {"baseline", "test"} <= set(comparison)
    assert "Warning" not in text


def test_fewer_than_three_seeds_are_warned_about_and_a_bad_baseline_is_one_line(tmp_path):
    fake_sweep(tmp_path, {"none": [99.2, 99.9], "augment": [99.5]})
    text = write_report([tmp_path])[0].read_text()
    assert "**Warning:** 2 group(s) with fewer than 3 seeds" in text and "| n < 2 |" in text
    assert "| 2/2 | 99.55 ± 0.49 | too few seeds |" in text  # not [95.1, 104.0]: an accuracy stays within 0-100
    none = pd.read_csv(tmp_path / "comparison.csv").set_index("regularization").loc["none"]
    assert none["final_test_acc.ci_low"] > 95 and none["final_test_acc.ci_high"] == 100.0
    proc = run_cli(str(tmp_path), "--baseline", "regularization=all", script="mnistlab-report")
    assert proc.returncode == 2 and "no group has regularization=all (values: augment, none)" in proc.stderr
    proc = run_cli(str(tmp_path), "--baseline", "regularization=augment", "-o", str(tmp_path / "other"), script="mnistlab-report")
    assert proc.returncode == 0 and "the group with regularization=augment" in proc.stdout
