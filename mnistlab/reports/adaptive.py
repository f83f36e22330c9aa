"""An adaptive-seed sweep in its report: each comparison's decision and the round that made it (as ``seeds.json``
recorded them), the seeds each group ran, the runs that failed, and what the sweep cost against running every
group to its budget."""

from __future__ import annotations

import copy
import math
from collections import Counter
from pathlib import Path

import pandas as pd

from mnistlab.errors import NOT_LEARNED
from mnistlab.reports.seeds import SeedSweep, assess, group_name, outcome, results_of, used
from mnistlab.reports.sequential import OPEN, boundaries
from mnistlab.runs.files import read_summary


def _summaries(sweep: SeedSweep, table: pd.DataFrame) -> list[tuple[str, int, dict]]:
    """``(group, seed, summary)`` of the runs in ``table`` (the sweep's summary.csv rows), as the sweeper read them."""
    keys = {name: [item.split("=", 1)[0].lstrip("+~") for item in overrides] for name, overrides in sweep.groups.items()}
    runs = []
    for _, row in table.iterrows():
        if not isinstance(row.get("run_dir"), str):
            continue
        for name, group_keys in keys.items():
            if all(key in row and pd.notna(row[key]) for key in group_keys) and group_name([f"{k}={row[k]}" for k in group_keys]) == name:
                try:
                    summary = read_summary(Path(row["run_dir"]))
                except ValueError:
                    summary = {"status": "unreadable"}
                runs.append((name, int(row["seed"]), summary))
                break
    return runs


def _results(sweep: SeedSweep, table: pd.DataFrame) -> dict[str, dict[int, float | str]]:
    """``{group: {seed: outcome}}`` of the runs in ``table``."""
    return results_of((group, seed, outcome(summary)) for group, seed, summary in _summaries(sweep, table))


def replayed(sweep_dir: Path, table: pd.DataFrame) -> tuple[SeedSweep, dict] | None:
    """The sweep's record and each comparison's assessment: the decisions ``seeds.json`` recorded, final; a sweep
    that recorded none (an earlier mnistlab) is replayed round by round from its runs. None for another sweep."""
    sweep = SeedSweep.load(sweep_dir)
    if sweep is None:
        return None
    results = _results(sweep, table)
    if not sweep.decisions and sweep.rounds:
        replay = copy.deepcopy(sweep)
        for r in range(1, len(sweep.rounds) + 1):
            replay.rounds = sweep.rounds[:r]
            assess(replay, results)
        sweep.decisions = replay.decisions
    return sweep, assess(copy.deepcopy(sweep), results)


def decisions(sweep_dir: Path, table: pd.DataFrame) -> tuple[SeedSweep, pd.DataFrame] | None:
    """One row per group: its decision against its baseline, the round that made it, its seeds, its repeated
    confidence interval, and the runs that failed; None for another kind of sweep."""
    found = replayed(sweep_dir, table)
    if found is None:
        return None
    sweep, assessed = found
    counts = used(sweep)
    learned_nothing = Counter(group for group, _, summary in _summaries(sweep, table) if summary.get("status") in NOT_LEARNED)
    rows = []
    for name in sweep.groups:
        a = assessed.get(name)
        row = {"group": name, "baseline": sweep.baselines[name] or "", "seeds": counts[name], "learned_nothing": learned_nothing[name]}
        if a is None:
            rows.append(row | {"decision": "baseline"})
            continue
        state = a.decision.state
        if state == OPEN:
            spent = counts[name] >= sweep.design.max_seeds or a.stuck
            state = "open (budget spent)" if spent else OPEN
        rows.append(
            row
            | {
                "decision": state,
                "decided_in_round": a.round,
                "paired_seeds": a.decision.seeds,
                "mean_difference": a.decision.mean,
                "interval_low": max(-100.0, a.decision.low),
                "interval_high": min(100.0, a.decision.high),
                "failed_runs": "; ".join(f"{g} seed {s}" for g, s in a.failed),
            }
        )
    return sweep, pd.DataFrame(rows)


def _state(state: str, delta: float) -> str:
    return state.replace("delta", f"{delta:g}")


def section(sweep: SeedSweep, table: pd.DataFrame) -> list[str]:
    """report.md's section: how the sweep decided, each comparison with its round, and what it cost."""
    d = sweep.design
    runs = int(table["seeds"].sum())
    everything = d.max_seeds * len(table)
    bounds = boundaries(d)
    step = f"in steps of {sweep.step:.2g} points" if sweep.step else "continuous"
    lines = [
        "## Adaptive seeds",
        "",
        f"{len(sweep.rounds)} rounds, {runs} runs. Every group first ran {d.min_seeds} seeds; after each round a comparison still open "
        f"gave its group and its baseline {d.seeds_per_round} more, up to {d.max_seeds}. A comparison is decided by its repeated 95% "
        f"confidence interval of the mean difference ({step}; a group-sequential paired t-test, alpha {d.alpha} spent over "
        f"the rounds and shared by the {d.comparisons} comparisons, docs/seeds.md): better or worse when the interval excludes 0 "
        f"(by at least {d.delta:g} when it also excludes ±{d.delta:g}, by less than {d.delta:g} when it stays within "
        f"±{d.delta:g}), no difference that matters when it holds 0 inside ±{d.delta:g}. The first look that decides is final. "
        f"Any decision of the family is wrong with probability at most {d.alpha} (± {bounds.mc_error:.4f}, the boundaries' "
        "Monte Carlo error) where seeds vary like Gaussian draws; the interval is the estimate to quote (a mean at an early "
        "decision leans high). A run that collapsed or diverged counts at the accuracy it ended with; the table above tests "
        "each difference as if its seeds had been fixed in advance, so its p-values understate the chance of a false "
        "difference: the decisions here are the ones that account for how the seeds were chosen.",
        "",
        "| group | vs | decision | round | seeds | learned nothing | mean difference | interval of the difference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    failed = []
    for _, row in table.iterrows():
        if row["decision"] == "baseline":
            lines.append(f"| {row['group']} | | baseline of the others | – | {row['seeds']} | {row['learned_nothing']} | | |")
            continue
        low, high = row["interval_low"], row["interval_high"]
        interval = f"[{low:+.2f}, {high:+.2f}]" if math.isfinite(low) and math.isfinite(high) else "(no complete look yet)"
        mean = f"{row['mean_difference']:+.2f}" if math.isfinite(row["mean_difference"]) else ""
        when = str(int(row["decided_in_round"])) if pd.notna(row["decided_in_round"]) else "–"
        lines.append(
            f"| {row['group']} | {row['baseline']} | {_state(row['decision'], d.delta)} | {when} | {row['seeds']} | {row['learned_nothing']} "
            f"| {mean} | {interval} |"
        )
        if row.get("failed_runs"):
            failed.append(f"{row['group']}: {row['failed_runs']}")
    saved = everything - runs
    lines += [
        "",
        f"The sweep ran {runs} runs; running every group to its budget of {d.max_seeds} seeds would have taken {everything}"
        + (f", so it saved {saved} run{'s' if saved != 1 else ''} ({saved / everything:.0%})." if saved > 0 else "."),
    ]
    if failed:
        lines += ["", "Runs that failed twice (their comparisons could not look again): " + "; ".join(failed) + "."]
    lines += [
        "",
        "A run that learned nothing (collapsed or diverged) counts at the accuracy it ended with, so a group that fails on "
        "some seeds is worse for it; but a failure that has not happened yet cannot count: a group decided better on seeds "
        "that all trained may still fail on others (docs/seeds.md gives the rates).",
    ]
    return [*lines, ""]
