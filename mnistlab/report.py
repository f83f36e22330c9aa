"""Sweep report: run directories -> pandas -> summary.csv, comparison.csv, curves.png, comparison.png, report.md."""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mnistlab import lock, plots, study, study_report
from mnistlab.errors import EXIT_BAD_INPUT, EXIT_SWEEP_INCOMPLETE, NoRunsError, UserError
from mnistlab.runfiles import METRICS_FILE, OVERRIDES_FILE, read_overrides, read_summary
from mnistlab.settings import is_execution_key
from mnistlab.significance import ALPHA, MOST_SEEDS, Baseline, choose_baseline, compare_to_baseline, mean_ci

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


STANDARD = ("final_train_", "final_val_")  # result columns shown by METRICS, or not per group


def extra_metrics(table: pd.DataFrame) -> list[str]:
    """The result columns beyond :data:`METRICS`: a ``metric`` group's on the test split (``final_test_ece``), and
    those a callback adds (``final_ema_test_acc``). Each gets its column, CI and test in the report."""
    found = [c for c in table.columns if c.startswith("final_") and c not in METRICS and not c.startswith(STANDARD)]
    return sorted(found, key=lambda c: (not c.startswith("final_test_"), c))


def metric_label(column: str, declared: dict[str, dict[str, Any]]) -> tuple[str, int]:
    """A result column as a table heads it (``final_ema_test_acc`` -> ``ema test acc (%)``) and its digits."""
    rest = column.removeprefix("final_")
    for name, declaration in sorted(declared.items(), key=lambda item: -len(item[0])):
        if rest == name or rest.endswith(f"_{name}"):
            prefix = rest[: -len(name)].rstrip("_").replace("_", " ")
            return f"{prefix} {declaration['label']}".strip(), int(declaration["digits"])
    return rest.replace("_", " "), 4


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
    declared: dict[str, dict[str, Any]] = {}
    for _, _, summary, _, _ in runs:
        declared |= summary.get("metrics") or {}
    extra = sorted({key for _, _, summary, _, _ in runs for key in summary if key.startswith("final_")} - set(METRICS))
    extra = sorted((key for key in extra if not key.startswith(STANDARD)), key=lambda key: (not key.startswith("final_test_"), key))
    for run_dir, overrides, summary, history, problems in runs:
        keys += [k for k in overrides if k not in keys]
        status = "unreadable" if problems else summary.get("status") or ("unfinished" if history.empty else "running")
        if status in ("running", "unfinished") and lock.in_use(run_dir):
            status = "in use"  # another launch trains in it now
        row = {"job": run_dir.name, "model": summary.get("model"), **overrides, "status": status, "params": summary.get("params")}
        row["epochs_run"] = summary.get("epochs_run", len(history))
        for metric in METRICS + extra:
            row[metric] = summary.get(metric) if status == "completed" else None  # no result without a completed run
        if row["final_train_acc"] is not None and row["final_test_acc"] is not None:
            row["gap"] = row["final_train_acc"] - row["final_test_acc"]
        row |= {key: summary.get(key) for key in ("study", "trial", "objective")}
        row["error"] = "; ".join(problems) if problems else summary.get("error")
        row["run_dir"] = str(run_dir)
        rows.append(row)
        if not history.empty:
            histories.append(history.assign(job=run_dir.name, run_dir=str(run_dir), status=status, **overrides))
    table = pd.DataFrame(rows)
    for metric in METRICS + extra + ["params"]:
        table[metric] = pd.to_numeric(table[metric], errors="coerce")
    table.attrs["metrics"] = declared  # how each metric is shown (summary.json's declarations)
    return table, (pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()), keys


def group_keys(table: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """The swept keys: overrides (other than the seed) that take more than one value in this set of runs."""
    varying = [k for k in keys if groupable(k) and table[k].fillna("(default)").nunique() > 1]
    return varying or [k for k in keys if groupable(k)][:1]


def _group_label(values: tuple, keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True)) or "all runs"


