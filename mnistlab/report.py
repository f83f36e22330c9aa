"""Sweep report: run directories -> pandas -> summary.csv, comparison.csv, curves.png, comparison.png, report.md."""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mnistlab import plots
from mnistlab.errors import EXIT_SWEEP_INCOMPLETE
from mnistlab.runfiles import METRICS_FILE, OVERRIDES_FILE, read_overrides, read_summary
from mnistlab.settings import EXECUTION_KEYS

log = logging.getLogger(__name__)

METRICS = [
    "final_test_acc",
    "final_test_loss",
    "best_test_acc",
    "final_train_acc",
    "final_train_loss",
    "gap",
    "final_val_acc",
    "seconds",
    "time_to_target",
]
NOT_GROUPED = {"seed", *EXECUTION_KEYS}  # keys that never define a group


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


def _job_order(run_dir: Path, summary: dict[str, Any]) -> tuple:
    """Jobs in launch order: the job number the summary records (else a numeric directory name), then the name."""
    number = summary.get("job")
    if not isinstance(number, int):
        number = int(run_dir.name) if run_dir.name.isdigit() else math.inf
    return (number, run_dir.name)


def load_runs(run_dirs: Sequence[Path]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """One row per run (overrides as columns), the per-epoch histories, and the override keys.

    A run whose files cannot be read is listed as ``unreadable`` with the reason, and has no result.
    """
    runs = [(run_dir, *read_run(run_dir)) for run_dir in run_dirs]
    runs.sort(key=lambda run: _job_order(run[0], run[2]))
    rows, histories, keys = [], [], []
    for run_dir, overrides, summary, history, problems in runs:
        keys += [k for k in overrides if k not in keys]
        status = "unreadable" if problems else summary.get("status") or ("unfinished" if history.empty else "running")
        row = {"job": run_dir.name, "model": summary.get("model"), **overrides, "status": status, "params": summary.get("params")}
        row["epochs_run"] = summary.get("epochs_run", len(history))
        for metric in METRICS:
            row[metric] = summary.get(metric) if status == "completed" else None  # no result without a completed run
        if row["final_train_acc"] is not None and row["final_test_acc"] is not None:
            row["gap"] = row["final_train_acc"] - row["final_test_acc"]
        row["error"] = "; ".join(problems) if problems else summary.get("error")
        row["run_dir"] = str(run_dir)
        rows.append(row)
        if not history.empty:
            histories.append(history.assign(job=run_dir.name, run_dir=str(run_dir), status=status, **overrides))
    table = pd.DataFrame(rows)
    for metric in METRICS + ["params"]:
        table[metric] = pd.to_numeric(table[metric], errors="coerce")
    return table, (pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()), keys


def group_keys(table: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """The swept keys: overrides (other than the seed) that take more than one value in this set of runs."""
    varying = [k for k in keys if k not in NOT_GROUPED and table[k].fillna("(default)").nunique() > 1]
    return varying or [k for k in keys if k not in NOT_GROUPED][:1]


def _group_label(values: tuple, keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True)) or "all runs"


def compare(table: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Mean, std and n of each metric per group of runs differing only in the seed."""
    frame = table.copy()
    for key in keys:
        frame[key] = frame[key].fillna("(default)")
    grouped = frame.groupby(list(keys), sort=False, dropna=False) if keys else frame.assign(group="all").groupby("group")
    present = [m for m in METRICS if frame[m].notna().any()]
    if present:
        stats = grouped[present].agg(["mean", "std"])
        stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    else:  # no job has a result: the table still lists every group and its jobs
        stats = pd.DataFrame(index=grouped.size().index)
    out = pd.concat(
        [
            grouped["params"].max().rename("params"),
            grouped["final_test_acc"].count().rename("n"),
            grouped["status"].size().rename("jobs"),
            grouped["status"].agg(lambda s: int((s != "completed").sum())).rename("not_completed"),
            stats,
        ],
        axis=1,
    ).reset_index()
    return out


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def comparison_markdown(comparison: pd.DataFrame, keys: Sequence[str]) -> str:
    """The comparison as a markdown table: test accuracy mean ± std, parameters, gap, seconds."""
    header = [*keys, "params", "n", "test acc (%)", "test loss", "train acc (%)", "train−test gap", "seconds"]
    if "final_val_acc_mean" in comparison:
        header.insert(-1, "val acc (%)")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in comparison.iterrows():

        def pm(metric: str, digits: int = 2, row=row) -> str:
            mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
            if mean is None or pd.isna(mean):
                return ""
            return f"{mean:.{digits}f} ± {std:.{digits}f}" if not pd.isna(std) else f"{mean:.{digits}f}"

        cells = [str(row[k]) for k in keys]
        cells += [
            f"{int(row['params']):,}" if not pd.isna(row["params"]) else "",
            f"{row['n']}/{row['jobs']}",
            pm("final_test_acc"),
            pm("final_test_loss", 4),
            pm("final_train_acc"),
            pm("gap"),
            pm("seconds", 1),
        ]
        if "final_val_acc_mean" in comparison:
            cells.insert(-1, pm("final_val_acc"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(paths: Sequence[str | Path], out_dir: str | Path | None = None) -> tuple[Path, int]:
    """Aggregate runs into ``out_dir`` (default: the single sweep dir given).

    Returns report.md's path and the number of jobs without a result.
    """
    run_dirs = find_runs(paths)
    if not run_dirs:
        raise FileNotFoundError(f"no runs (*/.hydra/overrides.yaml) under {', '.join(map(str, paths))}")
    out = Path(out_dir) if out_dir else (Path(paths[0]) if len(paths) == 1 and not (Path(paths[0]) / ".hydra").is_dir() else Path("."))
    out.mkdir(parents=True, exist_ok=True)
    table, histories, keys = load_runs(run_dirs)
    swept = group_keys(table, keys)
    comparison = compare(table, swept)
    table.to_csv(out / "summary.csv", index=False)
    comparison.to_csv(out / "comparison.csv", index=False)
    if not histories.empty:
        histories.to_csv(out / "epochs.csv", index=False)
    labels = [_group_label(tuple(row[k] for k in swept), swept) for _, row in comparison.iterrows()]
    params = comparison["params"].tolist()
    plots.comparison_bars(comparison, labels, params, out / "comparison.png")
    if not histories.empty:
        for key in swept:
            histories[key] = histories[key].fillna("(default)") if key in histories else "(default)"
        plots.sweep_curves(histories, swept, out / "curves.png")
    failures = table[table["status"] != "completed"]
    lines = [
        "# Sweep report",
        "",
        f"{len(table)} jobs, {int((table['status'] == 'completed').sum())} completed; grouped by {', '.join(swept) or 'nothing'} (mean ± std over seeds).",
        "",
        comparison_markdown(comparison, swept),
        "",
    ]
    if len(failures):
        lines += ["## Jobs without a result", ""]
        lines += [
            f"- job {r.job} ({', '.join(f'{k}={r[k]}' for k in keys if pd.notna(r[k]))}): {r.status}{': ' + str(r.error) if isinstance(r.error, str) else ''}"
            for _, r in failures.iterrows()
        ]
        lines.append("")
    lines += ["## Figures", "", "![final test accuracy per group](comparison.png)", ""]
    if not histories.empty:
        lines += ["![loss and accuracy per epoch](curves.png)", ""]
    lines += ["Files: `summary.csv` (one row per job), `comparison.csv` (one row per group), `epochs.csv` (one row per job and epoch).", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    if len(failures):
        log.warning("%d job(s) without a result: %s", len(failures), ", ".join(f"{r.job} ({r.status})" for _, r in failures.iterrows()))
    return report, len(failures)


def cli(argv: Sequence[str] | None = None) -> int:
    """``mnistlab-report PATH...``: report on a sweep dir or on several run dirs, and print the table."""
    parser = argparse.ArgumentParser(
        prog="mnistlab-report", description="Aggregate mnistlab runs into summary.csv, comparison.csv, plots and report.md."
    )
    parser.add_argument("paths", nargs="+", help="a sweep directory, or several run directories")
    parser.add_argument(
        "-o", "--out", help="where to write the report (default: the sweep directory; the current directory for several runs)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        report, incomplete = write_report(args.paths, args.out)
    except FileNotFoundError as err:
        parser.exit(2, f"mnistlab-report: {err}\n")
    text = report.read_text()
    print(text.split("## Figures")[0].rstrip())
    print(f"\nwritten to {report.parent}")
    return EXIT_SWEEP_INCOMPLETE if incomplete else 0
