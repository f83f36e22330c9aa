"""An adaptive-seed sweep's rounds: each comparison's decision so far, the seeds each group gets next, and the record
of rounds (``seeds.json``) that a relaunch continues from and a report replays to the same decisions.

Seeds are 0, 1, 2, ... in every group, so each comparison is paired over the seeds both of its groups completed.
Every group first gets ``min_seeds``; after each round a comparison still open gives its group and its baseline
``seeds_per_round`` more, up to ``max_seeds`` (:mod:`.sequential` decides).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mnistlab.reports.sequential import Decision, Design, decide
from mnistlab.reports.statistics import seeds_needed

STATE_FILE = "seeds.json"


@dataclass
class SeedSweep:
    """What a sweep decides over: its groups (name: their overrides), each group's baseline (None: it is one, or has
    none), the design, the seeds per round, and the rounds so far (seeds each group had launched after each)."""

    groups: dict[str, list[str]]
    baselines: dict[str, str | None]
    design: Design
    seeds_per_round: int = 2
    rounds: list[dict[str, int]] = field(default_factory=list)
    baseline: str | None = None  # the rule's answer, ``key=value``: the report compares with the same

    @property
    def comparisons(self) -> dict[str, str]:
        """``{group: its baseline}`` for every group compared with one."""
        return {group: base for group, base in self.baselines.items() if base is not None}

    def save(self, sweep_dir: Path) -> None:
        record = {
            "groups": self.groups,
            "baselines": self.baselines,
            "design": asdict(self.design),
            "seeds_per_round": self.seeds_per_round,
            "rounds": self.rounds,
            "baseline": self.baseline,
        }
        tmp = Path(sweep_dir) / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(Path(sweep_dir) / STATE_FILE)

    @classmethod
    def load(cls, sweep_dir: Path) -> SeedSweep | None:
        path = Path(sweep_dir) / STATE_FILE
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        design = Design(**record["design"])
        return cls(record["groups"], record["baselines"], design, record["seeds_per_round"], record["rounds"], record.get("baseline"))


@dataclass(frozen=True)
class Assessment:
    """A comparison after the rounds so far: its decision, the round that made it (None: open), and its paired
    differences (metric units, seed order)."""

    decision: Decision
    round: int | None
    differences: tuple[float, ...]

    @property
    def open(self) -> bool:
        return self.decision.state == "open"


def paired(results: Mapping[str, Mapping[int, float]], group: str, baseline: str, seeds: int) -> tuple[list[int], list[float]]:
    """The seeds below ``seeds`` that both groups completed, and the group's differences to its baseline on them."""
    common = [s for s in range(seeds) if s in results.get(group, {}) and s in results.get(baseline, {})]
    return common, [results[group][s] - results[baseline][s] for s in common]


def assess(sweep: SeedSweep, results: Mapping[str, Mapping[int, float]]) -> dict[str, Assessment]:
    """Each comparison's decision after the recorded rounds, from ``results`` (``{group: {seed: value}}`` of completed
    runs): looked at once per round, with the seeds both groups had by then."""
    out = {}
    for group, base in sweep.comparisons.items():
        looks = [len(paired(results, group, base, min(counts[group], counts[base]))[0]) for counts in sweep.rounds]
        last = sweep.rounds[-1] if sweep.rounds else {group: 0, base: 0}
        _, differences = paired(results, group, base, min(last[group], last[base]))
        decision = decide(differences, looks, sweep.design)
        decided = None if decision.state == "open" else next(r for r, n in enumerate(looks, 1) if n >= decision.seeds)
        out[group] = Assessment(decision, decided, tuple(differences))
    return out


def next_round(sweep: SeedSweep, assessed: Mapping[str, Assessment]) -> dict[str, int] | None:
    """The seeds each group will have launched after the next round, or None when nothing is open with seeds left:
    the first round gives every group ``min_seeds``; then a comparison still open adds ``seeds_per_round`` to its
    group and its baseline, up to ``max_seeds``."""
    design = sweep.design
    if not sweep.rounds:
        return dict.fromkeys(sweep.groups, design.min_seeds)
    counts = dict(sweep.rounds[-1])
    grown = False
    for group, base in sweep.comparisons.items():
        if assessed[group].open and counts[group] < design.max_seeds:
            target = min(design.max_seeds, counts[group] + sweep.seeds_per_round)
            counts[group], counts[base] = target, max(counts[base], target)
            grown = True
    return counts if grown else None


def fixed_design(sweep: SeedSweep, assessed: Mapping[str, Assessment], power: float = 0.8) -> dict[str, float]:
    """The seeds per group of the fixed design that decides each comparison as a paired t-test at the same level would
    with ``power``, if the observed mean difference and spread are the truth (the baseline: the most any of its
    comparisons needs); NaN where the differences cannot say (fewer than 2, no spread)."""
    need = {group: seeds_needed(a.differences, sweep.design.level, power) for group, a in assessed.items()}
    out: dict[str, float] = {}
    for group, base in sweep.comparisons.items():
        out[group] = need[group]
        if not math.isnan(need[group]):
            out[base] = max(out.get(base, 0.0), need[group])
    return out


def open_comparisons(assessed: Mapping[str, Assessment]) -> str:
    """``3 of 7 open (dropout, weight_decay, batch_norm)``: what a progress line says of the comparisons."""
    open_ = [g for g, a in assessed.items() if a.open]
    return f"{len(open_)} of {len(assessed)} comparisons open" + (f" ({', '.join(open_)})" if open_ else "")


def results_of(runs: Iterable[tuple[str, int, float | None]]) -> dict[str, dict[int, float]]:
    """``{group: {seed: value}}`` from ``(group, seed, value or None)``; a run without a value is left out."""
    out: dict[str, dict[int, float]] = {}
    for group, seed, value in runs:
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            out.setdefault(group, {})[int(seed)] = float(value)
    return out


def used(sweep: SeedSweep) -> dict[str, int]:
    """The seeds each group has launched."""
    return dict(sweep.rounds[-1]) if sweep.rounds else dict.fromkeys(sweep.groups, 0)


def group_name(overrides: Sequence[str]) -> str:
    """A group's name from its swept overrides: ``regularization=augment`` (``model=mlp,regularization=all``)."""
    return ",".join(sorted(overrides, key=lambda item: item.split("=", 1)[0].lstrip("+~")))
