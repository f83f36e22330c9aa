"""Is a difference real? Confidence intervals over seeds, tests against a baseline group, Holm's correction.

Every group of a sweep is a sample of runs that differ only in the seed. Each gets a 95% confidence
interval for its mean (Student's t over its seeds). Each group is compared with its baseline: the group
that has the baseline value of the baseline key and the same values of every other swept key (with
``--baseline regularization=none``, ``model=mlp,regularization=all`` is compared with
``model=mlp,regularization=none``). The test is paired over seeds when every group was run with the same
seeds, else Welch's. The p-values of all comparisons are corrected together with Holm's method, and a
difference is significant when its corrected p-value is below 0.05. For a difference that is not, the
report says how many seeds a paired test would need to detect it with 80% power at the level Holm's method
holds it to (:func:`seeds_needed`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
CONFIDENCE = 0.95
POWER = 0.8
MOST_SEEDS = 1000  # beyond this, "more than 1000"
PREFERRED_BASELINES = {"regularization": "none"}  # the natural control where it was swept


@dataclass(frozen=True)
class Baseline:
    key: str
    value: str

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """The 95% confidence interval of the mean of ``values`` (Student's t); NaN with fewer than two values."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return np.nan, np.nan
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    low, high = stats.t.interval(CONFIDENCE, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    return float(low), float(high)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of p-values (NaN stays NaN and does not count as a test)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def holm_levels(p_values: Sequence[float], alpha: float = ALPHA) -> np.ndarray:
    """The level each test is held to by Holm's method: ``alpha / (m - rank)`` for the test of rank ``rank`` (0 for the
    smallest p-value) among the ``m`` tests (NaN where there is no test)."""
    p = np.asarray(p_values, dtype=float)
    levels = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    for rank, i in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        levels[i] = alpha / (len(tested) - rank)
    return levels


def seeds_needed(differences: Sequence[float], level: float, power: float = POWER) -> float:
    """How many seeds a paired t-test (two-sided, at ``level``) needs to detect the mean of ``differences`` with
    ``power``, if their mean and standard deviation are the truth: the noncentral t distribution's answer.
    NaN with fewer than two differences or none that differs; inf beyond :data:`MOST_SEEDS`."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2 or np.isnan(level):
        return np.nan
    spread = d.std(ddof=1)
    if spread == 0 or d.mean() == 0:
        return np.nan
    n = np.arange(2, MOST_SEEDS + 1)
    critical = stats.t.ppf(1 - level / 2, n - 1)
    shift = abs(d.mean()) / spread * np.sqrt(n)
    # the far tail's probability is nan where it underflows (a large shift): it is 0 there
    achieved = np.nan_to_num(stats.nct.sf(critical, n - 1, shift)) + np.nan_to_num(stats.nct.cdf(-critical, n - 1, shift))
    enough = np.flatnonzero(achieved >= power)
    return float(n[enough[0]]) if len(enough) else np.inf


def choose_baseline(groups: pd.DataFrame, keys: Sequence[str], requested: str | None = None) -> Baseline | None:
    """The baseline: ``requested`` (``key=value``), else ``regularization=none`` where swept, else the first
    value (in launch order) of the first swept key. None when there is nothing to compare."""
    if requested:
        key, sep, value = requested.partition("=")
        if not sep or key not in keys:
            raise ValueError(f"--baseline must be key=value with a swept key ({', '.join(keys) or 'none swept'}), got {requested!r}")
        if value not in set(groups[key].astype(str)):
            raise ValueError(f"--baseline {requested}: no group has {key}={value} (values: {', '.join(groups[key].astype(str).unique())})")
        return Baseline(key, value)
    if len(groups) < 2 or not keys:
        return None
    for key, value in PREFERRED_BASELINES.items():
        if key in keys and value in set(groups[key].astype(str)):
            return Baseline(key, value)
    return Baseline(keys[0], str(groups[keys[0]].iloc[0]))


def _seeds(frame: pd.DataFrame) -> tuple:
    return tuple(sorted(frame["seed"].astype(str))) if "seed" in frame else ()


def compare_to_baseline(runs: pd.DataFrame, keys: Sequence[str], baseline: Baseline, metric: str = "final_test_acc") -> pd.DataFrame:
    """Per group (in ``keys`` order): the baseline it is compared with, the difference of means with its 95% CI,
    the test used, its p-value and Holm's adjusted p-value, and whether the difference is significant."""
    done = runs[runs[metric].notna()].copy()
    for key in keys:
        done[key] = done[key].astype(str)
    groups = {values if isinstance(values, tuple) else (values,): frame for values, frame in done.groupby(list(keys), sort=False)}
    seed_sets = {_seeds(frame) for frame in groups.values()}
    paired = len(seed_sets) == 1 and "seed" in done and all(frame["seed"].is_unique for frame in groups.values())
    at = list(keys).index(baseline.key)
    rows = []
    for values, frame in groups.items():
        row = dict(zip(keys, values, strict=True))
        reference = values[:at] + (baseline.value,) + values[at + 1 :]
        if values[at] == baseline.value or reference not in groups:
            rows.append(row | {"baseline": "" if values[at] == baseline.value else "(none)"})
            continue
        base = groups[reference]
        a, b = ((f.sort_values("seed") if paired else f)[metric].to_numpy(float) for f in (frame, base))
        row |= {"baseline": ", ".join(f"{k}={v}" for k, v in zip(keys, reference, strict=True)), "diff": a.mean() - b.mean()}
        # the per-seed differences a paired test sees; unpaired, differences with the spread of two independent groups
        row["_differences"] = a - b if paired else a.mean() - b.mean() + np.concatenate([a - a.mean(), b.mean() - b])
        if min(len(a), len(b)) >= 2:
            with np.errstate(invalid="ignore", divide="ignore"):
                result = stats.ttest_rel(a, b) if paired else stats.ttest_ind(a, b, equal_var=False)
            low, high = result.confidence_interval(CONFIDENCE)
            row |= {"test": "paired t" if paired else "Welch t", "diff_ci_low": low, "diff_ci_high": high, "p": result.pvalue}
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*keys, "baseline"] if not rows else None)  # no result at all: no rows, same columns
    for column in ("diff", "diff_ci_low", "diff_ci_high", "p"):
        if column not in table:
            table[column] = np.nan
    table["p_holm"] = holm(table["p"])
    table["significant"] = table["p_holm"] < ALPHA
    levels = holm_levels(table["p"])
    differences = table.pop("_differences") if "_differences" in table else pd.Series([None] * len(table))
    table["seeds_needed"] = [
        seeds_needed(d, level) if isinstance(d, np.ndarray) and not significant else np.nan
        for d, level, significant in zip(differences, levels, table["significant"], strict=True)
    ]
    return table


