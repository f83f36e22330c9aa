"""Optuna studies reported as studies: a row per trial, best first, and the objective against the trial number.

Running a study is :mod:`mnistlab.study`; this reads what its trials left in their run directories.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

OBJECTIVES = {"final_val_acc": "validation accuracy (%)", "final_test_acc": "test accuracy (%)"}


def _round(value: Any) -> Any:
    """Sampled floats to 3 significant digits (``0.0473``), anything else as it is."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    if number.is_integer():
        return int(number)
    return float(f"{number:.3g}")


def trials_table(table: pd.DataFrame, params: Sequence[str], objective: str) -> pd.DataFrame:
    """One row per trial, best first: its number, parameters (rounded), the objective, test accuracy and status."""
    trials = pd.DataFrame({"trial": pd.to_numeric(table["trial"], errors="coerce").astype("Int64")})
    for key in params:
        trials[key] = table[key].map(_round)
    trials[objective] = table[objective]
    if objective != "final_test_acc":
        trials["final_test_acc"] = table["final_test_acc"]
    trials["status"] = table["status"]
    trials["epochs"] = pd.to_numeric(table.get("epochs_run"), errors="coerce").astype("Int64") if "epochs_run" in table else pd.NA
    trials["run_dir"] = table["run_dir"]
    return trials.sort_values([objective, "trial"], ascending=[False, True], na_position="last").reset_index(drop=True)


def study_markdown(trials: pd.DataFrame, params: Sequence[str], objective: str, name: str, direction: str = "maximize") -> list[str]:
    """The study's part of report.md: what was optimized, the best trial, and every trial best first."""
    done = trials[trials[objective].notna()]
    pruned = int((trials["status"] == "pruned").sum())
    lines = [
        f"# Optuna study {name}",
        "",
        f"{len(trials)} trials, {len(done)} with a result"
        + (f", {pruned} pruned (stopped early by the pruner: their last epoch is shown)" if pruned else "")
        + f"; {direction} {OBJECTIVES.get(objective, objective)}"
        + ("; test accuracy is shown beside it and never used to choose." if objective != "final_test_acc" else "."),
        "",
    ]
    if objective == "final_test_acc":
        lines += ["**Warning:** the study chose on the test set (no validation split: set data.val_size).", ""]
    if len(done):
        best = done.iloc[0]
        settings = ", ".join(f"{k}={best[k]}" for k in params)
        lines += [f"**Best: trial {best['trial']}**, {OBJECTIVES.get(objective, objective)} {best[objective]:.2f}: {settings}", ""]
    header = ["trial", *params, OBJECTIVES.get(objective, objective)]
    if "final_test_acc" in trials and objective != "final_test_acc":
        header.append("test accuracy (%)")
    header += ["status", "epochs"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in trials.iterrows():
        cells = [str(row["trial"]), *(str(row[k]) for k in params), _pct(row[objective])]
        if "final_test_acc" in trials and objective != "final_test_acc":
            cells.append(_pct(row["final_test_acc"]))
        cells += [str(row["status"]), "" if pd.isna(row["epochs"]) else str(row["epochs"])]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _pct(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"
