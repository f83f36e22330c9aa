"""2x2 max pooling (and max pooling fused with ReLU) from elementwise ops, for LeNet-5 on a CPU.

The same values and gradients as ``F.max_pool2d(x, 2)`` (and ``F.relu(F.max_pool2d(x, 2))``): ties go
to the first maximum in scan order. On LeNet-5's small maps PyTorch's CPU max-pool kernel took more
time than the convolutions around it. Here maxima of horizontal, then vertical pairs compute the
values, and the backward pass routes each gradient through two saved masks.
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


def _even_cpu_map(x: torch.Tensor) -> bool:
    """A batch of maps (N, C, H, W) on a CPU with even H and W: what the pooling functions here handle."""
    return x.device.type == "cpu" and x.dim() == 4 and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)`` for even-sized NCHW maps on a CPU; other inputs go to ``F.max_pool2d``.

    Channels-last maps and GPUs keep PyTorch's kernel, which is faster there.
    """
    if not (_even_cpu_map(x) and x.is_contiguous()):
        return F.max_pool2d(x, 2)
    if torch.is_grad_enabled() and x.requires_grad:
        return _MaxPool2x2.apply(x)
    columns = torch.maximum(x[..., 0::2], x[..., 1::2])
    return torch.maximum(columns[..., 0::2, :], columns[..., 1::2, :])


_BITS = {torch.bfloat16: torch.int16, torch.float16: torch.int16}  # 16-bit floats and same-size integers


def _as_rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The bits of ``x`` as integer rows of the map (N*C*H rows of W, or N*H rows of W*C for channels_last)
    and the distance k between horizontal neighbours in a row."""
    n, c, h, w = x.shape
    bits = x.view(_BITS[x.dtype])
    if x.is_contiguous():
        return bits.view(n * c * h, w), 1
    return bits.permute(0, 2, 3, 1).view(n * h, w * c), c


def _even_blocks(rows: torch.Tensor, w: int, k: int) -> torch.Tensor:
    """The even-numbered k-blocks of each row, a (rows, w/2, k) view: the pairs that start a window."""
    return rows.as_strided((rows.shape[0], w // 2, k), (rows.stride(0), 2 * k, 1))


def _from_rows(rows: torch.Tensor, shape: tuple[int, int, int, int], dtype: torch.dtype, nchw: bool) -> torch.Tensor:
    """Integer rows back to a float map of ``shape``, NCHW or channels_last (the inverse of :func:`_as_rows`)."""
    n, c, h, w = shape
    values = rows.view(dtype)
    return values.view(n, c, h, w) if nchw else values.view(n, h, w, c).permute(0, 3, 1, 2)


def _pool_bits(x: torch.Tensor, masks: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The pooled rows of relu(x) and, if asked, the masks of horizontal and vertical winners (see :class:`_MaxPoolReLUBits`)."""
    w = x.shape[-1]
    rows, k = _as_rows(x)
    sign = rows.element_size() * 8 - 1
    rows = rows.clamp_min(0)
    left, right = rows[:, :-k], rows[:, k:]
    pairs = torch.maximum(left, right)  # every horizontal pair; the even ones are the windows' rows
    top, bottom = pairs.view(-1, 2, pairs.shape[1]).unbind(1)
    windows = torch.maximum(top, bottom)
    out = _even_blocks(windows, w, k).contiguous().view(-1, w // 2 * k)
    if not masks:
        return out, None, None
    to_right = torch.sub(left, right).bitwise_right_shift_(sign)  # no overflow: both are >= 0
    to_bottom = torch.sub(top, bottom).bitwise_right_shift_(sign)
    return out, to_right, to_bottom


def _pooled_map(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The pooled rows of ``x`` as a float map in the memory format of ``x``."""
    n, c, h, w = x.shape
    return _from_rows(out, (n, c, h // 2, w // 2), x.dtype, x.is_contiguous())


class _MaxPoolReLUBits(torch.autograd.Function):
    """``relu(max_pool2d(x, 2))`` of a 16-bit float map, computed on its bit patterns as integers.

    After clamping the integers at 0 (which is ReLU: negative floats have the sign bit set), the
    integer order is the float order, and integer max, subtract, shift and bitwise ops are several
    times faster on a CPU than their bfloat16 counterparts. A mask is -1 (all bits set) where the
    right (or bottom) value is strictly larger and 0 elsewhere, so ``grad & mask`` routes a gradient.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out, to_right, to_bottom = _pool_bits(x, masks=True)
        ctx.save_for_backward(to_right, to_bottom, out)
        ctx.layout = (x.shape, x.dtype, x.is_contiguous())
        return _pooled_map(out, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        to_right, to_bottom, out = ctx.saved_tensors
        (n, c, h, w), dtype, nchw = ctx.layout
        k = 1 if nchw else c
        memory_format = torch.contiguous_format if nchw else torch.channels_last
        grad, _ = _as_rows(grad_out.contiguous(memory_format=memory_format))
        sign = out.element_size() * 8 - 1
        grad = grad & torch.neg(out).bitwise_right_shift_(sign)  # ReLU: none where the output is 0
        windows = torch.zeros(to_bottom.shape, dtype=out.dtype)
        _even_blocks(windows, w, k).copy_(grad.view(-1, w // 2, k))
        pairs = torch.empty(to_right.shape, dtype=out.dtype).view(-1, 2, to_right.shape[1])
        torch.bitwise_and(windows, to_bottom, out=pairs[:, 1])
        torch.bitwise_xor(windows, pairs[:, 1], out=pairs[:, 0])
        pairs = pairs.view(to_right.shape)
        right = pairs & to_right  # pairs is 0 on odd blocks, so the left and right parts below do not overlap
        grad_in = torch.zeros(pairs.shape[0], w * k, dtype=out.dtype)
        torch.bitwise_xor(pairs, right, out=grad_in[:, :-k])
        torch.bitwise_or(grad_in[:, k:], right, out=grad_in[:, k:])
        return _from_rows(grad_in, (n, c, h, w), dtype, nchw)


def max_pool_relu(x: torch.Tensor) -> torch.Tensor:
    """``F.relu(F.max_pool2d(x, 2))``; bfloat16/float16 maps on a CPU take the integer path of
    :class:`_MaxPoolReLUBits`, other inputs :func:`max_pool_2x2`."""
    if _even_cpu_map(x) and x.dtype in _BITS and (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        if torch.is_grad_enabled() and x.requires_grad:
            return _MaxPoolReLUBits.apply(x)
        return _pooled_map(_pool_bits(x, masks=False)[0], x)
    return F.relu(max_pool_2x2(x))


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)`` computed by :func:`max_pool_2x2`."""

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool_2x2(x)


class MaxPoolReLU(nn.Module):
    """``nn.MaxPool2d(2)`` followed by ``nn.ReLU()``, computed by :func:`max_pool_relu`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool_relu(x)
