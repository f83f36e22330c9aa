"""The adaptive-seed sweeper's error rate and cost, by simulation with its own decision code (mnistlab.reports.seeds).

Each simulated sweep has a baseline and ``--groups`` other groups whose per-seed test accuracy is Gaussian around
``99.3 + effect`` with the spread of our real runs (``--sd`` points; LeNet-5's seeds spread by 0.03 to 0.08). It runs
the sweeper's rounds: every group gets min_seeds, then every open comparison and its baseline get more, until
each is decided or has max_seeds. Under the null (no effect anywhere) it counts sweeps with any false "better" or
"worse"; with one group better by ``--effect``, the sweeps that find it, the seeds they spend, and the seeds a fixed
design spends for the same power (a paired t-test at the same level). The runs it spends beyond those decide the
groups without an effect: "no difference that matters" needs enough seeds to bound the difference within ±delta.

    python benchmarks/seed_simulation.py --sweeps 20000
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import stats

from mnistlab.reports.seeds import SeedSweep, assess, next_round
from mnistlab.reports.sequential import Design


def simulate(design: Design, effects: list[float], sd: float, rng: np.random.Generator, seeds_per_round: int = 2) -> tuple[dict, dict]:
    """One sweep: ``effects`` per group after the baseline (its own effect 0). Returns the final assessments and the
    seeds each group ran."""
    names = ["base", *(f"g{i}" for i in range(len(effects)))]
    sweep = SeedSweep({n: [] for n in names}, {"base": None, **{f"g{i}": "base" for i in range(len(effects))}}, design, seeds_per_round)
    truth = {"base": 0.0, **{f"g{i}": e for i, e in enumerate(effects)}}
    draws = {n: 99.3 + truth[n] + rng.normal(0.0, sd, design.max_seeds) for n in names}
    assessed = {}
    while True:
        results = {n: {s: float(draws[n][s]) for s in range(sweep.rounds[-1][n])} for n in names} if sweep.rounds else {}
        assessed = assess(sweep, results) if sweep.rounds else {}
        counts = next_round(sweep, assessed)
        if counts is None:
            return assessed, sweep.rounds[-1]
        sweep.rounds.append(counts)


def fixed_seeds(effect: float, sd: float, level: float, power: float) -> int:
    """The seeds a fixed paired t-test at ``level`` needs for ``power`` at ``effect`` (differences' spread sd·√2)."""
    for n in range(2, 1000):
        critical = stats.t.ppf(1 - level / 2, n - 1)
        shift = effect / (sd * math.sqrt(2)) * math.sqrt(n)
        tails = np.nan_to_num([stats.nct.sf(critical, n - 1, shift), stats.nct.cdf(-critical, n - 1, shift)])  # nan: underflow
        if tails.sum() >= power:
            return n
    return 1000


def run(design: Design, groups: int, effect: float, sd: float, sweeps: int, seed: int = 0, seeds_per_round: int = 2) -> dict:
    """``sweeps`` simulated sweeps: the family-wise rate of false decisions, the power for the one real effect (if any),
    the mean runs launched, and the fixed design of the same power."""
    rng = np.random.default_rng(seed)
    effects = [effect] + [0.0] * (groups - 1)
    false, found, runs, effect_seeds = 0, 0, [], []
    for _ in range(sweeps):
        assessed, seeds = simulate(design, effects, sd, rng, seeds_per_round)
        runs.append(sum(seeds.values()))
        effect_seeds.append(seeds["g0"])
        wrong = [g for g, a in assessed.items() if a.decision.state in ("better", "worse") and (g != "g0" or effect == 0)]
        wrong += [g for g, a in assessed.items() if g == "g0" and effect != 0 and a.decision.state == "worse"]
        wrong += [
            g for g, a in assessed.items() if abs(effects[int(g[1:])]) >= design.delta and a.decision.state == "no difference that matters"
        ]
        false += bool(wrong)
        found += effect != 0 and assessed["g0"].decision.state == "better"
    power = found / sweeps
    out = {"sweeps": sweeps, "fwer": false / sweeps, "fwer_se": math.sqrt(max(false, 1) / sweeps * (1 - false / sweeps) / sweeps)}
    out |= {"mean_runs": float(np.mean(runs)), "mean_effect_seeds": float(np.mean(effect_seeds)), "power": power}
    if effect:  # a fixed design's power approaches 1 only slowly: compared at most at 0.99
        out["fixed_seeds"] = fixed_seeds(effect, sd, design.level, min(power, 0.99)) if power > 0 else 0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweeps", type=int, default=2000)
    parser.add_argument("--groups", type=int, default=7, help="groups besides the baseline (the ablation's presets)")
    parser.add_argument("--sd", type=float, default=0.06, help="each run's spread in test accuracy (points)")
    parser.add_argument("--effects", type=float, nargs="+", default=[0.0, 0.1, 0.15, 0.2, 0.3], help="the one group's true gain (points)")
    parser.add_argument("--min-seeds", type=int, default=3)
    parser.add_argument("--max-seeds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=2)
    parser.add_argument("--delta", type=float, default=0.1)
    args = parser.parse_args()
    design = Design(args.min_seeds, args.max_seeds, 0.05, args.delta, args.groups)
    print(
        f"{args.sweeps} sweeps of a baseline and {args.groups} groups, runs spread by {args.sd} points, {design}, {args.per_round} seeds per round"
    )
    print(
        "| gain of one group | false decisions (family-wise) | power | its seeds, mean | fixed design, same power: seeds | runs, mean (all groups) |"
    )
    print("|---|---|---|---|---|---|")
    for effect in args.effects:
        r = run(design, args.groups, effect, args.sd, args.sweeps, seed=round(effect * 1000), seeds_per_round=args.per_round)
        fixed = str(r["fixed_seeds"]) if effect else ""
        print(
            f"| {effect:+.2f} | {r['fwer']:.4f} ± {r['fwer_se']:.4f} | {r['power']:.3f} | {r['mean_effect_seeds']:.1f} | {fixed} | {r['mean_runs']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
