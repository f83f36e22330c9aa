"""A sweep's report: its runs -> summary.csv, comparison.csv, epochs.csv, curves.png, comparison.png and report.md."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mnistlab.errors import NoRunsError
from mnistlab.reports import sweep_figures
from mnistlab.reports.adaptive import decisions, section
from mnistlab.reports.collect import fill_keys, find_runs, group_keys, group_label, load_runs
from mnistlab.reports.columns import PRIMARY, stat
from mnistlab.reports.comparison import compare
from mnistlab.reports.markdown import comparison_markdown
from mnistlab.reports.plan import grid_jobs, job_names, recorded
from mnistlab.reports.seeds import SeedSweep
from mnistlab.reports.statistics import ALPHA, OUTLIER_SPREADS, choose_baseline, outliers
from mnistlab.reports.study import write_study_report
from mnistlab.runs.figures import drawing_missing

log = logging.getLogger(__name__)


def not_started(paths: Sequence[str | Path], run_dirs: Sequence[Path]) -> list[tuple[str, list[str]]]:
    """The jobs of a grid sweep (one sweep directory given) that have no directory yet, by name: a sweep still running."""
    hydra = recorded(Path(paths[0])) if len(paths) == 1 else None
    jobs = grid_jobs(hydra) if hydra is not None else None
    if not jobs:
        return []
    names = {run_dir.name for run_dir in run_dirs}
    return [(name, job) for name, job in zip(job_names(hydra, jobs), jobs, strict=True) if name not in names]


def standing_out(frame: pd.DataFrame, swept: Sequence[str], labels: Sequence[str], comparison: pd.DataFrame) -> list[str]:
    """report.md's lines on seeds far from the rest of their group (:func:`mnistlab.reports.statistics.outliers`)."""
    if "seed" not in frame or not swept:
        return []
    groups = {}
    for label, (_, row) in zip(labels, comparison.iterrows(), strict=True):
        runs = frame[(frame[swept] == row[swept]).all(axis=1) & frame[PRIMARY].notna()]
        groups[label] = {int(seed): float(value) for seed, value in zip(runs["seed"], runs[PRIMARY], strict=True) if str(seed).isdigit()}
    images = pd.to_numeric(frame.get("test_images"), errors="coerce").dropna() if "test_images" in frame else pd.Series(dtype=float)
    found, spread = outliers(groups, 100.0 / images.min() if len(images) else 0.0)
    if not found:
        return []
    listed = "; ".join(f"{group}, seed {seed}: {value:.2f}% (the group's median {median:.2f}%)" for group, seed, value, median in found)
    return [
        f"**Seeds that stand out** (more than {OUTLIER_SPREADS:g} typical spreads of a seed, {spread:.2f} points, from their group's "
        f"median): {listed}. A mean over such seeds says little; look at the run before trusting its group's row.",
        "",
    ]


def write_report(paths: Sequence[str | Path], out_dir: str | Path | None = None, baseline: str | None = None) -> tuple[Path, int]:
    """Aggregate runs into ``out_dir`` (default: the single sweep dir given), drawing the runs' missing figures first;
    ``baseline`` (``key=value``) overrides
    the rule of :func:`mnistlab.reports.statistics.choose_baseline`. Raises ValueError for a baseline no group has.

    Returns report.md's path and the number of jobs without a result.
    """
    run_dirs = find_runs(paths)
    if not run_dirs:
        raise NoRunsError(
            f"no runs (*/.hydra/overrides.yaml) under {', '.join(map(str, paths))}: the sweep launched no job, or these are not mnistlab runs"
        )
    with drawing_missing(run_dirs):  # the runs' own figures, left to a sweep's end, drawn while the report is made
        return _write(run_dirs, paths, out_dir, baseline)


def _write(run_dirs: list[Path], paths: Sequence[str | Path], out_dir: str | Path | None, baseline: str | None) -> tuple[Path, int]:
    out = Path(out_dir) if out_dir else (Path(paths[0]) if len(paths) == 1 and not (Path(paths[0]) / ".hydra").is_dir() else Path("."))
    out.mkdir(parents=True, exist_ok=True)
    table, histories, keys = load_runs(run_dirs, not_started(paths, run_dirs))
    if table["study"].notna().any():
        return write_study_report(table, histories, keys, out)
    swept = group_keys(table, keys)
    frame = fill_keys(table, swept)
    adaptive = SeedSweep.load(Path(paths[0])) if len(paths) == 1 else None
    if baseline is None and adaptive is not None:
        baseline = adaptive.baseline  # the adaptive sweep's own comparisons
    chosen = choose_baseline(frame[swept].drop_duplicates(), swept, baseline)  # the groups, in launch order
    comparison = compare(table, swept, chosen)
    table.to_csv(out / "summary.csv", index=False)
    comparison.to_csv(out / "comparison.csv", index=False)
    if not histories.empty:
        histories.to_csv(out / "epochs.csv", index=False)
    labels = [group_label(tuple(row[k] for k in swept), swept) for _, row in comparison.iterrows()]
    seeds = [
        frame[(frame[swept] == row[swept]).all(axis=1)][PRIMARY].dropna().tolist() if swept else [] for _, row in comparison.iterrows()
    ]
    sweep_figures.comparison_dots(comparison, labels, comparison["params"].tolist(), seeds, out / "comparison.png")
    if not histories.empty:
        for key in swept:
            histories[key] = histories[key].fillna("(default)") if key in histories else "(default)"
        sweep_figures.sweep_curves(histories, swept, out / "curves.png")
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
            f"({test}), and its p-value adjusted for {int(comparison[stat(PRIMARY, 'p')].notna().sum())} comparisons with Holm's method; "
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
    lines += [comparison_markdown(comparison, swept, table.attrs["columns"]), ""]
    lines += standing_out(frame, swept, labels, comparison)
    if adaptive is not None:
        sweep, decided = decisions(Path(paths[0]), table)
        decided.to_csv(out / "decisions.csv", index=False)
        lines += section(sweep, decided)
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
