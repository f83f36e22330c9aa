"""A run's figures: its curves, its confusion matrix and its misclassified test images (``run.plots``), drawn from its
metrics.csv and figures.npz, in another process than training (``python -m mnistlab.runs.figures RUN...``): a
background process after a single run, at a sweep's end for its jobs, or on demand by ``mnistlab-report``. Each
PNG is written whole or not at all."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mnistlab.runs import files

if TYPE_CHECKING:  # matplotlib and pandas load only where a figure is drawn
    import pandas as pd
    from matplotlib.figure import Figure

SPLITS = (("train", "-"), ("test", "--"), ("val", ":"))


def subplots(*grid: int, **kwargs) -> tuple[Figure, np.ndarray]:
    """A figure outside pyplot: no global backend or figure registry is touched."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=kwargs.pop("figsize"))
    return fig, fig.subplots(*grid, **kwargs)


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as ``path`` in one step: a killed process leaves no half-written PNG."""
    tmp = path.with_name(f"{path.name}.tmp")
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    tmp.replace(path)
    return path


def run_curves(history: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Loss and accuracy against epoch for train, test (and val) of one run."""
    fig, axes = subplots(1, 2, figsize=(10, 4))
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
    return save(fig, path)


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, path: Path, classes: int | list[str] = 10) -> Path:
    """Counts of true (rows) vs predicted (columns) labels on the test set; ``classes``: their names, or how many."""
    names = [str(c) for c in classes] if isinstance(classes, list) else [str(c) for c in range(classes)]
    classes = len(names)
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, preds), 1)
    fig, ax = subplots(figsize=(6, 5.5))
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
    return save(fig, path)


def mistakes(
    images: np.ndarray,
    labels: np.ndarray,
    preds: np.ndarray,
    path: Path,
    classes: list[str] | None = None,
    limit: int = 64,
    total: int | None = None,
) -> Path:
    """A grid of misclassified test images (N, H, W) grey or (N, H, W, 3) colour in [0, 1], each captioned
    ``true→predicted`` (class names when short), drawn as one mosaic image; ``total``: the misclassified images in
    all, where ``images`` are only some of them."""
    wrong = np.flatnonzero(labels != preds)[:limit]
    cols, (h, w), pad = 8, images.shape[1:3], 10  # pad: room for the caption above each image
    rows = max(1, -(-len(wrong) // cols))
    names = classes if classes and max(map(len, classes)) <= 3 else None
    caption = lambda i: f"{names[labels[i]]}→{names[preds[i]]}" if names else f"{labels[i]}→{preds[i]}"  # noqa: E731
    colour = images.ndim == 4
    mosaic = np.ones((rows * (h + pad), cols * (w + 2), 3)) if colour else np.zeros((rows * (h + pad), cols * (w + 2)))
    fig, ax = subplots(figsize=(cols * 1.2, rows * 1.2 * (h + pad) / (w + 2) + 0.4))
    for k, i in enumerate(wrong):
        top, left = (k // cols) * (h + pad) + pad, (k % cols) * (w + 2) + 1
        mosaic[top : top + h, left : left + w] = images[i]
        ax.text(left + w / 2, top - 1.5, caption(i), ha="center", va="bottom", fontsize=9, color="tab:red")
    if colour:
        ax.imshow(mosaic)
    else:
        ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=max(1.0, float(mosaic.max())))
    ax.axis("off")
    fig.suptitle(f"misclassified test images (true→predicted), {len(wrong)} of {total or int((labels != preds).sum())} shown")
    return save(fig, path)


def render(run_dir: Path) -> list[Path]:
    """A run's curves.png, confusion.png and mistakes.png, from its metrics.csv and figures.npz."""
    import pandas as pd

    with np.load(run_dir / files.FIGURE_DATA) as data:
        title, labels, preds = str(data["title"]), data["labels"], data["preds"]
        wrong, pixels, classes = data["wrong"], data["wrong_pixels"], [str(c) for c in data["classes"]]
    history = pd.DataFrame(files.read_metrics(run_dir / files.METRICS_FILE))
    n = classes or int(max(labels.max(), preds.max())) + 1
    return [
        run_curves(history, run_dir / "curves.png", title),
        confusion_matrix(labels, preds, run_dir / "confusion.png", classes=n),
        mistakes(pixels, labels[wrong], preds[wrong], run_dir / "mistakes.png", classes, total=int((labels != preds).sum())),
    ]


@contextmanager
def drawing_missing(run_dirs: list[Path], workers: int = 2) -> Iterator[None]:
    """The figures of ``run_dirs`` that are missing, drawn by up to ``workers`` processes side by side while the
    block runs (a sweep's report), and all there when it ends."""
    todo = [str(d) for d in run_dirs if files.figures_missing(Path(d))]
    chunks = [todo[i::workers] for i in range(workers) if todo[i::workers]]
    procs = [subprocess.Popen([sys.executable, "-m", "mnistlab.runs.figures", *chunk]) for chunk in chunks]
    try:
        yield
    finally:
        for proc in procs:
            proc.wait()


def in_background(run_dir: Path) -> None:
    """Draw a run's figures in a process of their own that outlives this one (its errors go to figures.log)."""
    with open(run_dir / "figures.log", "wb") as log:
        subprocess.Popen(
            [sys.executable, "-m", "mnistlab.runs.figures", str(run_dir)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        render(Path(folder))
