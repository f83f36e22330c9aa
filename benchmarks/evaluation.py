"""One evaluation pass over MNIST's test set, three ways, side by side in one process (alternating):

- mnistlab's: every metric from a fresh copy of it as built (the framework owns the pass);
- the earlier way: the same metrics reset in place (a metric without reset() carried its state over);
- torchmetrics' loss and accuracy (``MeanMetric`` of the cross-entropy, ``MulticlassAccuracy``), the same way.

    python benchmarks/evaluation.py [--repeats 20] [--model lenet5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from mnistlab.data import Idx
from mnistlab.data.batches import prepare
from mnistlab.models import MLP, LeNet5
from mnistlab.training.evaluation import evaluate
from mnistlab.training.metrics import BUILT_IN, with_built_in


@torch.inference_mode()
def in_place(model, images, labels, metrics, batch_size=2000):
    """The loop as it was: each metric reset, then updated, in place."""
    model.eval()
    for metric in metrics:
        metric.reset()
    for start in range(0, len(labels), batch_size):
        logits = model(images[start : start + batch_size]).float()
        for metric in metrics:
            metric.update(logits, labels[start : start + batch_size])
        logits.softmax(1).max(1)
    return {type(m).__name__: m.compute() for m in metrics}


@torch.inference_mode()
def with_torchmetrics(model, images, labels, batch_size=2000):
    from torchmetrics import MeanMetric
    from torchmetrics.classification import MulticlassAccuracy

    model.eval()
    loss, acc = MeanMetric(), MulticlassAccuracy(num_classes=10, average="micro")
    for start in range(0, len(labels), batch_size):
        logits = model(images[start : start + batch_size]).float()
        y = labels[start : start + batch_size]
        loss.update(F.cross_entropy(logits, y, reduction="none"))
        acc.update(logits, y)
        logits.softmax(1).max(1)
    return {"loss": float(loss.compute()), "acc": 100 * float(acc.compute())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--model", choices=["lenet5", "mlp"], default="lenet5")
    args = parser.parse_args()
    dataset = Idx()
    test = prepare(dataset.load(), dataset, "cpu").test
    torch.manual_seed(0)
    model = (LeNet5 if args.model == "lenet5" else MLP)().eval()
    entries = with_built_in()
    ways = {
        "fresh copies (mnistlab)": lambda: evaluate(model, test.images, test.labels, entries).values,
        "reset in place (before)": lambda: in_place(model, test.images, test.labels, [cls() for cls in BUILT_IN.values()]),
    }
    try:
        import torchmetrics  # noqa: F401

        ways["torchmetrics"] = lambda: with_torchmetrics(model, test.images, test.labels)
    except ImportError:
        pass
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeats):
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            times[name].append(time.perf_counter() - started)
    base = statistics.median(times["fresh copies (mnistlab)"])
    print(f"{args.model}, 10,000 test images, {torch.get_num_threads()} threads, median of {args.repeats} passes, alternating")
    for name, values in times.items():
        print(f"  {name:28s} {statistics.median(values) * 1000:7.1f} ms  ({statistics.median(values) / base:.2f}x mnistlab's)")


if __name__ == "__main__":
    main()
