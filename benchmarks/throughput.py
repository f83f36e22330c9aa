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

``--models`` adds LeNet-5 variants with the same weights, to recheck the layer order on any machine: ``default``
(mnistlab's: max-pool before the activation, C5 as Linear(400, 120)), ``paper-order`` (the textbook: activation,
then max-pool, C5 a convolution) and ``conv-c5`` (max-pool first, C5 a convolution). ``--epoch`` times whole epochs, evaluation on the test set included, against the reference's
epoch (DataLoader training pass + test DataLoader pass), with ``trainer.amp`` off and forced on.

    python benchmarks/throughput.py [--device cpu|cuda] [--batches 150] [--repeats 3] [--models default paper-order conv-c5]
    python benchmarks/throughput.py --epoch [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import gzip
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import datasets, transforms

from mnistlab.config.schema import TrainerSettings
from mnistlab.data import Idx
from mnistlab.data.batches import prepare, shuffled_batches, steps_per_epoch
from mnistlab.data.catalog import MNIST
from mnistlab.models import LeNet5
from mnistlab.paths import bundled_data_dir
from mnistlab.training.callbacks import EarlyStopping, KeepBest, TargetAccuracy
from mnistlab.training.schedules import constant
from mnistlab.training.speed import cpu_has_native_bf16, pick_device, prepare_model, speed_settings
from mnistlab.training.techniques import RandomWarp
from mnistlab.training.trainer import Trainer

AFFINE = {"rotation": 10, "translate": 0.1, "scale": 0.1}  # regularization=augment's warp
VARIANTS = {  # trainer options: fp32 eager steps, bf16 autocast (+ channels_last), CUDA graph replays
    "eager": {"cuda_graph": False},
    "eager+amp": {"cuda_graph": False, "amp": True},
    "eager+amp+cl": {"cuda_graph": False, "amp": True, "channels_last": True},
    "graph": {"cuda_graph": True},
    "graph+amp+cl": {"cuda_graph": True, "amp": True, "channels_last": True},
}


def _c5_conv(model: LeNet5) -> nn.Conv2d:
    """C5 as the paper draws it: a 120@5x5 convolution over S4's 16@5x5 maps, with the model's C5 weights."""
    linear, conv = model.features[6], nn.Conv2d(16, 120, 5)
    with torch.no_grad():
        conv.weight.copy_(linear.weight.reshape(120, 16, 5, 5))
        conv.bias.copy_(linear.bias)
    return conv


def paper_order(model: LeNet5) -> LeNet5:
    """The textbook LeNet-5 (mnistlab's before): each activation before its max-pool, C5 a convolution; same weights."""
    f = model.features
    model.features = nn.Sequential(f[0], f[2], f[1], f[3], f[5][0], f[4], _c5_conv(model), f[7], nn.Flatten())
    return model


def conv_c5(model: LeNet5) -> LeNet5:
    """Max-pool before the activation, but C5 a convolution; same weights."""
    f = model.features
    model.features = nn.Sequential(*f[:5], f[5][0], _c5_conv(model), f[7], nn.Flatten())
    return model


MODELS = {"default": lambda model: model, "paper-order": paper_order, "conv-c5": conv_c5}


def make_model(name: str) -> LeNet5:
    torch.manual_seed(0)
    return MODELS[name](LeNet5())


def make_optimizer(model, fused: bool | None = None):
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, fused=fused)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_trainer(data, batch_size: int, augment: dict, options: dict, model: str = "default", force_amp: bool = False) -> Trainer:
    """mnistlab's Trainer for ``model`` with trainer ``options`` and the parts every run has (our random warp with
    ``augment``'s ranges, our callbacks); ``force_amp`` keeps bf16 autocast on a CPU without native bf16."""
    device = data.train.labels.device
    trainer_settings = speed_settings(TrainerSettings(batch_size=batch_size, progress=False, **options), device)
    if force_amp:
        trainer_settings = dataclasses.replace(trainer_settings, amp=True)
    net = prepare_model(make_model(model), trainer_settings, device)
    optimizer = make_optimizer(net, fused=device.type in ("cpu", "cuda"))  # mnistlab's default: optimizer.fused=null
    warp = RandomWarp(**augment, mean=[MNIST.mean], std=[MNIST.std])
    ours = {"early_stopping": EarlyStopping(None), "keep_best": KeepBest(False), "target_accuracy": TargetAccuracy(None)}
    scheduler = constant(optimizer, 1, 1)
    return Trainer(net, optimizer, scheduler, data, trainer_settings, nn.CrossEntropyLoss(), techniques=[warp], callbacks=ours)


def time_mnistlab(data, batch_size: int, augment: dict, options: dict, batches: int, warmup: int, model: str = "default") -> float:
    """Images/s of Trainer.train_step on batches sliced from the on-device training tensors."""
    device = data.train.labels.device
    trainer = make_trainer(data, batch_size, augment, options, model, force_amp=bool(options.get("amp")))
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


def reference_loader(root: Path, device: torch.device, batch_size: int, augment: bool, workers: int, train: bool = True):
    """torchvision's MNIST with per-sample transforms, in a DataLoader (shuffled for training)."""
    steps = [transforms.RandomAffine(10, translate=(0.1, 0.1), scale=(0.9, 1.1))] if augment else []
    dataset = datasets.MNIST(
        str(root),
        train=train,
        download=False,
        transform=transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize((MNIST.mean,), (MNIST.std,))]),
    )
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=train, num_workers=workers, pin_memory=device.type == "cuda")


def time_reference(root: Path, device: torch.device, batch_size: int, augment: bool, workers: int, batches: int, warmup: int) -> float:
    """Images/s of the same step fed by torchvision's MNIST dataset and a DataLoader."""
    loader = reference_loader(root, device, batch_size, augment, workers)
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


