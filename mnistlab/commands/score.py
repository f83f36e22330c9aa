"""``mnistlab-eval <run dir>``: score a trained run's checkpoint on the test set; write the confusion matrix and the mistakes."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mnistlab.config.targets import build
from mnistlab.data.batches import Split, prepare
from mnistlab.errors import OutputError, UserError
from mnistlab.runs import files
from mnistlab.runs.trained import TrainedRun, current, load_run
from mnistlab.training.evaluation import evaluate
from mnistlab.training.metrics import MetricEntry, with_built_in


@dataclass
class Scores:
    """A model's test-set predictions, with the summary figures and tables made from them."""

    result: dict[str, Any]  # accuracy, loss, per-class accuracy: eval.json
    labels: np.ndarray
    preds: np.ndarray
    confidence: np.ndarray  # softmax probability of the predicted class
    classes: list[str]

    def confusion(self) -> pd.DataFrame:
        """Counts by true class (rows) and predicted class (columns)."""
        n = len(self.classes)
        counts = np.bincount(self.labels * n + self.preds, minlength=n * n).reshape(n, n)
        return pd.DataFrame(counts, index=pd.Index(self.classes, name="true"), columns=pd.Index(self.classes, name="predicted"))

    def mistakes(self) -> pd.DataFrame:
        """One row per misclassified test image, the most confident first."""
        wrong = np.flatnonzero(self.labels != self.preds)
        names = np.array(self.classes)
        table = pd.DataFrame(
            {
                "index": wrong,
                "true": names[self.labels[wrong]],
                "predicted": names[self.preds[wrong]],
                "confidence": self.confidence[wrong].round(4),
            }
        )
        return table.sort_values("confidence", ascending=False, kind="stable")


def run_metrics(trained: TrainedRun) -> list[MetricEntry]:
    """Loss, accuracy and the metrics the run was trained with (its config's ``metric`` group); one line naming the
    key, the class and the fix when a metric's class cannot be imported here."""
    return with_built_in({name: build(current(node), f"metric.{name}") for name, node in (trained.cfg.get("metric") or {}).items()})


def score(trained: TrainedRun, test: Split, batch_size: int = 2000) -> Scores:
    """Every metric of the run's model on the test split, and its predictions (the loop training uses)."""
    evaluation = evaluate(trained.model, test.images, test.labels, run_metrics(trained), batch_size)
    labels, preds = test.labels.cpu(), evaluation.preds
    classes = list(trained.dataset.classes)
    correct = preds == labels
    per_class = [100.0 * correct[labels == c].float().mean().item() for c in range(len(classes))]
    result = {
        "run_dir": str(trained.run_dir),
        "dataset": trained.dataset.name,
        "epoch": trained.epoch,
        "test_images": len(labels),
        **{f"test_{name}": value for name, value in evaluation.values.items()},
        "mistakes": int((~correct).sum()),
        "per_class_acc": {name: round(acc, 2) for name, acc in zip(classes, per_class, strict=True)},
    }
    return Scores(result, labels.numpy(), preds.numpy(), evaluation.confidence.numpy(), classes)


def write_evaluation(trained: TrainedRun, out: Path, data_root: str | None = None) -> dict[str, Any]:
    """Score the run and write eval.json, confusion.csv, mistakes.csv, confusion.png and mistakes.png into ``out``."""
    from mnistlab.runs import figures

    dataset = trained.dataset
    if data_root is not None:
        dataset.root = data_root
    if hasattr(dataset, "download"):
        dataset.download = False
    images = dataset.load()
    test = prepare(images, dataset, "cpu").test
    evaluation = score(trained, test)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create {out}: {err.strerror or err}") from err
    files.write_atomic(out / "eval.json", json.dumps(evaluation.result, indent=2).encode())
    files.write_atomic(out / "confusion.csv", evaluation.confusion().to_csv().encode())
    files.write_atomic(out / "mistakes.csv", evaluation.mistakes().to_csv(index=False).encode())
    figures.confusion_matrix(evaluation.labels, evaluation.preds, out / "confusion.png", classes=evaluation.classes)
    figures.mistakes(dataset.pixels(test.images), evaluation.labels, evaluation.preds, out / "mistakes.png", evaluation.classes)
    return evaluation.result


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mnistlab-eval", description=__doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("run_dir", type=Path, help="a run directory holding checkpoint.pt and .hydra/config.yaml")
    parser.add_argument("--out", type=Path, help="where the files go (default: <run dir>/eval)")
    parser.add_argument("--data-root", help="the dataset's folder, if not where the run found it")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, mps")
    args = parser.parse_args(argv)
    try:
        trained = load_run(args.run_dir, args.device)
        out = args.out or args.run_dir / "eval"
        result = write_evaluation(trained, out, args.data_root)
    except UserError as err:
        print(f"mnistlab-eval: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    print(
        f"{result['dataset']} test set: accuracy {result['test_acc']:.2f}% ({result['mistakes']} mistakes in "
        f"{result['test_images']:,}), loss {result['test_loss']:.4f}, weights of epoch {result['epoch']}"
    )
    others = [key for key in result if key.startswith("test_") and key not in ("test_acc", "test_loss", "test_images")]
    if others:
        print("  " + ", ".join(f"{key.removeprefix('test_')} {result[key]:.4g}" for key in others))
    width = max(len(name) for name in result["per_class_acc"])
    for name, acc in result["per_class_acc"].items():
        print(f"  {name:>{width}}  {acc:6.2f}%")
    print(f"written to {out}: eval.json, confusion.csv, mistakes.csv, confusion.png, mistakes.png")
