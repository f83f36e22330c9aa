"""Pooling micro-benchmark: forward + backward of LeNet-5's max pooling + ReLU on its two feature maps.

mnistlab's ``max_pool_relu`` against ``F.relu(F.max_pool2d(x, 2))``, for fp32 and bf16 maps in both memory
formats, on a CPU; median times from ``torch.utils.benchmark``.

    python benchmarks/pooling.py [--batch-size 128] [--min-run-time 1.0]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from mnistlab.pooling import max_pool_relu

MAPS = {"C1": (6, 28, 28), "C3": (16, 10, 10)}
FORMATS = {"NCHW": torch.contiguous_format, "channels_last": torch.channels_last}


def textbook(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(F.relu(x), 2)


def seconds(pool, x: torch.Tensor, grad: torch.Tensor, min_run_time: float) -> float:
    """Median time of one forward and backward pass."""

    def step() -> None:
        x.grad = None
        pool(x).backward(grad)

    timer = Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds per measurement")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch_size}")
    print(f"{'map':<4} {'dtype':<9} {'format':<14} {'F.max_pool2d+relu':>18} {'mnistlab':>9} {'speed-up':>9}")
    for name, (c, h, w) in MAPS.items():
        for dtype in (torch.float32, torch.bfloat16):
            for label, memory_format in FORMATS.items():
                torch.manual_seed(0)
                x = torch.randn(args.batch_size, c, h, w).to(dtype).contiguous(memory_format=memory_format)
                x.requires_grad_()
                grad = torch.randn(args.batch_size, c, h // 2, w // 2).to(dtype).contiguous(memory_format=memory_format)
                theirs = seconds(textbook, x, grad, args.min_run_time)
                ours = seconds(max_pool_relu, x, grad, args.min_run_time)
                print(
                    f"{name:<4} {str(dtype).removeprefix('torch.'):<9} {label:<14} {theirs * 1e6:>15.0f} us"
                    f" {ours * 1e6:>6.0f} us {theirs / ours:>8.2f}x"
                )


if __name__ == "__main__":
    main()
