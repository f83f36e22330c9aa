"""2x2 max pooling from strided maximum ops: the same values and gradients as ``F.max_pool2d(x, 2)``.

On LeNet-5's small NCHW maps, PyTorch's CPU max-pool kernel took more time than the convolutions
around it. Here two ``torch.maximum`` calls over strided views (horizontal pairs, then vertical
pairs) compute the values, and the backward pass routes each gradient with two saved 0/1 masks.
Ties go to the first maximum in scan order, as in ``F.max_pool2d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable


class _MaxPool2x2(torch.autograd.Function):
    """On a contiguous (N, C, H, W) map with even H and W."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        left, right = x[..., 0::2], x[..., 1::2]
        columns = torch.maximum(left, right)  # (N, C, H, W/2): the larger of each horizontal pair
        to_right = (right > left).to(x.dtype)  # strict: the left pixel wins a tie
        top, bottom = columns[..., 0::2, :], columns[..., 1::2, :]
        out = torch.maximum(top, bottom)
        to_bottom = (bottom > top).to(x.dtype)
        ctx.save_for_backward(to_right, to_bottom)
        ctx.input_shape = x.shape
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        to_right, to_bottom = ctx.saved_tensors
        like = {"dtype": grad_out.dtype, "device": grad_out.device}
        columns = torch.empty(to_right.shape, **like)
        bottom = torch.mul(grad_out, to_bottom, out=columns[..., 1::2, :])
        torch.sub(grad_out, bottom, out=columns[..., 0::2, :])
        grad = torch.empty(ctx.input_shape, **like)
        right = torch.mul(columns, to_right, out=grad[..., 1::2])
        torch.sub(columns, right, out=grad[..., 0::2])
        return grad


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)`` for even-sized NCHW maps on a CPU; other inputs go to ``F.max_pool2d``.

    Channels-last maps and GPUs keep PyTorch's kernel, which is faster there.
    """
    if x.device.type != "cpu" or x.dim() != 4 or x.shape[-1] % 2 or x.shape[-2] % 2 or not x.is_contiguous():
        return F.max_pool2d(x, 2)
    if torch.is_grad_enabled() and x.requires_grad:
        return _MaxPool2x2.apply(x)
    columns = torch.maximum(x[..., 0::2], x[..., 1::2])
    return torch.maximum(columns[..., 0::2, :], columns[..., 1::2, :])


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)`` computed by :func:`max_pool_2x2`."""

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool_2x2(x)