OUTLIER_SPREADS = 6.0  # a seed this many typical spreads from its group's median stands out


def outliers(groups: dict[str, dict[int, float]], step: float = 0.0) -> tuple[list[tuple[str, int, float, float]], float]:
    """Seeds that stand out from their group: ``(group, seed, value, the group's median)`` for each, and the typical
    spread of a seed, pooled over every group: 1.4826 times the median distance of a seed from its group's median
    (each odd group's median itself left out). A seed stands out beyond :data:`OUTLIER_SPREADS` of them, and beyond
    3 steps of the metric. Too few seeds to pool (fewer than 4 distances): none."""
    medians = {g: float(np.median(list(v.values()))) for g, v in groups.items() if len(v) >= 3}
    distances = []
    for g, median in medians.items():
        values = sorted(groups[g].values())
        kept = values[: len(values) // 2] + values[(len(values) + 1) // 2 :] if len(values) % 2 else values
        distances += [abs(v - median) for v in kept]
    if len(distances) < 4:
        return [], math.nan
    spread = 1.4826 * float(np.median(distances))
    limit = max(OUTLIER_SPREADS * spread, 3 * step)
    if limit <= 0:  # every seed of every group tied, and no step known: nothing to measure a distance by
        return [], spread
    found = [(g, s, v, medians[g]) for g in medians for s, v in sorted(groups[g].items()) if abs(v - medians[g]) > limit]
    return found, spread