def epoch_mnistlab(data, batch_size: int, model: str, amp: bool) -> float:
    """Seconds of one mnistlab epoch: the training pass and the evaluation on the test set, as a run does them."""
    trainer = make_trainer(data, batch_size, {}, {}, model, force_amp=amp)
    trainer.settings = dataclasses.replace(trainer.settings, limit_batches=10)
    trainer.train_epoch(0)  # warm-up: first calls allocate and pick kernels
    trainer.steps_per_epoch = steps_per_epoch(len(data.train), batch_size)
    started = time.perf_counter()
    trainer.train_epoch(1)
    trainer.evaluate(trainer.model, data.test)
    return time.perf_counter() - started


def epoch_reference(root: Path, device: torch.device, batch_size: int, workers: int) -> float:
    """Seconds of one epoch of the hand-written pipeline: a DataLoader training pass, then a test DataLoader pass."""
    train, test = reference_loader(root, device, batch_size, False, workers), reference_loader(root, device, 1000, False, workers, False)
    torch.manual_seed(0)
    model = LeNet5().to(device)
    optimizer = make_optimizer(model)
    started = time.perf_counter()
    model.train()
    for x, y in train:
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    with torch.inference_mode():
        for x, y in test:
            correct += (model(x.to(device)).argmax(1) == y.to(device)).sum()
    correct.item()
    seconds = time.perf_counter() - started
    del train, test
    gc.collect()
    return seconds


def compare_epochs(data, root: Path, device: torch.device, batch_size: int, models: list[str], repeats: int) -> None:
    """Whole epochs of each model variant, bf16 autocast off and on, against the reference's epoch; interleaved repeats."""
    variants = [(model, amp) for model in models for amp in (False, True)]
    ours = {v: [] for v in variants}
    ref = {workers: [] for workers in (0, 2)}
    for _ in range(repeats):
        for variant in variants:
            ours[variant].append(epoch_mnistlab(data, batch_size, *variant))
        for workers in ref:
            ref[workers].append(epoch_reference(root, device, batch_size, workers))
    best = min(ref, key=lambda w: statistics.median(ref[w]))
    print(f"whole epochs, batch {batch_size}: reference {statistics.median(ref[best]):.2f} s ({best} workers); each round's ratio:")
    for variant in variants:
        ratios = [r / m for m, r in zip(ours[variant], ref[best], strict=True)]
        name = f"{variant[0]}{' +amp' if variant[1] else ''}"
        print(
            f"  {name:<18} {statistics.median(ours[variant]):6.2f} s  {statistics.median(ratios):.2f}x "
            f"(lowest {min(ratios):.2f}x; {' '.join(f'{r:.2f}' for r in ratios)})"
        )


def reference_root() -> tempfile.TemporaryDirectory:
    """torchvision's MNIST reads decompressed IDX files: write them from the vendored copy."""
    tmp = tempfile.TemporaryDirectory()
    raw = Path(tmp.name) / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in MNIST.checksums:
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
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=["default"], help="LeNet-5 layer orders to time")
    parser.add_argument("--epoch", action="store_true", help="time whole epochs (evaluation included), amp off and on")
    args = parser.parse_args()
    device = pick_device(args.device)
    dataset = Idx(download=False)
    data = prepare(dataset.load(), dataset, device)
    tmp = reference_root()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    native = "native bf16" if cpu_has_native_bf16() else "no native bf16: amp emulated"
    if args.epoch:
        print(f"torch {torch.__version__} on {name} ({native}); median of {args.repeats} interleaved rounds")
        for batch_size in args.batch_sizes[:1]:
            compare_epochs(data, Path(tmp.name), device, batch_size, args.models, args.repeats)
        tmp.cleanup()
        return
    timed = [(model, variant) for model in args.models for variant in args.variants or default_variants(device)]
    labels = {key: "/".join(key) if len(args.models) > 1 else key[1] for key in timed}
    print(f"torch {torch.__version__} on {name} ({native}); median of {args.repeats} x {args.batches} batches")
    width = max(14, *map(len, labels.values()))
    print(f"{'augment':<8} {'batch':>5} {'reference img/s':>16} {'(workers)':>9} {'mnistlab':>{width}} {'img/s':>9} {'ratio':>6}")
    results = {}
    for augment in (False, True):
        for batch_size in args.batch_sizes:
            ours = {key: [] for key in timed}
            ref = {workers: [] for workers in (0, 2)}
            for _ in range(args.repeats):  # interleaved, so drifts of a noisy machine hit all
                for model, variant in timed:
                    affine = AFFINE if augment else {}
                    rate = time_mnistlab(data, batch_size, affine, VARIANTS[variant], args.batches, args.warmup, model)
                    ours[model, variant].append(rate)
                for workers in ref:
                    ref[workers].append(time_reference(Path(tmp.name), device, batch_size, augment, workers, args.batches, args.warmup))
            best = max(ref, key=lambda w: statistics.median(ref[w]))
            theirs = statistics.median(ref[best])
            for key in timed:
                mine = statistics.median(ours[key])
                ratio = statistics.median(m / r for m, r in zip(ours[key], ref[best], strict=True))
                results[augment, batch_size, labels[key]] = mine
                print(
                    f"{'yes' if augment else 'no':<8} {batch_size:>5} {theirs:>16,.0f} {best:>9} {labels[key]:>{width}} {mine:>9,.0f} {ratio:>5.2f}x"
                )
            results[augment, batch_size, "reference"] = theirs
    for batch_size in args.batch_sizes:
        cost = [f"{v} {results[False, batch_size, v] / results[True, batch_size, v] - 1:+.0%}" for v in [*labels.values(), "reference"]]
        print(f"augmentation adds to a step (batch {batch_size}): {', '.join(cost)}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
