"""Training throughput: mnistlab's step on on-device tensors vs a torchvision DataLoader pipeline.

Same model (LeNet-5), optimizer (SGD, Nesterov momentum) and batch size in one process. The reference is
the usual hand-written pipeline: ``datasets.MNIST`` + ``ToTensor`` + ``Normalize`` (+ ``RandomAffine``
per sample for the augmented case) + ``DataLoader(shuffle=True)``, best of ``num_workers`` 0 and 2.
Warm-up batches are excluded; each figure is the median of several repeats.

    python benchmarks/throughput.py [--batches 150] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision import datasets, transforms

from mnistlab.augment import AugmentConfig
from mnistlab.data import CHECKSUMS, MEAN, STD, load_mnist, prepare, resolve_root, shuffled_batches
from mnistlab.engine import Trainer, TrainSettings
from mnistlab.models import LeNet5
from mnistlab.schedules import constant

AFFINE = AugmentConfig(rotation=10, translate=0.1, scale=0.1)


def make_optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)


def time_mnistlab(data, batch_size: int, augment: AugmentConfig, batches: int, warmup: int) -> float:
    """Images/s of Trainer.train_step on batches sliced from the on-device training tensors."""
    torch.manual_seed(0)
    model = LeNet5()
    optimizer = make_optimizer(model)
    trainer = Trainer(
        model, optimizer, constant(optimizer, 1, 1), data, TrainSettings(batch_size=batch_size, augment=augment, progress=False), Path(".")
    )
    seen, started = 0, None
    while True:
        for i, (x, y) in enumerate(shuffled_batches(data.train, batch_size, trainer.generator)):
            if i == warmup and started is None:
                started, seen = time.perf_counter(), 0
            loss, _ = trainer.train_step(x, y)
            loss.item()
            seen += len(y)
            if started is not None and seen >= batches * batch_size:
                return seen / (time.perf_counter() - started)


def time_reference(root: Path, batch_size: int, augment: bool, workers: int, batches: int, warmup: int) -> float:
    """Images/s of the same step fed by torchvision's MNIST dataset and a DataLoader."""
    steps = [transforms.RandomAffine(10, translate=(0.1, 0.1), scale=(0.9, 1.1))] if augment else []
    dataset = datasets.MNIST(
        str(root),
        train=True,
        download=False,
        transform=transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))]),
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    torch.manual_seed(0)
    model = LeNet5()
    optimizer = make_optimizer(model)
    seen, started = 0, None
    while True:
        for i, (x, y) in enumerate(loader):
            if i == warmup and started is None:
                started, seen = time.perf_counter(), 0
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss.item()
            seen += len(y)
            if started is not None and seen >= batches * batch_size:
                return seen / (time.perf_counter() - started)


def reference_root() -> tempfile.TemporaryDirectory:
    """torchvision's MNIST reads decompressed IDX files: write them from the vendored copy."""
    tmp = tempfile.TemporaryDirectory()
    raw = Path(tmp.name) / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in CHECKSUMS:
        (raw / stem).write_bytes(gzip.decompress((resolve_root("data") / "MNIST" / "raw" / f"{stem}.gz").read_bytes()))
    return tmp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=150, help="timed batches per measurement")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    args = parser.parse_args()
    data = prepare(load_mnist(), "cpu")
    tmp = reference_root()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.repeats} x {args.batches} batches")
    print(f"{'augment':<8} {'batch':>5} {'mnistlab img/s':>15} {'reference img/s':>16} {'(workers)':>9} {'ratio':>6}")
    results = {}
    for augment in (False, True):
        for batch_size in args.batch_sizes:
            ours, ref = [], {0: [], 2: []}
            for _ in range(args.repeats):  # interleaved, so drifts of a noisy machine hit both
                ours.append(time_mnistlab(data, batch_size, AFFINE if augment else AugmentConfig(), args.batches, args.warmup))
                for workers in ref:
                    ref[workers].append(time_reference(Path(tmp.name), batch_size, augment, workers, args.batches, args.warmup))
            best_workers = max(ref, key=lambda w: statistics.median(ref[w]))
            mine, theirs = statistics.median(ours), statistics.median(ref[best_workers])
            results[augment, batch_size] = (mine, theirs)
            print(
                f"{'yes' if augment else 'no':<8} {batch_size:>5} {mine:>15,.0f} {theirs:>16,.0f} {best_workers:>9} {mine / theirs:>5.2f}x"
            )
    for batch_size in args.batch_sizes:
        (plain, ref_plain), (aug, ref_aug) = results[False, batch_size], results[True, batch_size]
        print(
            f"augmentation adds {plain / aug - 1:+.0%} to a mnistlab step and {ref_plain / ref_aug - 1:+.0%} to a reference step (batch {batch_size})"
        )
    tmp.cleanup()


if __name__ == "__main__":
    main()
