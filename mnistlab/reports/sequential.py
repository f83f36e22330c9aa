"""Decisions over seeds that stay valid however often the data are looked at: a group-sequential paired t-test
with alpha spending, and its repeated confidence intervals.

Each comparison (a group against its baseline, paired over seeds) is looked at after every round of seeds. At
a look with n paired seeds, the repeated confidence interval is the mean difference ± c_n s / √n, where the
boundaries c_n spend the comparison's level (alpha / comparisons) over the looks as ``level · (n / max_seeds)^ρ``
(Kim & DeMets 1987; ρ = 3 is close to O'Brien & Fleming's boundary) and are computed for the t-statistics
themselves, whose null distribution does not depend on the spread, by simulating 200,000 Gaussian paths
(Jennison & Turnbull 1989, 1991): exact at any number of seeds, not only in the limit. With probability at least
1 − level the interval holds the true difference at every look, whenever the looks stop, so each decision below
is wrong with probability at most alpha / comparisons, and any decision of the family with probability at most alpha:

- **better** or **worse**: the interval lies above or below 0;
- **no difference that matters**: the interval lies inside ±delta;
- **open** otherwise, until its groups have ``max_seeds`` seeds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PATHS, PATH_SEED, CHUNK = 200_000, 1987, 20_000
RHO = 3.0  # the spending function's power: level * t^RHO
DECISIONS = ("better", "worse", "no difference that matters", "open")


@dataclass(frozen=True)
class Design:
    """What an adaptive-seed sweep decides with: the seeds each group gets first and at most, the family-wise
    ``alpha`` over ``comparisons`` comparisons, and ``delta``, the smallest difference that matters (metric units)."""

    min_seeds: int = 3
    max_seeds: int = 20
    alpha: float = 0.05
    delta: float = 0.1
    comparisons: int = 1

    @property
    def level(self) -> float:
        """Each comparison's error probability: alpha / comparisons."""
        return self.alpha / max(1, self.comparisons)


@dataclass(frozen=True)
class Decision:
    state: str  # one of DECISIONS
    low: float  # the repeated confidence interval of the mean difference (running intersection), NaN before a look
    high: float
    seeds: int  # the paired seeds at the last look


@functools.lru_cache(maxsize=8)
def _null_t(max_seeds: int) -> np.ndarray:
    """|t| of the running mean of Gaussian differences with mean 0, at each n from 1 to max_seeds (column n - 1), for
    PATHS simulated paths, from a fixed seed: the same boundaries on every machine and in every report."""
    rng = np.random.default_rng(PATH_SEED)
    out = np.empty((PATHS, max_seeds), dtype=np.float32)
    n = np.arange(1, max_seeds + 1)
    for start in range(0, PATHS, CHUNK):
        x = rng.standard_normal((CHUNK, max_seeds))
        mean = np.cumsum(x, 1) / n
        var = np.maximum(np.cumsum(x * x, 1) - n * mean**2, 0.0) / np.maximum(n - 1, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start : start + CHUNK] = np.abs(mean / np.sqrt(var / n))
    out[:, 0] = np.inf  # one seed: no spread, no look
    return out


@functools.lru_cache(maxsize=1024)
def boundaries(looks: tuple[int, ...], max_seeds: int, level: float) -> tuple[float, ...]:
    """The |t| boundary of each look (paired seeds at each, increasing), spending ``level * (n / max_seeds)^RHO`` by
    each look's n; a look that may spend nothing yet has an infinite boundary."""
    t = _null_t(max(max_seeds, looks[-1]))
    alive = np.ones(PATHS, dtype=bool)
    spent, out = 0, []
    for n in looks:
        allowed = int(math.floor(level * min(1.0, n / max_seeds) ** RHO * PATHS))  # paths that may have crossed by now
        values = t[alive, n - 1]
        room = allowed - spent
        if n < 2 or room <= 0:
            out.append(math.inf)
            continue
        c = float(np.partition(values, len(values) - room)[len(values) - room]) if room <= len(values) else 0.0
        crossed = values >= c
        out.append(c)
        spent += int(crossed.sum())
        index = np.flatnonzero(alive)
        alive[index[crossed]] = False
    return tuple(out)


def decide(differences: Sequence[float], looks: Sequence[int], design: Design) -> Decision:
    """A comparison's state after its looks: ``differences`` are the paired per-seed differences in seed order,
    ``looks`` the number of them seen at each round's end (the last look is ``len(differences)``). The first look
    at which the repeated interval decides is final."""
    d = np.asarray(differences, dtype=float)
    looks = tuple(sorted({min(int(n), len(d)) for n in looks if n >= 2}))
    if not looks:
        return Decision("open", math.nan, math.nan, len(d))
    n = np.asarray(looks)
    c = np.asarray(boundaries(looks, design.max_seeds, design.level))
    sums, squares = np.cumsum(d)[n - 1], np.cumsum(d * d)[n - 1]
    mean = sums / n
    spread = np.sqrt(np.maximum(squares - n * mean**2, 0.0) / (n - 1))
    with np.errstate(invalid="ignore"):
        half = np.where(np.isfinite(c), c * spread / np.sqrt(n), np.inf)
    low, high = np.maximum.accumulate(mean - half), np.minimum.accumulate(mean + half)  # the running intersection
    states = np.select([low > 0, high < 0, (low > -design.delta) & (high < design.delta)], DECISIONS[:3], DECISIONS[3])
    decided = np.flatnonzero(states != "open")
    k = int(decided[0]) if len(decided) else len(looks) - 1
    return Decision(str(states[k]), float(low[k]), float(high[k]), int(n[k]))
