"""The report's columns, each from a declaration: ours, every metric's (``summary.json``'s ``metrics``) and every
column a callback declared (its ``columns``); any other result column is only shown, under its own name.

A tested column gets its 95% CI and its difference to the baseline group with a Holm-corrected test; a shown
column its mean and spread. comparison.csv names each statistic ``<column>.<statistic>`` (``final_test_acc.mean``):
a column name holds no dot, so no statistic of one column can be read as another column.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

PRIMARY = "final_test_acc"  # the headline: its CI, difference, p-value and seeds needed come first in the table


@dataclass(frozen=True)
class ReportColumn:
    key: str  # the summary.csv column
    label: str  # as report.md heads it
    digits: int = 2
    higher_is_better: bool | None = None
    tested: bool = False  # CI, difference to the baseline, Holm-corrected p-value
    in_table: bool = True  # in report.md (every column is in comparison.csv)

    @property
    def bounds(self) -> tuple[float, float]:
        """The values the column can take: 0 to 100 for a percentage (its label says ``(%)``), else any."""
        return (0.0, 100.0) if "(%)" in self.label else (-math.inf, math.inf)


OURS = (
    ReportColumn(PRIMARY, "test acc (%)", 2, True, tested=True),
    ReportColumn("final_test_loss", "test loss", 4, False),
    ReportColumn("best_test_acc", "best test acc (%)", 2, True, in_table=False),
    ReportColumn("final_train_acc", "train acc (%)", 2, True),
    ReportColumn("final_train_loss", "train loss", 4, False, in_table=False),
    ReportColumn("gap", "train−test gap", 2, False),
    ReportColumn("final_val_acc", "val acc (%)", 2, True),
    ReportColumn("seconds", "seconds", 1, False),
)
OWN_KEYS = {c.key for c in OURS} | {"final_val_loss", "best_val_acc"}
NOT_RESULTS = ("final_train_", "final_val_")  # per-split values a table does not compare per group


def declared_columns(summaries: Iterable[dict[str, Any]], result_keys: Iterable[str]) -> list[ReportColumn]:
    """Ours, then each metric's test column, each callback's declared column and each callback's declared summary field
    (as the runs' summaries declare them), then every other ``final_*`` key of the runs, shown under its own name."""
    metrics: dict[str, dict[str, Any]] = {}
    callbacks: dict[str, dict[str, Any]] = {}
    fields: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        metrics |= summary.get("metrics") or {}
        callbacks |= summary.get("columns") or {}
        fields |= summary.get("fields") or {}
    columns = list(OURS)
    seen = set(OWN_KEYS)
    for name, declaration in metrics.items():
        key = f"final_test_{name}"
        if key not in seen:
            columns.append(
                ReportColumn(key, f"test {declaration['label']}", int(declaration["digits"]), declaration["higher_is_better"], True)
            )
            seen.add(key)
    for name, declaration in callbacks.items():
        key = f"final_{name}"
        if key not in seen and not name.startswith(("test_", "val_")):
            columns.append(
                ReportColumn(
                    key, declaration["label"], int(declaration["digits"]), declaration["higher_is_better"], bool(declaration["tested"])
                )
            )
            seen.add(key)
    for key, declaration in fields.items():
        if key not in seen:
            columns.append(
                ReportColumn(
                    key, declaration["label"], int(declaration["digits"]), declaration["higher_is_better"], bool(declaration["tested"])
                )
            )
            seen.add(key)
    for key in sorted(k for k in result_keys if k.startswith("final_") and k not in seen and not k.startswith(NOT_RESULTS)):
        columns.append(ReportColumn(key, key.removeprefix("final_").replace("_", " "), 4))
    return columns


def stat(column: str, statistic: str) -> str:
    """A statistic's column in comparison.csv: ``final_test_acc.mean``."""
    return f"{column}.{statistic}"