def fill_keys(table: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The runs with each swept key as text, ``(default)`` where a run did not set it."""
    frame = table.copy()
    for key in keys:
        frame[key] = frame[key].fillna("(default)").astype(str)
    return frame


def compare(table: pd.DataFrame, keys: Sequence[str], baseline: Baseline | None = None) -> pd.DataFrame:
    """Per group of runs differing only in the seed: mean, std and n of each metric, the 95% CI of the mean test
    accuracy, and (with a ``baseline``) the difference to its baseline group, its CI and Holm-adjusted p-value."""
    frame = fill_keys(table, keys)
    grouped = frame.groupby(list(keys), sort=False, dropna=False) if keys else frame.assign(group="all").groupby("group")
    extra = extra_metrics(table)
    present = [m for m in METRICS + extra if frame[m].notna().any()]
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
            *(
                grouped[metric].agg(lambda s, i=i: mean_ci(s.dropna())[i]).rename(f"{metric}_ci_{side}")
                for metric in ["final_test_acc", *extra]
                for i, side in enumerate(("low", "high"))
            ),
        ],
        axis=1,
    ).reset_index()
    if baseline is not None and keys:
        tests = compare_to_baseline(frame, keys, baseline)
        out = out.merge(tests, on=list(keys), how="left")
        for metric in extra:  # each metric's comparisons are corrected together, apart from the others'
            tested = compare_to_baseline(frame, keys, baseline, metric)[[*keys, "diff", "p_holm"]]
            out = out.merge(tested.rename(columns={"diff": f"{metric}_diff", "p_holm": f"{metric}_p_holm"}), on=list(keys), how="left")
    return out


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _interval(low: Any, high: Any, sign: str = "") -> str:
    if low is None or pd.isna(low):
        return ""
    return f"[{low:{sign}.2f}, {high:{sign}.2f}]"


def _seeds_cell(value: Any) -> str:
    """Seeds a paired test needs for the difference: ``12``, ``> 1000``, or nothing (significant, or no test)."""
    if value is None or pd.isna(value):
        return ""
    return f"> {MOST_SEEDS}" if math.isinf(value) else str(int(value))


def _difference_cells(row: pd.Series) -> list[str]:
    """``+0.21 [+0.02, +0.40]``, ``0.037*`` (Holm-adjusted, * below 0.05) and the seeds a non-significant difference
    needs; the baseline says so."""
    if row.get("baseline") == "":
        return ["baseline", "", ""]
    if pd.isna(row.get("diff")):
        return ["", "", ""]
    difference = f"{row['diff']:+.2f} {_interval(row.get('diff_ci_low'), row.get('diff_ci_high'), '+')}".rstrip()
    if pd.isna(row.get("p_holm")):
        return [difference, "n < 2", ""]
    return [difference, f"{row['p_holm']:.3g}{'*' if row['p_holm'] < ALPHA else ''}", _seeds_cell(row.get("seeds_needed"))]


def comparison_markdown(comparison: pd.DataFrame, keys: Sequence[str], declared: dict[str, dict[str, Any]] | None = None) -> str:
    """The comparison as a markdown table: test accuracy mean ± std, parameters, gap, seconds, then every other
    metric (``declared``: how summary.json says to show each) with its CI and its difference to the baseline."""
    tested = "p_holm" in comparison
    header = [*keys, "params", "n", "test acc (%)", "95% CI"]
    if tested:
        header += ["Δ vs baseline [95% CI]", "p (Holm)", "seeds for 80% power"]
    header += ["test loss", "train acc (%)", "train−test gap", "seconds"]
    if "final_val_acc_mean" in comparison:
        header.insert(-1, "val acc (%)")
    extra = [m for m in extra_metrics(comparison.rename(columns=lambda c: c.removesuffix("_mean"))) if f"{m}_mean" in comparison]
    labels = {m: metric_label(m, declared or {}) for m in extra}
    for metric in extra:
        header += [f"{labels[metric][0]} [95% CI]"] + ([f"Δ {labels[metric][0]} (p Holm)"] if f"{metric}_diff" in comparison else [])
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
            _interval(row.get("final_test_acc_ci_low"), row.get("final_test_acc_ci_high")),
        ]
        if tested:
            cells += _difference_cells(row)
        cells += [
            pm("final_test_loss", 4),
            pm("final_train_acc"),
            pm("gap"),
            pm("seconds", 1),
        ]
        if "final_val_acc_mean" in comparison:
            cells.insert(-1, pm("final_val_acc"))
        for metric in extra:
            digits = labels[metric][1]
            low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
            interval = f" [{low:.{digits}f}, {high:.{digits}f}]" if low is not None and not pd.isna(low) else ""
            cells.append(pm(metric, digits) + interval)
            if f"{metric}_diff" in comparison:
                diff, p = row.get(f"{metric}_diff"), row.get(f"{metric}_p_holm")
                cells.append(
                    "baseline"
                    if row.get("baseline") == ""
                    else ""
                    if pd.isna(diff)
                    else f"{diff:+.{digits}f}" + ("" if pd.isna(p) else f" (p {p:.3g}{'*' if p < ALPHA else ''})")
                )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(paths: Sequence[str | Path], out_dir: str | Path | None = None, baseline: str | None = None) -> tuple[Path, int]:
    """Aggregate runs into ``out_dir`` (default: the single sweep dir given); ``baseline`` (``key=value``) overrides
    the rule of :func:`mnistlab.significance.choose_baseline`. Raises ValueError for a baseline no group has.

    Returns report.md's path and the number of jobs without a result.
    """
    run_dirs = find_runs(paths)
    if not run_dirs:
        raise NoRunsError(
            f"no runs (*/.hydra/overrides.yaml) under {', '.join(map(str, paths))}: the sweep launched no job, or these are not mnistlab runs"
        )
    out = Path(out_dir) if out_dir else (Path(paths[0]) if len(paths) == 1 and not (Path(paths[0]) / ".hydra").is_dir() else Path("."))
    out.mkdir(parents=True, exist_ok=True)
    table, histories, keys = load_runs(run_dirs)
    if table["study"].notna().any():
        return write_study_report(table, histories, keys, out)
    swept = group_keys(table, keys)
    frame = fill_keys(table, swept)
    chosen = choose_baseline(frame[swept].drop_duplicates(), swept, baseline)  # the groups, in launch order
    comparison = compare(table, swept, chosen)
    table.to_csv(out / "summary.csv", index=False)
    comparison.to_csv(out / "comparison.csv", index=False)
    if not histories.empty:
        histories.to_csv(out / "epochs.csv", index=False)
    labels = [_group_label(tuple(row[k] for k in swept), swept) for _, row in comparison.iterrows()]
    params = comparison["params"].tolist()
    seeds = [
        frame[(frame[swept] == row[swept]).all(axis=1)]["final_test_acc"].dropna().tolist() if swept else []
        for _, row in comparison.iterrows()
    ]
    plots.comparison_dots(comparison, labels, params, seeds, out / "comparison.png")
    if not histories.empty:
        for key in swept:
            histories[key] = histories[key].fillna("(default)") if key in histories else "(default)"
        plots.sweep_curves(histories, swept, out / "curves.png")
    failures = table[table["status"] != "completed"]
    lines = [
        "# Sweep report",
        "",
        f"{len(table)} jobs, {int((table['status'] == 'completed').sum())} completed; grouped by {', '.join(swept) or 'nothing'}: "
        "test accuracy as mean ± std over seeds and the 95% confidence interval of the mean (Student's t).",
        "",
    ]
    if chosen is not None:
        test = "paired over seeds" if "paired t" in set(comparison.get("test", pd.Series(dtype=str)).dropna()) else "Welch's t-test"
        lines += [
            f"Each group is compared with its baseline, the group with {chosen} and the same other settings "
            f"(`mnistlab-report --baseline key=value` picks another): the difference of mean test accuracy with its 95% CI "
            f"({test}), and its p-value adjusted for {int(comparison['p'].notna().sum())} comparisons with Holm's method; "
            f"`*` marks a difference significant at {ALPHA}. For a difference that is not, the seeds a paired test would need "
            "to detect it with 80% power at the level Holm's method holds it to, if the observed difference and spread are the truth.",
            "",
        ]
    small = comparison[comparison["n"] < 3]
    if len(small):
        lines += [
            f"**Warning:** {len(small)} group(s) with fewer than 3 seeds ({', '.join(labels[i] for i in small.index)}): "
            "their intervals are wide or undefined, and their tests weak. Add seeds (`seed=0,1,2`).",
            "",
        ]
    lines += [comparison_markdown(comparison, swept, table.attrs.get("metrics")), ""]
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


def write_study_report(table: pd.DataFrame, histories: pd.DataFrame, keys: list[str], out: Path) -> tuple[Path, int]:
    """An Optuna study's report: a row per trial, best first, the objective named, and the objective per trial."""
    objective = table["objective"].dropna().iloc[0] if table["objective"].notna().any() else "final_val_acc"
    retried = study.retries(Path(str(table["run_dir"].iloc[0])).parent)  # a trial whose worker died, run again
    for number, retry in retried.items():
        failed = (pd.to_numeric(table["trial"], errors="coerce") == number) & ~table["status"].isin(["completed", "pruned"])
        table.loc[failed, "status"] = f"retried as trial {retry}"
    params = [k for k in keys if groupable(k) and table[k].nunique() > 1]
    trials = study_report.trials_table(table, params, objective)
    table.to_csv(out / "summary.csv", index=False)
    trials.to_csv(out / "trials.csv", index=False)
    if not histories.empty:
        histories.to_csv(out / "epochs.csv", index=False)
    plots.study_progress(trials, objective, study_report.OBJECTIVES.get(objective, objective), out / "study.png")
    name = str(table["study"].dropna().iloc[0])
    lines = study_report.study_markdown(trials, params, objective, name)
    ended = table["status"].isin(["completed", "pruned"]) | table["status"].str.startswith("retried as")
    failures = table[~ended]  # a pruned trial ended as its study decided; a retried one lives on in its retry
    lines += ["## Figures", "", f"![{study_report.OBJECTIVES.get(objective, objective)} per trial](study.png)", ""]
    lines += ["Files: `trials.csv` (one row per trial, best first), `summary.csv` (every field of every job), `epochs.csv`.", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report, len(failures)


def cli(argv: Sequence[str] | None = None) -> int:
    """``mnistlab-report PATH...``: report on a sweep dir or on several run dirs, and print the table."""
    parser = argparse.ArgumentParser(
        prog="mnistlab-report", description="Aggregate mnistlab runs into summary.csv, comparison.csv, plots and report.md."
    )
    parser.add_argument("paths", nargs="+", help="a sweep directory, or several run directories")
    parser.add_argument(
        "--baseline",
        metavar="KEY=VALUE",
        help="the group others are compared with (default: regularization=none, else the first value of the first swept key)",
    )
    parser.add_argument(
        "-o", "--out", help="where to write the report (default: the sweep directory; the current directory for several runs)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        report, incomplete = write_report(args.paths, args.out, args.baseline)
    except (UserError, ValueError) as err:
        parser.exit(EXIT_BAD_INPUT, f"mnistlab-report: {err}\n")
    text = report.read_text()
    print(text.split("## Figures")[0].rstrip())
    print(f"\nwritten to {report.parent}")
    return EXIT_SWEEP_INCOMPLETE if incomplete else 0
