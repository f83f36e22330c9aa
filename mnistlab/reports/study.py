"""An Optuna study reported as a study: a row per trial, best first, and the objective against the trial number.

Running a study is :mod:`mnistlab.studies`; this reads what its trials left in their run directories, and which
trials the study retried.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mnistlab.reports import sweep_figures
from mnistlab.reports.collect import groupable
from mnistlab.studies.trials import retries

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


def write_study_report(table: pd.DataFrame, histories: pd.DataFrame, keys: list[str], out: Path) -> tuple[Path, int]:
    """An Optuna study's report: a row per trial, best first, the objective named, and the objective per trial."""
    objective = table["objective"].dropna().iloc[0] if table["objective"].notna().any() else "final_val_acc"
    retried = retries(Path(str(table["run_dir"].iloc[0])).parent)  # a trial whose worker died, run again
    for number, retry in retried.items():
        failed = (pd.to_numeric(table["trial"], errors="coerce") == number) & ~table["status"].isin(["completed", "pruned"])
        table.loc[failed, "status"] = f"retried as trial {retry}"
    params = [k for k in keys if groupable(k) and table[k].nunique() > 1]
    trials = trials_table(table, params, objective)
    table.to_csv(out / "summary.csv", index=False)
    trials.to_csv(out / "trials.csv", index=False)
    if not histories.empty:
        histories.to_csv(out / "epochs.csv", index=False)
    sweep_figures.study_progress(trials, objective, OBJECTIVES.get(objective, objective), out / "study.png")
    name = str(table["study"].dropna().iloc[0])
    lines = study_markdown(trials, params, objective, name)
    ended = table["status"].isin(["completed", "pruned"]) | table["status"].str.startswith("retried as")
    failures = table[~ended]  # a pruned trial ended as its study decided; a retried one lives on in its retry
    lines += ["## Figures", "", f"![{OBJECTIVES.get(objective, objective)} per trial](study.png)", ""]
    lines += ["Files: `trials.csv` (one row per trial, best first), `summary.csv` (every field of every job), `epochs.csv`.", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report, len(failures)
