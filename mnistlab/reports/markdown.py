"""The comparison as report.md's table: one row per group, one or more cells per declared column."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mnistlab.reports.columns import PRIMARY, ReportColumn, stat
from mnistlab.reports.statistics import ALPHA, MOST_SEEDS


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def interval(low: Any, high: Any, digits: int = 2, sign: str = "") -> str:
    """``[99.05, 99.46]``, or nothing without an interval."""
    if _missing(low) or pd.isna(low):
        return ""
    return f"[{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def mean_std(row: pd.Series, key: str, digits: int) -> str:
    mean, std = row.get(stat(key, "mean")), row.get(stat(key, "std"))
    if _missing(mean) or pd.isna(mean):
        return ""
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if not pd.isna(std) else f"{mean:.{digits}f}"


def p_value(p: Any) -> str:
    """``0.037*`` (Holm-adjusted, ``*`` below :data:`ALPHA`)."""
    return f"{p:.3g}{'*' if p < ALPHA else ''}"


def seeds_cell(value: Any) -> str:
    """Seeds a paired test needs for the difference: ``12``, ``> 1000``, or nothing (significant, or no test)."""
    if _missing(value) or pd.isna(value):
        return ""
    return f"> {MOST_SEEDS}" if math.isinf(value) else str(int(value))


def primary_difference(row: pd.Series) -> list[str]:
    """``+0.21 [+0.02, +0.40]``, its p-value and the seeds a difference that is not significant needs; the baseline
    says so."""
    if row.get("baseline") == "":
        return ["baseline", "", ""]
    diff = row.get(stat(PRIMARY, "diff"))
    if _missing(diff) or pd.isna(diff):
        return ["", "", ""]
    low, high = row.get(stat(PRIMARY, "diff_ci_low")), row.get(stat(PRIMARY, "diff_ci_high"))
    difference = f"{diff:+.2f} {interval(low, high, 2, '+')}".rstrip()
    p = row.get(stat(PRIMARY, "p_holm"))
    if _missing(p) or pd.isna(p):
        return [difference, "n < 2", ""]
    return [difference, p_value(p), seeds_cell(row.get(stat(PRIMARY, "seeds_needed")))]


def other_difference(row: pd.Series, column: ReportColumn) -> str:
    """``+0.0021 (p 0.4)`` for a tested column other than the headline."""
    if row.get("baseline") == "":
        return "baseline"
    diff, p = row.get(stat(column.key, "diff")), row.get(stat(column.key, "p_holm"))
    if _missing(diff) or pd.isna(diff):
        return ""
    return f"{diff:+.{column.digits}f}" + ("" if _missing(p) or pd.isna(p) else f" (p {p_value(p)})")


def comparison_markdown(comparison: pd.DataFrame, keys: Sequence[str], columns: Sequence[ReportColumn]) -> str:
    """The groups as a markdown table: the headline with its CI, difference, p-value and seeds needed, then every
    other column in the table (mean ± std; a tested one with its CI and its difference)."""
    tested = stat(PRIMARY, "p_holm") in comparison
    shown = [c for c in columns if c.key != PRIMARY and c.in_table and stat(c.key, "mean") in comparison]
    header = [*keys, "params", "n", "test acc (%)", "95% CI"]
    if tested:
        header += ["Δ vs baseline [95% CI]", "p (Holm)", "seeds for 80% power"]
    for column in shown:
        if column.tested:
            header += [f"{column.label} [95% CI]"] + ([f"Δ {column.label} (p Holm)"] if stat(column.key, "diff") in comparison else [])
        else:
            header.append(column.label)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in comparison.iterrows():
        cells = [str(row[k]) for k in keys]
        few = row["n"] < 3  # a t interval over two seeds spans most of 0-100: it says nothing
        cells += [
            f"{int(row['params']):,}" if not pd.isna(row["params"]) else "",
            f"{row['n']}/{row['jobs']}",
            mean_std(row, PRIMARY, 2),
            "too few seeds" if few and row["n"] > 0 else interval(row.get(stat(PRIMARY, "ci_low")), row.get(stat(PRIMARY, "ci_high"))),
        ]
        if tested:
            cells += primary_difference(row)
        for column in shown:
            cell = mean_std(row, column.key, column.digits)
            if column.tested:
                cells.append(
                    f"{cell} {interval(row.get(stat(column.key, 'ci_low')), row.get(stat(column.key, 'ci_high')), column.digits)}".strip()
                )
                if stat(column.key, "diff") in comparison:
                    cells.append(other_difference(row, column))
            else:
                cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
