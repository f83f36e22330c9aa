"""Runs read into tables: every job's overrides, summary and per-epoch history, whatever state its files are in.

A run whose files cannot be read is listed as ``unreadable`` with the reason, and has no result; a run a live
process trains now is ``running``, one whose process is gone ``unfinished``, and a job its sweep has not started
``pending``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mnistlab.config.identity import is_execution_key
from mnistlab.reports.columns import declared_columns
from mnistlab.runs import lock
from mnistlab.runs.files import METRICS_FILE, OVERRIDES_FILE, read_overrides, read_summary


def groupable(key: str) -> bool:
    """Whether runs may differ in ``key`` as a matter of what they train: not the seed, not execution settings."""
    return key != "seed" and not is_execution_key(key)


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories (those with ``.hydra/overrides.yaml``) given directly or found under sweep directories."""
    runs: list[Path] = []
    for path in map(Path, paths):
        if (path / OVERRIDES_FILE).is_file():
            runs.append(path)
        else:
            runs += sorted(p.parent.parent for p in path.rglob("overrides.yaml") if p.parent.name == ".hydra")
    return list(dict.fromkeys(runs))


def read_run(run_dir: Path) -> tuple[dict[str, str], dict[str, Any], pd.DataFrame, list[str]]:
    """A run's overrides, summary and per-epoch history, and the reasons any of them cannot be read."""
    problems: list[str] = []
    try:
        overrides = read_overrides(run_dir)
    except ValueError as err:
        overrides = {}
        problems.append(str(err))
    try:
        summary = read_summary(run_dir)
    except ValueError as err:
        summary = {}
        problems.append(str(err))
    history, path = pd.DataFrame(), run_dir / METRICS_FILE
    try:
        if path.is_file() and path.stat().st_size:
            history = pd.read_csv(path)
            if "epoch" not in history:
                raise ValueError("no epoch column")
    except (OSError, ValueError, pd.errors.ParserError) as err:
        history = pd.DataFrame()
        problems.append(f"{METRICS_FILE} cannot be read ({type(err).__name__}: {err})")
    if summary.get("status") == "completed" and history.empty and not problems:
        problems.append(f"{METRICS_FILE} is missing or empty, though the summary says completed")
    return overrides, summary, history, problems


def provenance_columns(summary: dict[str, Any]) -> dict[str, str | None]:
    """The short form of a run's provenance a sweep's summary.csv carries: the commit (``+dirty`` where the tree
    differed from it; the version where there is no checkout) and the machine."""
    record = summary.get("provenance")
    if not isinstance(record, dict):
        return {"code": None, "machine": None}
    code, machine = record.get("code", {}), record.get("machine", {})
    cpu = machine.get("cpu", {})
    where = f"{cpu.get('model', '?')} ({cpu.get('torch_kernels', '?')}), {machine.get('threads', '?')} threads"
    if machine.get("gpu"):
        where = f"{machine['gpu']['name']}; {where}"
    commit = code.get("commit")
    return {
        "code": f"{commit[:12]}{'+dirty' if code.get('dirty') else ''}" if commit else f"mnistlab {code.get('mnistlab', '?')}",
        "machine": where,
    }


def _job_order(run_dir: Path, summary: dict[str, Any]) -> tuple:
    """Jobs in launch order: the job number the summary records (else a numeric directory name), then the name."""
    number = summary.get("job")
    if not isinstance(number, int):
        number = int(run_dir.name) if run_dir.name.isdigit() else math.inf
    return (number, run_dir.name)


def overrides_of(job: Sequence[str]) -> dict[str, str]:
    """A job's overrides as ``{key: value}``, Hydra's own (``hydra.*``) left out."""
    pairs = (item.split("=", 1) for item in job if "=" in item)
    return {key.lstrip("+~"): value for key, value in pairs if not key.lstrip("+~").startswith("hydra.")}


def load_runs(run_dirs: Sequence[Path], pending: Sequence[tuple[str, Sequence[str]]] = ()) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """One row per run (overrides as columns), then one per ``pending`` job (its name and overrides), the per-epoch
    histories, and the override keys.

    The table's ``attrs["columns"]`` holds the report's columns (:func:`declared_columns`); a result exists only
    for a completed run.
    """
    runs = [(run_dir, *read_run(run_dir)) for run_dir in run_dirs]
    runs.sort(key=lambda run: _job_order(run[0], run[2]))
    columns = declared_columns((summary for _, _, summary, _, _ in runs), {key for _, _, summary, _, _ in runs for key in summary})
    rows, histories, keys = [], [], []
    for run_dir, overrides, summary, history, problems in runs:
        keys += [k for k in overrides if k not in keys]
        status = "unreadable" if problems else summary.get("status") or "running"
        if status == "running":
            status = "running" if lock.in_use(run_dir) else "unfinished"  # a live process trains it, or it was killed
        row = {"job": run_dir.name, "model": summary.get("model"), **overrides, "status": status, "params": summary.get("params")}
        row["epochs_run"] = summary.get("epochs_run", len(history))
        for column in columns:
            row[column.key] = summary.get(column.key) if status == "completed" else None  # no result without a completed run
        if row["final_train_acc"] is not None and row["final_test_acc"] is not None:
            row["gap"] = row["final_train_acc"] - row["final_test_acc"]
        row |= {key: summary.get(key) for key in ("study", "trial", "objective")}
        row["test_images"] = (summary.get("images") or {}).get("test")
        stopped = summary.get("stop_reason") if status != "completed" else None  # a callback's own status says why
        row["error"] = "; ".join(problems) if problems else summary.get("error") or stopped
        row |= provenance_columns(summary)
        row["run_dir"] = str(run_dir)
        rows.append(row)
        if not history.empty:
            histories.append(history.assign(job=run_dir.name, run_dir=str(run_dir), status=status, **overrides))
    for name, job in pending:
        overrides = overrides_of(job)
        keys += [k for k in overrides if k not in keys]
        rows.append({"job": name, **overrides, "status": "pending", "error": None, "run_dir": None})
    table = pd.DataFrame(rows)
    for key in [c.key for c in columns] + ["params"]:
        table[key] = pd.to_numeric(table[key], errors="coerce")
    table.attrs["columns"] = columns
    return table, (pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()), keys


def group_keys(table: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """The swept keys: overrides (other than the seed) that take more than one value in this set of runs."""
    varying = [k for k in keys if groupable(k) and table[k].fillna("(default)").nunique() > 1]
    return varying or [k for k in keys if groupable(k)][:1]


def fill_keys(table: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The runs with each swept key as text, ``(default)`` where a run did not set it."""
    frame = table.copy()
    for key in keys:
        frame[key] = frame[key].fillna("(default)").astype(str)
    return frame


def group_label(values: tuple, keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True)) or "all runs"
