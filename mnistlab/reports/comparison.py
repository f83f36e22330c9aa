"""Groups of runs that differ only in the seed, compared: each column's mean and spread, and each tested column's
95% CI and difference to the baseline group (comparison.csv)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from mnistlab.reports.collect import fill_keys
from mnistlab.reports.columns import PRIMARY, ReportColumn, stat
from mnistlab.reports.statistics import Baseline, compare_to_baseline, mean_ci

DIFFERENCE = ("diff", "diff_ci_low", "diff_ci_high", "p", "p_holm", "significant", "seeds_needed")


def compare(table: pd.DataFrame, keys: Sequence[str], baseline: Baseline | None = None) -> pd.DataFrame:
    """One row per group (in launch order): its jobs, and per column ``<column>.mean``, ``.std``; per tested column
    ``.ci_low``, ``.ci_high`` and, with a ``baseline``, ``.diff`` with its CI, ``.p``, ``.p_holm`` (each column's
    comparisons Holm-corrected together, apart from the other columns'), ``.significant`` and ``.seeds_needed``."""
    columns: list[ReportColumn] = [c for c in table.attrs.get("columns", []) if c.key in table]
    frame = fill_keys(table, keys)
    grouped = frame.groupby(list(keys), sort=False, dropna=False) if keys else frame.assign(group="all").groupby("group")
    parts = [
        grouped["params"].max().rename("params"),
        grouped[PRIMARY].count().rename("n"),
        grouped["status"].size().rename("jobs"),
        grouped["status"].agg(lambda s: int((s != "completed").sum())).rename("not_completed"),
    ]
    for column in columns:
        if not frame[column.key].notna().any():
            continue
        parts += [grouped[column.key].mean().rename(stat(column.key, "mean")), grouped[column.key].std().rename(stat(column.key, "std"))]
        if column.tested:  # an interval never reaches past what the column can take (a percentage: 0 to 100)
            low, high = column.bounds
            parts += [
                grouped[column.key].agg(lambda s, i=i: mean_ci(s.dropna())[i]).clip(low, high).rename(stat(column.key, side))
                for i, side in enumerate(("ci_low", "ci_high"))
            ]
    out = pd.concat(parts, axis=1).reset_index()
    if baseline is None or not keys:
        return out
    for column in columns:
        if not column.tested:
            continue
        tests = compare_to_baseline(frame, keys, baseline, column.key) if column.key in frame else None
        if tests is None:
            continue
        kept = [*keys, *(["baseline", "test"] if column.key == PRIMARY else []), *DIFFERENCE]
        tests = tests.reindex(columns=kept)
        span = column.bounds[1] - column.bounds[0]  # a difference of two values in range
        tests[["diff_ci_low", "diff_ci_high"]] = tests[["diff_ci_low", "diff_ci_high"]].clip(-span, span)
        tests = tests.rename(columns={name: stat(column.key, name) for name in DIFFERENCE})
        out = out.merge(tests, on=list(keys), how="left")
    return out
