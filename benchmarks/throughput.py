"""Training throughput: mnistlab's step on on-device tensors vs a torchvision DataLoader pipeline.

Same model (mnistlab's LeNet-5), optimizer (SGD, Nesterov momentum; mnistlab takes PyTorch's fused update,
its default on CPU and CUDA) and batch size in one process. The reference is the usual hand-written
pipeline: ``datasets.MNIST`` + ``ToTensor`` + ``Normalize`` (+ ``RandomAffine`` per sample for the augmented
case) + ``DataLoader(shuffle=True)``, best of ``num_workers`` 0 and 2 (``pin_memory`` and non-blocking
copies on CUDA). mnistlab is timed in its default settings and with speed options (``trainer.amp``,
``trainer.channels_last``, ``trainer.cuda_graph``) where they apply. Neither loop reads the loss back per
step; warm-up batches are excluded. Each repeat times every configuration once, one after the other; images/s are medians over
repeats, and a ratio is the median of the per-repeat ratios, so that a slow spell of a shared machine
weighs on both sides of a ratio.

    python benchmarks/throughput.py [--device cpu|cuda] [--batches 150] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gc
import gzip
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision import datasets, transforms

from mnistlab.data import CHECKSUMS, load_mnist, prepare, shuffled_batches
from mnistlab.datasets import MNIST
from mnistlab.device import cpu_has_native_bf16, pick_device, prepare_model, speed_settings
from mnistlab.engine import Trainer
from mnistlab.models import LeNet5
from mnistlab.paths import bundled_data_dir
from mnistlab.schedules import constant
from mnistlab.settings import AugmentSettings, DataSettings, RegularizationSettings, Settings, TrainerSettings

AFFINE = AugmentSettings(rotation=10, translate=0.1, scale=0.1)
VARIANTS = {  # trainer options: fp32 eager steps, bf16 autocast (+ channels_last), CUDA graph replays
    "eager": {"cuda_graph": False},
    "eager+amp": {"cuda_graph": False, "amp": True},
    "eager+amp+cl": {"cuda_graph": False, "amp": True, "channels_last": True},
    "graph": {"cuda_graph": True},
    "graph+amp+cl": {"cuda_graph": True, "amp": True, "channels_last": True},
}


def make_optimizer(model, fused: bool | None = None):
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, fused=fused)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_mnistlab(data, batch_size: int, augment: AugmentSettings, options: dict, batches: int, warmup: int) -> float:
    """Images/s of Trainer.train_step on batches sliced from the on-device training tensors."""
    device = data.train.labels.device
    torch.manual_seed(0)
    trainer_settings = speed_settings(TrainerSettings(batch_size=batch_size, progress=False, **options), device)
    model = prepare_model(LeNet5(), trainer_settings, device)
    optimizer = make_optimizer(model, fused=device.type in ("cpu", "cuda"))  # mnistlab's default: optimizer.fused=null
    settings = Settings(trainer_settings, RegularizationSettings(augment=augment), DataSettings(), seed=0)
    trainer = Trainer(model, optimizer, constant(optimizer, 1, 1), data, settings, Path("."))
    loss_sum, seen, started = torch.zeros((), device=device), 0, None
    while True:
        for i, (x, y) in enumerate(shuffled_batches(data.train, batch_size, trainer.generator)):
            if i == warmup and started is None:
                sync(device)
                started, seen = time.perf_counter(), 0
            loss, _ = trainer.train_step(x, y)
            loss_sum += loss
            seen += len(y)
            if started is not None and seen >= batches * batch_size:
                loss_sum.item()
                return seen / (time.perf_counter() - started)


def time_reference(root: Path, device: torch.device, batch_size: int, augment: bool, workers: int, batches: int, warmup: int) -> float:
    """Images/s of the same step fed by torchvision's MNIST dataset and a DataLoader."""
    steps = [transforms.RandomAffine(10, translate=(0.1, 0.1), scale=(0.9, 1.1))] if augment else []
    dataset = datasets.MNIST(
        str(root),
        train=True,
        download=False,
        transform=transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize((MNIST.mean,), (MNIST.std,))]),
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, pin_memory=device.type == "cuda"
    )
    torch.manual_seed(0)
    model = LeNet5().to(device)
    optimizer = make_optimizer(model)
    loss_sum, seen, started, rate = torch.zeros((), device=device), 0, None, None
    while rate is None:
        batches_of_epoch = iter(loader)
        for i, (x, y) in enumerate(batches_of_epoch):
            if i == warmup and started is None:
                sync(device)
                started, seen = time.perf_counter(), 0
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            seen += len(y)
            if started is not None and seen >= batches * batch_size:
                loss_sum.item()
                rate = seen / (time.perf_counter() - started)
                break
        # stop the worker processes now, not at some garbage collection inside the next measurement
        del batches_of_epoch
        gc.collect()
    return rate


def reference_root() -> tempfile.TemporaryDirectory:
    """torchvision's MNIST reads decompressed IDX files: write them from the vendored copy."""
    tmp = tempfile.TemporaryDirectory()
    raw = Path(tmp.name) / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in CHECKSUMS:
        (raw / stem).write_bytes(gzip.decompress((bundled_data_dir() / "MNIST" / "raw" / f"{stem}.gz").read_bytes()))
    return tmp


def default_variants(device: torch.device) -> list[str]:
    if device.type == "cuda":
        return ["eager", "graph", "graph+amp+cl"]
    return ["eager", "eager+amp+cl"] if cpu_has_native_bf16() else ["eager"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--batches", type=int, default=150, help="timed batches per measurement")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="mnistlab settings to time (default: those that apply)")
    args = parser.parse_args()
    device = pick_device(args.device)
    variants = args.variants or default_variants(device)
    data = prepare(load_mnist(), device)
    tmp = reference_root()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"torch {torch.__version__} on {name}; median of {args.repeats} x {args.batches} batches")
    width = max(14, *map(len, variants))
    print(f"{'augment':<8} {'batch':>5} {'reference img/s':>16} {'(workers)':>9} {'mnistlab':>{width}} {'img/s':>9} {'ratio':>6}")
    results = {}
    for augment in (False, True):
        for batch_size in args.batch_sizes:
            ours = {v: [] for v in variants}
            ref = {workers: [] for workers in (0, 2)}
            for _ in range(args.repeats):  # interleaved, so drifts of a noisy machine hit all
                for variant in variants:
                    affine = AFFINE if augment else AugmentSettings()
                    ours[variant].append(time_mnistlab(data, batch_size, affine, VARIANTS[variant], args.batches, args.warmup))
                for workers in ref:
                    ref[workers].append(time_reference(Path(tmp.name), device, batch_size, augment, workers, args.batches, args.warmup))
            best = max(ref, key=lambda w: statistics.median(ref[w]))
            theirs = statistics.median(ref[best])
            for variant in variants:
                mine = statistics.median(ours[variant])
                ratio = statistics.median(m / r for m, r in zip(ours[variant], ref[best], strict=True))
                results[augment, batch_size, variant] = mine
                print(
                    f"{'yes' if augment else 'no':<8} {batch_size:>5} {theirs:>16,.0f} {best:>9} {variant:>{width}} {mine:>9,.0f} {ratio:>5.2f}x"
                )
            results[augment, batch_size, "reference"] = theirs
    for batch_size in args.batch_sizes:
        cost = [f"{v} {results[False, batch_size, v] / results[True, batch_size, v] - 1:+.0%}" for v in [*variants, "reference"]]
        print(f"augmentation adds to a step (batch {batch_size}): {', '.join(cost)}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
