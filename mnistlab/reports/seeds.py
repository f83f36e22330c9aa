"""An adaptive-seed sweep's rounds: what each run counts as, each comparison's decision, the seeds each group gets
next, and the record (``seeds.json``) that a relaunch continues from and a report reads.

Seeds are 0, 1, 2, ... in every group, so each comparison is paired over seeds. A run's value is its objective
(validation accuracy if the run holds out a validation split, else test accuracy). A run that ended on its own
counts, whatever its status: a collapsed or diverged run is an outcome of its config and seed and enters its
comparison at the accuracy it ended with (chance level if it has none). A run without a result (a crash, a
lost node, a kill, NaN) is a failure: it is launched again in the next round, once, and until its pair is
complete its comparison does not look. A decision, once recorded, is final: a relaunch never changes it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mnistlab.reports.sequential import OPEN, Decision, Design, decide

STATE_FILE = "seeds.json"
FAILED = "failed"  # a run without a result, as :func:`outcome` says
FAILURES = ("failed", "unreadable", "pruned")  # ended without a result
NOT_ENDED = ("running", "unfinished", "interrupted", "terminated", "pending")  # stopped from outside, or not run: run it (again)
RETRIES = 1  # a failed run is launched again this many times


def outcome(summary: Mapping[str, Any]) -> float | str | None:
    """What a run counts as in its comparison: its objective (a number), :data:`FAILED`, or None (to run, or resume).

    A run that ended on its own counts at its objective, a run that learned nothing at chance level where it has
    none; a run that crashed, or ended with a NaN result, failed; a run killed or stopped from outside has not ended."""
    status = summary.get("status")
    if not status or status in NOT_ENDED:
        return None
    if status in FAILURES:
        return FAILED
    value = summary.get(summary.get("objective") or "final_test_acc")
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if status == "completed":
        return FAILED  # completed with a NaN result
    classes = summary.get("num_classes")
    return 100.0 / classes if isinstance(classes, int) and classes > 0 else FAILED


def resolution(summary: Mapping[str, Any]) -> float | None:
    """The step the objective moves in: 100 / the images of the split it is measured on, if the run says."""
    split = "val" if str(summary.get("objective", "")).startswith("final_val") else "test"
    images = (summary.get("images") or {}).get(split)
    return 100.0 / images if isinstance(images, int) and images > 0 else None


@dataclass
class SeedSweep:
    """What a sweep decides over: its groups (name: their overrides), each group's baseline (None: it is one, or has
    none), the design, the rounds so far (the seeds each group had launched after each), the decisions recorded
    (final), the metric's resolution and the relaunches of failed runs."""

    groups: dict[str, list[str]]
    baselines: dict[str, str | None]
    design: Design
    rounds: list[dict[str, int]] = field(default_factory=list)
    baseline: str | None = None  # the rule's answer, ``key=value``: the report compares with the same
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)  # group: {state, round, low, high, seeds, mean}
    step: float | None = None  # the objective's resolution, known from the first runs
    retried: dict[str, list[int]] = field(default_factory=dict)  # group: seeds launched again after failing

    @property
    def comparisons(self) -> dict[str, str]:
        """``{group: its baseline}`` for every group compared with one."""
        return {group: base for group, base in self.baselines.items() if base is not None}

    def decided(self, group: str) -> Decision | None:
        record = self.decisions.get(group)
        if record is None or record["state"] == OPEN:
            return None
        return Decision(record["state"], record["low"], record["high"], record["seeds"], record.get("mean", math.nan))

    def save(self, sweep_dir: Path) -> None:
        record = {
            "version": 2,
            "groups": self.groups,
            "baselines": self.baselines,
            "design": asdict(self.design),
            "rounds": self.rounds,
            "baseline": self.baseline,
            "decisions": self.decisions,
            "step": self.step,
            "retried": self.retried,
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
        design = dict(record["design"])
        design.pop("comparisons", None)  # a sweep of mnistlab 0.1 recorded the count, not the families: rebuilt
        shared = Counter(b for b in record["baselines"].values() if b is not None)
        design["families"] = tuple(design.get("families") or tuple(shared.values()) or (1,))
        design.setdefault("seeds_per_round", record.get("seeds_per_round", 2))
        return cls(
            record["groups"],
            record["baselines"],
            Design(**design),
            record["rounds"],
            record.get("baseline"),
            record.get("decisions", {}),
            record.get("step"),
            {g: list(s) for g, s in record.get("retried", {}).items()},
        )


@dataclass(frozen=True)
class Assessment:
    """A comparison after the rounds so far: its decision (recorded or open), the round that made it (None: open),
    its paired differences (metric units, seed order), and the seeds whose pair is incomplete because a run failed."""

    decision: Decision
    round: int | None
    differences: tuple[float, ...]
    missing: tuple[int, ...] = ()
    failed: tuple[tuple[str, int], ...] = ()  # runs that failed after being launched again: their pairs stay incomplete

    @property
    def open(self) -> bool:
        return self.decision.state == OPEN

    @property
    def stuck(self) -> bool:
        """Open for good: a pair it needs is missing because a run failed twice."""
        return self.open and bool(self.failed)


def paired(
    results: Mapping[str, Mapping[int, float | str]], group: str, baseline: str, seeds: int
) -> tuple[list[int], list[float], list[int]]:
    """Below ``seeds``: the seeds both groups have a value for, the group's differences to its baseline on them, and
    the seeds where a run failed or has no result yet."""
    common, differences, missing = [], [], []
    for s in range(seeds):
        a, b = results.get(group, {}).get(s), results.get(baseline, {}).get(s)
        if isinstance(a, float) and isinstance(b, float):
            common.append(s)
            differences.append(a - b)
        else:
            missing.append(s)
    return common, differences, missing


def assess(sweep: SeedSweep, results: Mapping[str, Mapping[int, float | str]]) -> dict[str, Assessment]:
    """Each comparison after the recorded rounds, from ``results`` (``{group: {seed: value or FAILED}}``). A decision
    recorded before is kept as it is; an open comparison looks now if its groups have reached a planned look with
    every pair complete, and a decision it reaches is recorded in ``sweep.decisions`` with this round."""
    out = {}
    last = sweep.rounds[-1] if sweep.rounds else {}
    looks = sweep.design.looks
    step = sweep.step or 0.0
    for group, base in sweep.comparisons.items():
        n = min(last.get(group, 0), last.get(base, 0))
        _, differences, missing = paired(results, group, base, n)
        failed = tuple(
            (g, s)
            for s in missing
            for g in (group, base)
            if results.get(g, {}).get(s) == FAILED and sweep.retried.get(g, []).count(s) >= RETRIES
        )
        recorded = sweep.decided(group)
        if recorded is not None:
            out[group] = Assessment(recorded, sweep.decisions[group]["round"], tuple(differences[: recorded.seeds]), tuple(missing))
            continue
        previous = sweep.decisions.get(group)
        if n in looks and not missing and (previous is None or previous["seeds"] < n):
            decision = decide(differences, sweep.design, step)
            decided_now = decision.state != OPEN
            sweep.decisions[group] = asdict(decision) | {"round": len(sweep.rounds) if decided_now else None}
        elif previous is not None:
            decision = Decision(OPEN, previous["low"], previous["high"], previous["seeds"], previous.get("mean", math.nan))
        else:
            decision = Decision(OPEN, math.nan, math.nan, 0)
        out[group] = Assessment(decision, sweep.decisions.get(group, {}).get("round"), tuple(differences), tuple(missing), failed)
    return out


def to_launch(sweep: SeedSweep, results: Mapping[str, Mapping[int, float | str]]) -> list[tuple[str, int]]:
    """The runs the current round still needs: seeds below each group's count without a value, a failed one only if it
    has not been launched again yet (it then counts as retried)."""
    counts = sweep.rounds[-1] if sweep.rounds else {}
    todo = []
    for group in sweep.groups:
        for s in range(counts.get(group, 0)):
            value = results.get(group, {}).get(s)
            if value is None:
                todo.append((group, s))
            elif value == FAILED and sweep.retried.get(group, []).count(s) < RETRIES:
                sweep.retried.setdefault(group, []).append(s)
                todo.append((group, s))
    return todo


def next_round(
    sweep: SeedSweep, assessed: Mapping[str, Assessment], results: Mapping[str, Mapping[int, Any]] | None = None
) -> dict[str, int] | None:
    """The seeds each group will have launched after the next round, or None when the sweep is done: the first round
    gives every group ``min_seeds``; then a comparison still open adds ``seeds_per_round`` to its group and its
    baseline, up to ``max_seeds``. A round with no new seeds still runs when a failed run may be launched again."""
    design = sweep.design
    if not sweep.rounds:
        return dict.fromkeys(sweep.groups, design.min_seeds)
    counts = dict(sweep.rounds[-1])
    grown = False
    for group, base in sweep.comparisons.items():
        if assessed[group].open and not assessed[group].stuck and counts[group] < design.max_seeds:
            target = min(design.max_seeds, counts[group] + design.seeds_per_round)
            counts[group], counts[base] = target, max(counts[base], target)
            grown = True
    if grown:
        return counts
    retry = results is not None and any(
        value == FAILED and sweep.retried.get(group, []).count(s) < RETRIES
        for group, seeds in results.items()
        for s, value in seeds.items()
        if any(a.open for g, a in assessed.items() if group in (g, sweep.comparisons[g]))
    )
    return counts if retry else None


def results_of(runs: Iterable[tuple[str, int, float | str | None]]) -> dict[str, dict[int, float | str]]:
    """``{group: {seed: value or FAILED}}`` from ``(group, seed, outcome)``; a run without any (None) is left out."""
    out: dict[str, dict[int, float | str]] = {}
    for group, seed, value in runs:
        if value is not None:
            out.setdefault(group, {})[int(seed)] = value
    return out


def infer_step(results: Mapping[str, Mapping[int, float | str]]) -> float | None:
    """The metric's resolution where no run reports it: the smallest gap between the values seen (never finer)."""
    values = sorted({round(v, 9) for seeds in results.values() for v in seeds.values() if isinstance(v, float)})
    gaps = [b - a for a, b in zip(values, values[1:], strict=False) if b - a > 1e-9]
    return min(gaps) if gaps else None


def used(sweep: SeedSweep) -> dict[str, int]:
    """The seeds each group has launched."""
    return dict(sweep.rounds[-1]) if sweep.rounds else dict.fromkeys(sweep.groups, 0)


def open_comparisons(assessed: Mapping[str, Assessment]) -> str:
    """``3 of 7 comparisons open (dropout, weight_decay, batch_norm)``: what a progress line says of the comparisons."""
    open_ = [g for g, a in assessed.items() if a.open]
    return f"{len(open_)} of {len(assessed)} comparisons open" + (f" ({', '.join(open_)})" if open_ else "")


def group_name(overrides: Sequence[str]) -> str:
    """A group's name from its swept overrides: ``regularization=augment`` (``model=mlp,regularization=all``)."""
    return ",".join(sorted(overrides, key=lambda item: item.split("=", 1)[0].lstrip("+~")))
