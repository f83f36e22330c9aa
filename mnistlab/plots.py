"""Figures: run curves, sweep curves and comparison bars, confusion matrix, misclassified digits."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

SPLITS = (("train", "-"), ("test", "--"), ("val", ":"))


def _subplots(*grid: int, **kwargs) -> tuple[Figure, np.ndarray]:
    """A figure outside pyplot: no global backend or figure registry is touched."""
    fig = Figure(figsize=kwargs.pop("figsize"))
    return fig, fig.subplots(*grid, **kwargs)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def run_curves(history: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Loss and accuracy against epoch for train, test (and val) of one run."""
    fig, axes = _subplots(1, 2, figsize=(10, 4))
    for ax, metric, label in ((axes[0], "loss", "cross-entropy loss"), (axes[1], "acc", "accuracy (%)")):
        for split, style in SPLITS:
            column = f"{split}_{metric}"
            if column in history and history[column].notna().any():
                ax.plot(history["epoch"], history[column], style, marker="o", markersize=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_yscale("log")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, path: Path, classes: int | list[str] = 10) -> Path:
    """Counts of true (rows) vs predicted (columns) labels on the test set; ``classes``: their names, or how many."""
    names = [str(c) for c in classes] if isinstance(classes, list) else [str(c) for c in range(classes)]
    classes = len(names)
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, preds), 1)
    fig, ax = _subplots(figsize=(6, 5.5))
    shown = matrix.astype(float)
    np.fill_diagonal(shown, np.nan)  # colour the errors; the diagonal would swamp the scale
    image = ax.imshow(shown, cmap="Reds")
    for i in range(classes):
        for j in range(classes):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color="black" if i != j else "tab:blue")
    ax.set_xticks(range(classes), names, rotation=90 if max(map(len, names)) > 2 else 0, fontsize=8)
    ax.set_yticks(range(classes), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    errors = int(matrix.sum() - np.trace(matrix))
    ax.set_title(f"confusion matrix: {errors} errors in {int(matrix.sum())}")
    fig.colorbar(image, ax=ax, fraction=0.046, label="errors")
    return _save(fig, path)


def mistakes(
    images: np.ndarray, labels: np.ndarray, preds: np.ndarray, path: Path, classes: list[str] | None = None, limit: int = 64
) -> Path:
    """A grid of misclassified test images (N, H, W) grey or (N, H, W, 3) colour in [0, 1], each captioned
    ``true→predicted`` (class names when short), drawn as one mosaic image."""
    wrong = np.flatnonzero(labels != preds)[:limit]
    cols, (h, w), pad = 8, images.shape[1:3], 10  # pad: room for the caption above each image
    rows = max(1, -(-len(wrong) // cols))
    names = classes if classes and max(map(len, classes)) <= 3 else None
    caption = lambda i: f"{names[labels[i]]}→{names[preds[i]]}" if names else f"{labels[i]}→{preds[i]}"  # noqa: E731
    colour = images.ndim == 4
    mosaic = np.ones((rows * (h + pad), cols * (w + 2), 3)) if colour else np.zeros((rows * (h + pad), cols * (w + 2)))
    fig, ax = _subplots(figsize=(cols * 1.2, rows * 1.2 * (h + pad) / (w + 2) + 0.4))
    for k, i in enumerate(wrong):
        top, left = (k // cols) * (h + pad) + pad, (k % cols) * (w + 2) + 1
        mosaic[top : top + h, left : left + w] = images[i]
        ax.text(left + w / 2, top - 1.5, caption(i), ha="center", va="bottom", fontsize=9, color="tab:red")
    if colour:
        ax.imshow(mosaic)
    else:
        ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=max(1.0, float(mosaic.max())))
    ax.axis("off")
    fig.suptitle(f"misclassified test images (true→predicted), {len(wrong)} of {int((labels != preds).sum())} shown")
    return _save(fig, path)


def sweep_curves(histories: pd.DataFrame, keys: list[str], path: Path) -> Path:
    """Train/test loss and accuracy per epoch: one line per group (mean over seeds), band = min..max."""
    fig, axes = _subplots(2, 2, figsize=(11, 8), sharex=True)
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
    return _save(fig, path)


def comparison_dots(comparison: pd.DataFrame, labels: list[str], params: list, seeds: list[list[float]], path: Path) -> Path:
    """Final test accuracy per group: each seed's run, the mean, and the 95% CI as a whisker; one row per group.

    A dot plot shows values by position, not by length, so its axis may start where the data do without
    exaggerating a difference. Groups significantly different from their baseline (Holm, 0.05) are red.
    """
    n = len(labels)
    fig, ax = _subplots(figsize=(8, 1.2 + 0.45 * max(n, 1)))
    y = np.arange(n)[::-1]
    means = comparison["final_test_acc_mean"] if "final_test_acc_mean" in comparison else pd.Series([np.nan] * n)
    low = comparison.get("final_test_acc_ci_low", pd.Series([np.nan] * n))
    high = comparison.get("final_test_acc_ci_high", pd.Series([np.nan] * n))
    significant = comparison.get("significant", pd.Series([False] * n)).fillna(False).astype(bool)
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
    return _save(fig, path)


def study_progress(trials: pd.DataFrame, objective: str, label: str, path: Path) -> Path:
    """The objective of each trial against its number, and the best so far."""
    fig, ax = _subplots(figsize=(8, 4))
    ordered = trials.sort_values("trial")
    ax.plot(ordered["trial"], ordered[objective], "o", color="tab:blue", label=f"trial's {label}")
    ax.plot(ordered["trial"], ordered[objective].cummax(), "-", color="tab:orange", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def run_figures(
    run_dir: Path, title: str, history: list[dict], images: np.ndarray, labels: np.ndarray, preds: np.ndarray, classes: list[str]
) -> None:
    """A completed run's curves.png, confusion.png and mistakes.png from its test images in [0, 1], labels and predictions."""
    run_curves(pd.DataFrame(history), run_dir / "curves.png", title)
    confusion_matrix(labels, preds, run_dir / "confusion.png", classes=classes or int(max(labels.max(), preds.max())) + 1)
    mistakes(images, labels, preds, run_dir / "mistakes.png", classes)
