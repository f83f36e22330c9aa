"""Whether a run's numbers came out again: every value of a reproduction compared with the recorded one (time left
out), and the verdict, identical, within tolerance or different, with what differs in the provenance."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# What other kernels or threads moved a run's values by, at most, with margin: 0.61 points and 30% (docs/reproducibility.md)
ACC_TOLERANCE = 1.0  # points of accuracy
RELATIVE_TOLERANCE = 0.5  # any other column, relative
TIMES = ("seconds", "wall_seconds", "warmup_seconds", "time_to_target")  # never compared
RESULTS = ("status", "epochs_run")  # compared with the final_* and best_* fields


@dataclass
class Verdict:
    state: str  # identical | within tolerance | different
    lines: list[str]

    @property
    def exit_code(self) -> int:
        return 1 if self.state == "different" else 0


def _close(column: str, a: float, b: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    if column.endswith("_acc") or column.endswith("acc"):
        return abs(a - b) <= ACC_TOLERANCE
    return abs(a - b) <= RELATIVE_TOLERANCE * max(abs(a), abs(b), 1e-12)


def compare(
    recorded: list[dict[str, float]], new: list[dict[str, float]], summary: dict[str, Any], again: dict[str, Any], full: bool
) -> tuple[list, list]:
    """Every pair of values compared: ``(where, column, recorded, new)``, the exact mismatches and those out of tolerance."""
    exact, loose = [], []
    epochs = len(new) if not full else max(len(recorded), len(new))
    if len(new) < epochs or len(recorded) < epochs:  # one stopped earlier: never within a tolerance
        gap = (f"epoch {min(len(recorded), len(new)) + 1}", "epochs", len(recorded), len(new))
        exact.append(gap)
        loose.append(gap)
    for i in range(min(epochs, len(recorded), len(new))):
        a, b = recorded[i], new[i]
        for column in sorted(set(a) | set(b)):
            if column in TIMES:
                continue
            x, y = a.get(column, math.nan), b.get(column, math.nan)
            if not (x == y or (math.isnan(x) and math.isnan(y))):
                exact.append((f"epoch {i + 1}", column, x, y))
                if not _close(column, x, y):
                    loose.append((f"epoch {i + 1}", column, x, y))
    if full:
        keys = [k for k in summary if (k.startswith(("final_", "best_")) or k in RESULTS) and k not in TIMES]
        for key in keys:
            x, y = summary.get(key), again.get(key)
            if x != y and not (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)):
                exact.append(("summary", key, x, y))
                numbers = isinstance(x, int | float) and isinstance(y, int | float)
                if not numbers or not _close(key, float(x), float(y)):
                    loose.append(("summary", key, x, y))
    return exact, loose


def judge(exact: list, loose: list, differs: dict[str, list[str]], epochs: int, columns: int) -> Verdict:
    """The verdict, from the values that differ and what differs in the provenance."""
    what = "; ".join(f"{kind}: {', '.join(items)}" for kind, items in differs.items()) or "nothing in the provenance"
    if not exact:
        return Verdict(
            "identical", [f"identical: {epochs} epoch{'s' * (epochs != 1)} x {columns} columns, bit for bit (what differs: {what})"]
        )
    where, column, x, y = exact[0]
    if loose or "code" in differs or "data" in differs or not differs:
        where, column, x, y = (loose or exact)[0]
        return Verdict("different", [f"different: {where}, {column} {x!r} (recorded) vs {y!r}; what differs: {what}"])
    worst = max(exact, key=lambda item: _gap(item[1], item[2], item[3]))
    return Verdict(
        "within tolerance",
        [
            f"within tolerance: {epochs} epoch{'s' * (epochs != 1)}; what differs: {what}; tolerance: accuracies ±{ACC_TOLERANCE} points, "
            f"other values ±{RELATIVE_TOLERANCE:.0%}; the largest difference: {worst[1]} {worst[2]!r} vs {worst[3]!r} ({worst[0]})"
        ],
    )


def _gap(column: str, x: Any, y: Any) -> float:
    if not (isinstance(x, int | float) and isinstance(y, int | float)):
        return math.inf
    if column.endswith("acc"):
        return abs(x - y) / ACC_TOLERANCE
    return abs(x - y) / (RELATIVE_TOLERANCE * max(abs(x), abs(y), 1e-12))
