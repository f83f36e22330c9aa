"""The adaptive-seed sweeper's error rate and cost, by simulation with its own decision code (mnistlab.reports.seeds).

Each simulated sweep has a baseline and ``--comparisons`` other groups, compared with it as the sweeper compares them.
A run's accuracy is ``--level`` plus its group's true difference plus Gaussian noise of ``--sd`` points, rounded to
the metric's resolution ``--step`` (0.01 on MNIST's 10,000 test images, 0.22 on the digits' 450; 0: continuous), at
a level drawn anywhere on that grid for each sweep. ``--effect`` gives one group a true difference; ``--collapse``
makes that group collapse on that share of its seeds, at ``--collapse-acc``; ``--skew`` makes every compared group's
seeds skewed to the left (most a little better than their mean, a few much worse) with the same mean and spread.

It runs the sweeper's rounds: every group gets min_seeds, then every open comparison and its baseline get more,
until each is decided or has max_seeds. It prints the family-wise rate of false decisions (any decision that
contradicts a group's true expected difference, a collapsing group's collapses included: for it ``better`` is
false and ``worse`` true) with its standard error, the rate of a false "no difference that matters" at a true
difference of delta, and, for a list of effects, the seeds the adaptive sweep spends on the group with the effect
against the fixed design of the same power (one look, the same family-wise alpha, the same boundaries' method).

    python benchmarks/seed_simulation.py --sweeps 10000
    python benchmarks/seed_simulation.py --step 0.22 --sd 0.22 --delta 0.5 --json
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from mnistlab.reports.seeds import FAILED, SeedSweep, assess, next_round, to_launch
from mnistlab.reports.sequential import BETTER, BETTER_LARGE, BETTER_SMALL, SAME, WORSE, WORSE_LARGE, WORSE_SMALL, Design, boundaries


@dataclass(frozen=True)
class Noise:
    """How runs vary: per-run spread, resolution, skew of the compared groups, and one group's collapses."""

    sd: float = 0.06
    step: float = 0.0
    baseline_sd: float | None = None  # the baseline's spread, where it differs from the groups' (None: the same)
    skew: float = 0.0
    collapse: float = 0.0
    collapse_acc: float = 11.35
    level: float = 99.3
    failures: float = 0.0  # the share of runs that fail (a crash, a lost node) and succeed when launched again


def wrong(state: str, truth: float, delta: float) -> bool:
    """Whether a decision contradicts a true expected difference."""
    claims = {
        BETTER_LARGE: truth >= delta,
        BETTER: truth > 0,
        WORSE: truth < 0,
        WORSE_LARGE: truth <= -delta,
        BETTER_SMALL: 0 < truth < delta,
        WORSE_SMALL: -delta < truth < 0,
        SAME: abs(truth) < delta,
    }
    return state in claims and not claims[state]


def draw(rng: np.random.Generator, noise: Noise, n: int, skewed: bool) -> np.ndarray:
    """Standardized noise for ``n`` runs: Gaussian, or a gamma with skewness ``-noise.skew`` (mean 0, sd 1)."""
    if not skewed or noise.skew <= 0:
        return rng.standard_normal(n)
    shape = 4.0 / noise.skew**2
    return -(rng.gamma(shape, 1.0, n) - shape) / math.sqrt(shape)


def simulate(design: Design, effect: float, noise: Noise, rng: np.random.Generator) -> tuple[dict, dict, dict]:
    """One sweep of a baseline and ``design.comparisons`` groups, the first with ``effect`` (and the collapses).
    Returns the assessments, the seeds each group ran, and each group's true expected difference."""
    names = ["base", *(f"g{i}" for i in range(design.comparisons))]
    sweep = SeedSweep({n: [] for n in names}, {"base": None, **{n: "base" for n in names[1:]}}, design, step=noise.step)
    level = noise.level + (rng.uniform(0, noise.step) if noise.step else 0.0)
    means = {"base": level, **{n: level for n in names[1:]}}
    means["g0"] += effect
    runs = {}
    for n in names:
        sd = noise.baseline_sd if n == "base" and noise.baseline_sd is not None else noise.sd
        values = means[n] + sd * draw(rng, noise, design.max_seeds, skewed=n != "base")
        if n == "g0" and noise.collapse:
            values = np.where(rng.random(design.max_seeds) < noise.collapse, noise.collapse_acc, values)
        runs[n] = np.round(values / noise.step) * noise.step if noise.step else values
    truth = {n: means[n] - level for n in names}
    truth["g0"] = (1 - noise.collapse) * (level + effect) + noise.collapse * noise.collapse_acc - level
    results: dict[str, dict[int, float]] = {n: {} for n in names}
    assessed: dict = {}
    while True:
        counts = next_round(sweep, assessed, results)
        if counts is None:
            return assessed, sweep.rounds[-1], truth
        sweep.rounds.append(counts)
        for group, seed in to_launch(sweep, results):
            fails = noise.failures and results[group].get(seed) != FAILED and rng.random() < noise.failures
            results[group][seed] = FAILED if fails else float(runs[group][seed])
        assessed = assess(sweep, results)


