"""An adaptive-seed sweep in its report: each comparison's decision, the round that made it, the seeds each group ran,
and the runs it saved against fixed designs, replayed from the sweep's record of rounds (``seeds.json``)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from mnistlab.reports.columns import PRIMARY
from mnistlab.reports.seeds import SeedSweep, assess, fixed_design, group_name, results_of, used


def decisions(sweep_dir: Path, table: pd.DataFrame) -> tuple[SeedSweep, pd.DataFrame] | None:
    """The sweep's record and one row per group (its decision against its baseline, the round, its seeds, its repeated
    confidence interval, the seeds of the fixed design), from the runs in ``table``; None for another kind of sweep."""
    sweep = SeedSweep.load(sweep_dir)
    if sweep is None:
        return None
    keys = {name: [item.split("=", 1)[0] for item in overrides] for name, overrides in sweep.groups.items()}

    def name_of(row: pd.Series) -> str | None:
        for name, group_keys in keys.items():
            if all(key.lstrip("+~") in row and pd.notna(row[key.lstrip("+~")]) for key in group_keys):
                candidate = group_name([f"{key}={row[key.lstrip('+~')]}" for key in group_keys])
                if candidate == name:
                    return name
        return None

    done = table[table["status"] == "completed"]
    results = results_of((name_of(row), int(row["seed"]), row[PRIMARY]) for _, row in done.iterrows() if name_of(row) is not None)
    assessed = assess(sweep, results)
    fixed = fixed_design(sweep, assessed)
    counts = used(sweep)
    rows = []
    for name in sweep.groups:
        a = assessed.get(name)
        rows.append(
            {
                "group": name,
                "baseline": sweep.baselines[name] or "",
                "decision": a.decision.state if a else "baseline",
                "decided_in_round": a.round if a else None,
                "seeds": counts[name],
                "paired_seeds": a.decision.seeds if a else None,
                "interval_low": max(-100.0, a.decision.low) if a else None,
                "interval_high": min(100.0, a.decision.high) if a else None,
                "fixed_design_seeds": fixed.get(name, math.nan),
            }
        )
    return sweep, pd.DataFrame(rows)


def section(sweep: SeedSweep, table: pd.DataFrame) -> list[str]:
    """report.md's section: how the sweep decided, each comparison, and its cost against fixed designs."""
    d = sweep.design
    runs = int(table["seeds"].sum())
    fixed = table["fixed_design_seeds"]
    lines = [
        "## Adaptive seeds",
        "",
        f"{len(sweep.rounds)} rounds, {runs} runs. Every group first ran {d.min_seeds} seeds; after each round a comparison still open gave "
        f"its group and its baseline {sweep.seeds_per_round} more, up to {d.max_seeds}. Each comparison's repeated 95% confidence "
        f"interval, at level {d.level:.4g} (alpha {d.alpha} over {d.comparisons} comparisons; a group-sequential paired t-test with alpha "
        f"spending, docs/seeds.md), decides: better or worse when it excludes 0, no difference that matters when it lies inside "
        f"±{d.delta:g} points. Any decision of the family is wrong with probability at most {d.alpha}. The table above tests "
        "each difference as if its seeds had been fixed in advance; they were not, so its p-values understate the chance of "
        "a false difference: the decisions here are the ones that account for how the seeds were chosen.",
        "",
        "| group | vs | decision | round | seeds | interval of the difference | fixed design |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        if row["decision"] == "baseline":
            lines.append(f"| {row['group']} | | baseline | | {row['seeds']} | | {_seeds(row['fixed_design_seeds'])} |")
            continue
        interval = (
            "too few seeds"
            if not math.isfinite(row["interval_low"]) or not math.isfinite(row["interval_high"])
            else f"[{row['interval_low']:+.2f}, {row['interval_high']:+.2f}]"
        )
        when = str(int(row["decided_in_round"])) if pd.notna(row["decided_in_round"]) else ""
        decision = row["decision"] if row["decision"] != "open" or row["seeds"] < d.max_seeds else "open (budget spent)"
        lines.append(
            f"| {row['group']} | {row['baseline']} | {decision} | {when} | {row['seeds']} | {interval} | {_seeds(row['fixed_design_seeds'])} |"
        )
    needed = fixed.dropna()
    lines += [
        "",
        f"Runs: {runs} here; fixed {d.min_seeds} seeds per group: {d.min_seeds * len(table)} (deciding nothing it cannot at {d.min_seeds})",
    ]
    if len(needed) == len(table) and all(math.isfinite(v) for v in needed):
        lines[-1] += f"; the fixed design with 80% power for each comparison as observed (its seeds above): {int(needed.sum())}."
    else:
        lines[-1] += (
            "; a fixed design with 80% power for every comparison: more than any budget (a difference near 0 needs ever more seeds)."
        )
    return [*lines, ""]


def _seeds(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return "> 1000" if math.isinf(value) else str(int(value))
