"""Decisions over seeds that stay valid however often they are looked at: group-sequential paired t-tests with
alpha spending across comparisons that share a baseline, and their repeated confidence intervals.

Each comparison (a group against its baseline, paired over seeds) is looked at when its groups reach a planned
number of seeds (``min_seeds``, then every ``seeds_per_round`` more, up to ``max_seeds``). At a look with n paired
differences d, the repeated confidence interval is mean(d) ± c_n · s̃ / √n, where s̃² = s² + step²/6: the sample
variance plus the variance two roundings to the metric's resolution add (Sheppard 1898), so that differences that
tie exactly (test accuracy moves in steps of 100/N points) never make a zero spread and an infinite t.

The boundaries c_n spend the family-wise ``alpha`` over the looks as ``alpha · (n / max_seeds)^RHO`` (the power
family of Kim & DeMets 1987) for the largest |t| of all comparisons at once, as multi-arm multi-stage designs do
(Magirr, Jaki & Whitehead 2012): comparisons that share a baseline are correlated, and the boundary accounts for
it, like Dunnett's test. A look whose spending is large enough is computed from ``PATHS`` simulated sweeps under
no difference (Gaussian seeds, each family sharing its baseline as the sweep does), from a fixed seed; a look
whose spending would rest on fewer than ``MIN_CROSSINGS`` of them (a small alpha's first looks) takes the
Bonferroni bound of the t distribution over the comparisons instead, and is charged its whole share. With
probability at least 1 − alpha (up to the stated Monte Carlo error) every interval of every comparison holds its
true difference at every look, so any decision below is wrong with probability at most alpha over the whole
family:

- **better, by at least delta** / **worse, by at least delta**: the interval lies beyond ±delta;
- **better** / **worse**: the interval lies above / below 0 and holds +delta / -delta (the size is not resolved);
- **better, by less than delta** / **worse, by less than delta**: the interval lies between 0 and ±delta;
- **no difference that matters**: the interval holds 0 and lies inside ±delta;
- **open** otherwise, until the budget is spent.

The guarantee assumes what the simulated sweeps are: paired differences that vary like independent Gaussian draws
across seeds, with the comparisons of a baseline correlated as equal spreads make them (docs/seeds.md measures
what steps, ties, skew, unequal spreads and collapses do to it).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

PATHS, PATH_SEED, CHUNK = 200_000, 1987, 10_000
MIN_CROSSINGS = 400  # a look whose spending rests on fewer simulated crossings takes the Bonferroni bound instead
RHO = 1.0  # the spending function's power: alpha * (n / max_seeds)^RHO, linear (chosen by benchmarks/seed_simulation.py)
ALPHA_RANGE = (0.001, 0.2)  # outside it the first looks cannot decide, or the intervals stop meaning anything

BETTER_LARGE, BETTER, BETTER_SMALL, SAME, WORSE_SMALL, WORSE, WORSE_LARGE, OPEN = (
    "better, by at least delta",
    "better",
    "better, by less than delta",
    "no difference that matters",
    "worse, by less than delta",
    "worse",
    "worse, by at least delta",
    "open",
)
DECISIONS = (BETTER_LARGE, BETTER, BETTER_SMALL, SAME, WORSE_SMALL, WORSE, WORSE_LARGE, OPEN)


@dataclass(frozen=True)
class Design:
    """What an adaptive-seed sweep decides with: the seeds each group gets first, per round and at most, the
    family-wise ``alpha``, ``delta`` (the smallest difference that matters, metric units), and ``families``: how many
    comparisons share each baseline (``(7,)`` for the ablation, ``(1, 1)`` for two models each with two presets)."""

    min_seeds: int = 3
    max_seeds: int = 20
    alpha: float = 0.05
    delta: float = 0.1
    families: tuple[int, ...] = (1,)
    seeds_per_round: int = 1
    rho: float = RHO

    @property
    def comparisons(self) -> int:
        return sum(self.families)

    @property
    def looks(self) -> tuple[int, ...]:
        """The paired seeds at each planned look: min_seeds, then every seeds_per_round more, up to max_seeds."""
        return tuple(range(self.min_seeds, self.max_seeds, self.seeds_per_round)) + (self.max_seeds,)

    def spent(self, n: int) -> float:
        """The family-wise error this design may have spent by a look at ``n`` paired seeds."""
        return self.alpha * min(1.0, n / self.max_seeds) ** self.rho


@dataclass(frozen=True)
class Boundaries:
    """The |t| boundary at each planned look, whether it is the Bonferroni bound (charged its whole share, no Monte Carlo
    error), and the Monte Carlo standard error of the family-wise error the whole design spends."""

    looks: tuple[int, ...]
    values: tuple[float, ...]
    bound: tuple[bool, ...]
    mc_error: float

    def at(self, n: int) -> float:
        return self.values[self.looks.index(n)]


@dataclass(frozen=True)
class Decision:
    state: str  # one of DECISIONS
    low: float  # the repeated confidence interval of the mean difference at the look that made it; NaN before a look
    high: float
    seeds: int  # the paired seeds at that look
    mean: float = math.nan


def _max_t(design: Design, rng: np.random.Generator, paths: int) -> np.ndarray:
    """The largest |t| of all comparisons at each look, for ``paths`` simulated sweeps with no difference anywhere."""
    looks = np.asarray(design.looks)
    n_max = design.max_seeds
    out = np.zeros((paths, len(looks)), dtype=np.float32)
    counts = looks.astype(np.float64)
    for family in design.families:
        base = rng.standard_normal((paths, 1, n_max), dtype=np.float32)
        d = (rng.standard_normal((paths, family, n_max), dtype=np.float32) - base).astype(np.float64)
        s1 = np.cumsum(d, axis=2)[:, :, looks - 1]
        s2 = np.cumsum(d * d, axis=2)[:, :, looks - 1]
        mean = s1 / counts
        var = np.maximum(s2 - counts * mean**2, 1e-300) / (counts - 1)
        t = np.abs(mean) / np.sqrt(var / counts)
        np.maximum(out, t.max(axis=1).astype(np.float32), out=out)
    return out


@functools.lru_cache(maxsize=64)
def boundaries(design: Design) -> Boundaries:
    """The boundaries of ``design``'s planned looks (see the module's docstring); the same on every machine."""
    looks = design.looks
    if looks[0] < 2:
        raise ValueError("a look needs at least 2 paired seeds")
    rng = np.random.default_rng(PATH_SEED)
    t = np.concatenate([_max_t(design, rng, min(CHUNK, PATHS - start)) for start in range(0, PATHS, CHUNK)])
    alive = np.ones(PATHS, dtype=bool)
    crossed, values, bound = 0.0, [], []
    for j, n in enumerate(looks):
        room = design.spent(n) * PATHS - crossed  # simulated sweeps that may cross here
        hit_room = room < MIN_CROSSINGS
        if hit_room:  # too few to simulate: Bonferroni over the comparisons for the t distribution, charged in full
            c = float(stats.t.isf(max(room, 1e-12) / PATHS / (2 * design.comparisons), n - 1))
        else:
            current = t[alive, j]
            k = int(math.floor(room))
            c = float(np.partition(current, len(current) - k)[len(current) - k]) if k < len(current) else 0.0
        hit = alive & (t[:, j] >= c)
        crossed += max(room, 0.0) if hit_room else int(hit.sum())
        alive &= ~hit
        values.append(c)
        bound.append(hit_room)
    simulated = design.alpha - sum(design.spent(n) - design.spent(m) for m, n, b in zip((0, *looks), looks, bound, strict=False) if b)
    mc_error = math.sqrt(max(simulated, 0.0) * (1 - max(simulated, 0.0)) / PATHS)
    return Boundaries(looks, tuple(values), tuple(bound), mc_error)


def spread(differences: np.ndarray, step: float) -> float:
    """The standard deviation of paired differences, with the variance of rounding both values to ``step`` added."""
    n = len(differences)
    var = float(np.var(differences, ddof=1)) if n > 1 else math.inf
    return math.sqrt(var + step * step / 6.0)


def classify(low: float, high: float, delta: float) -> str:
    """The one state an interval [low, high] names (see the module's docstring)."""
    if low > 0:
        return BETTER_LARGE if low >= delta else BETTER_SMALL if high < delta else BETTER
    if high < 0:
        return WORSE_LARGE if high <= -delta else WORSE_SMALL if low > -delta else WORSE
    if low > -delta and high < delta:
        return SAME
    return OPEN


def decide(differences: Sequence[float], design: Design, step: float = 0.0) -> Decision:
    """A comparison's state at a look with ``len(differences)`` paired seeds, a planned look of ``design``:
    the repeated interval of the mean difference, and the state it names."""
    d = np.asarray(differences, dtype=float)
    n = len(d)
    c = boundaries(design).at(n)
    mean = float(d.mean())
    half = c * spread(d, step) / math.sqrt(n)
    low, high = mean - half, mean + half
    return Decision(classify(low, high, design.delta), low, high, n, mean)


def check_alpha(alpha: float) -> str | None:
    """Why ``alpha`` is refused, or None."""
    low, high = ALPHA_RANGE
    if not (isinstance(alpha, int | float) and not isinstance(alpha, bool) and low <= alpha <= high):
        return f"must be between {low} and {high} (every look must be able to decide, and an interval must mean something), got {alpha!r}"
    return None