def run(design: Design, effect: float, noise: Noise, sweeps: int, seed: int = 0) -> dict:
    """``sweeps`` simulated sweeps: the family-wise rate of false decisions with its standard error, how the group with
    the effect was decided, the seeds it ran and the runs of the whole sweep."""
    rng = np.random.default_rng(seed)
    false, states, seeds, runs = 0, {}, [], []
    for _ in range(sweeps):
        assessed, counts, truth = simulate(design, effect, noise, rng)
        false += any(wrong(a.decision.state, truth[g], design.delta) for g, a in assessed.items())
        state = assessed["g0"].decision.state
        states[state] = states.get(state, 0) + 1
        seeds.append(counts["g0"])
        runs.append(sum(counts.values()))
    rate = false / sweeps
    return {
        "sweeps": sweeps,
        "fwer": rate,
        "fwer_se": math.sqrt(max(rate * (1 - rate), 1 / sweeps) / sweeps),
        "states": {k: v / sweeps for k, v in sorted(states.items())},
        "power": (states.get(BETTER, 0) + states.get(BETTER_LARGE, 0)) / sweeps,
        "mean_seeds": float(np.mean(seeds)),
        "mean_runs": float(np.mean(runs)),
    }


def fixed_seeds(design: Design, effect: float, sd: float, power: float) -> int:
    """The seeds of the fixed design (one look at n, the same families and family-wise alpha) that finds ``effect``
    with ``power``: its paired t-test's noncentral distribution against its boundary (differences spread sd·√2)."""

    def achieved(n: int) -> float:
        c = boundaries(Design(n, n, design.alpha, design.delta, design.families, 1, design.rho)).values[0]
        return float(stats.nct.sf(c, n - 1, effect / (sd * math.sqrt(2)) * math.sqrt(n)))

    low, high = 2, 4
    while achieved(high) < power:  # the smallest power of two that is enough, then halve the gap
        low, high = high + 1, high * 2
        if high > 200:
            return 200
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if achieved(mid) < power else (low, mid)
    return low


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweeps", type=int, default=2000)
    parser.add_argument("--comparisons", type=int, default=7, help="groups compared with the baseline (the ablation's 7 presets)")
    parser.add_argument("--sd", type=float, default=0.06, help="each run's spread in accuracy (points)")
    parser.add_argument("--step", type=float, default=0.01, help="the metric's resolution (points); 0: continuous")
    parser.add_argument("--min-seeds", type=int, default=3)
    parser.add_argument("--max-seeds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=Design.seeds_per_round, help="seeds an open comparison adds per round")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--rho", type=float, default=Design.rho, help="the spending function's power")
    parser.add_argument("--effect", type=float, default=0.0, help="one group's true difference (points)")
    parser.add_argument("--collapse", type=float, default=0.0, help="the share of that group's seeds that collapse")
    parser.add_argument("--collapse-acc", type=float, default=11.35, help="the accuracy of a collapsed run")
    parser.add_argument("--skew", type=float, default=0.0, help="the skewness of the compared groups' seeds (to the left)")
    parser.add_argument("--failures", type=float, default=0.0, help="the share of runs that fail once (a crash) and are launched again")
    parser.add_argument("--baseline-sd", type=float, help="the baseline's spread, where it differs from the other groups'")
    parser.add_argument("--effects", type=float, nargs="*", help="effects for the seeds table (default: 1, 2, 3, 5 times delta)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    design = Design(args.min_seeds, args.max_seeds, args.alpha, args.delta, (args.comparisons,), args.per_round, args.rho)
    noise = Noise(args.sd, args.step, args.baseline_sd, args.skew, args.collapse, args.collapse_acc, failures=args.failures)
    main_run = run(design, args.effect, noise, args.sweeps, args.seed)
    at_delta = run(design, args.delta, Noise(args.sd, args.step), args.sweeps, args.seed + 1)
    false_same = at_delta["states"].get(SAME, 0.0) + at_delta["states"].get(BETTER_SMALL, 0.0)
    effects = args.effects if args.effects is not None else [k * args.delta for k in (1, 2, 3, 5)]
    table = []
    for i, effect in enumerate(effects):
        r = run(design, effect, Noise(args.sd, args.step), args.sweeps, args.seed + 2 + i)
        fixed = fixed_seeds(design, effect, args.sd, min(r["power"], 0.99)) if r["power"] > 0 else None
        table.append(
            {
                "effect": effect,
                "power": r["power"],
                "mean_seeds": r["mean_seeds"],
                "fixed_seeds": fixed,
                "fwer": r["fwer"],
                "mean_runs": r["mean_runs"],
            }
        )
    out = {
        "sweeps": args.sweeps,
        "design": {k: v for k, v in vars(args).items() if k not in ("json", "effects", "sweeps")},
        "fwer": main_run["fwer"],
        "fwer_se": main_run["fwer_se"],
        "states": main_run["states"],
        "mean_runs": main_run["mean_runs"],
        "false_no_difference": false_same,
        "false_no_difference_se": math.sqrt(max(false_same * (1 - false_same), 1 / args.sweeps) / args.sweeps),
        "boundary_mc_error": boundaries(design).mc_error,
        "seeds": table,
    }
    if args.json:
        print(json.dumps(out))
        return
    print(
        f"{args.sweeps} sweeps: a baseline and {args.comparisons} groups, runs spread by {args.sd} points in steps of {args.step}, {design}"
    )
    print(
        f"family-wise false decisions: {out['fwer']:.4f} ± {out['fwer_se']:.4f} (alpha {args.alpha}); the group with effect {args.effect:+g}: {main_run['states']}"
    )
    print(f"false 'no difference that matters' (or 'by less than delta') at a true difference of delta: {false_same:.4f}")
    groups = args.comparisons + 1
    print(
        "| true difference of one group | power (better) | its seeds, mean | fixed design, same power: seeds | runs of all groups, mean | false decisions |"
    )
    print("|---|---|---|---|---|---|")
    for row in table:
        print(
            f"| {row['effect']:+.2f} | {row['power']:.3f} | {row['mean_seeds']:.1f} | {row['fixed_seeds']} | {row['mean_runs']:.0f} of {groups * args.max_seeds} "
            f"| {row['fwer']:.4f} |"
        )


if __name__ == "__main__":
    main()
