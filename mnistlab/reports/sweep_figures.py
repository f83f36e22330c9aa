"""A sweep's figures: mean curves per group, the final accuracy of each group and seed, an Optuna study's trials."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from mnistlab.runs.figures import save, subplots


def sweep_curves(histories: pd.DataFrame, keys: list[str], path: Path) -> Path:
    """Train/test loss and accuracy per epoch: one line per group (mean over seeds), band = min..max."""
    fig, axes = subplots(2, 2, figsize=(11, 8), sharex=True)
    groups = histories.groupby(keys, sort=False) if keys else [((), histories)]
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (values, frame) in enumerate(groups):
        values = values if isinstance(values, tuple) else (values,)
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True)) or "all runs"
        color = colors[i % len(colors)]
        for ax, column in zip(axes.flat, ("train_loss", "test_loss", "train_acc", "test_acc"), strict=True):
            stats = frame.groupby("epoch")[column].agg(["mean", "min", "max", "count"])
            ax.plot(stats.index, stats["mean"], color=color, marker="o", markersize=3, label=f"{label} (n={int(stats['count'].max())})")
            if (stats["count"] > 1).any():
                ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.2)
    for ax, column in zip(axes.flat, ("train_loss", "test_loss", "train_acc", "test_acc"), strict=True):
        split, metric = column.split("_")
        ax.set_title(f"{split} {'loss' if metric == 'loss' else 'accuracy (%)'}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if metric == "loss":
            ax.set_yscale("log")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("mean over seeds per group; band: min..max")
    return save(fig, path)


def comparison_dots(comparison: pd.DataFrame, labels: list[str], params: list, seeds: list[list[float]], path: Path) -> Path:
    """Final test accuracy per group: each seed's run, the mean, and the 95% CI as a whisker; one row per group.

    A dot plot shows values by position, not by length, so its axis may start where the data do without
    exaggerating a difference. Groups significantly different from their baseline (Holm, 0.05) are red.
    """
    n = len(labels)
    fig, ax = subplots(figsize=(8, 1.2 + 0.45 * max(n, 1)))
    y = np.arange(n)[::-1]
    means = comparison.get("final_test_acc.mean", pd.Series([np.nan] * n))
    low = comparison.get("final_test_acc.ci_low", pd.Series([np.nan] * n))
    high = comparison.get("final_test_acc.ci_high", pd.Series([np.nan] * n))
    significant = comparison.get("final_test_acc.significant", pd.Series([False] * n)).fillna(False).astype(bool)
    baseline = comparison.get("baseline", pd.Series([None] * n))
    for yi, m, lo, hi, runs, sig, base in zip(y, means, low, high, seeds, significant, baseline, strict=True):
        color = "tab:red" if sig else ("tab:green" if base == "" else "tab:blue")
        if runs:
            ax.plot(runs, [yi] * len(runs), "o", color="0.6", markersize=4, zorder=1)
        if pd.notna(lo):
            ax.plot([lo, hi], [yi, yi], "-", color=color, linewidth=2, zorder=2)
            ax.plot([lo, hi], [yi, yi], "|", color=color, markersize=10, zorder=2)
        if pd.notna(m):
            ax.plot([m], [yi], "D", color=color, markersize=7, zorder=3)
            ax.annotate(f"{m:.2f}", (m, yi), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    names = [f"{label} ({int(p):,} params)" if pd.notna(p) else label for label, p in zip(labels, params, strict=True)]
    ax.set_yticks(y, names, fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    values = [v for v in [*means, *low, *high, *(v for runs in seeds for v in runs)] if pd.notna(v)]
    if values:
        pad = max(0.05, 0.08 * (max(values) - min(values)))
        ax.set_xlim(max(0.0, min(values) - pad), min(100.0, max(values) + pad))
    ax.set_xlabel("final test accuracy (%)")
    ax.set_title("mean (diamond), 95% CI (whisker), each seed (grey); red: differs from the baseline (green), Holm p < 0.05", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path)


def study_progress(trials: pd.DataFrame, objective: str, label: str, path: Path) -> Path:
    """The objective of each trial against its number, and the best so far."""
    fig, ax = subplots(figsize=(8, 4))
    ordered = trials.sort_values("trial")
    ax.plot(ordered["trial"], ordered[objective], "o", color="tab:blue", label=f"trial's {label}")
    ax.plot(ordered["trial"], ordered[objective].cummax(), "-", color="tab:orange", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, path)
