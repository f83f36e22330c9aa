import pytest
import torch
import torch.nn.functional as F

from mnistlab.pooling import MaxPool2x2, MaxPoolReLU, max_pool_2x2, max_pool_relu


def _pool_and_grad(pool, x: torch.Tensor, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_()
    out = pool(x)
    out.backward(grad_out)
    return out, x.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(4, 6, 28, 28), (3, 16, 10, 10), (2, 1, 2, 4)])
def test_values_and_gradients_match_max_pool2d_exactly(dtype, shape):
    torch.manual_seed(0)
    x = torch.randn(shape).to(dtype)
    x[0, 0, :2, :2] = 1.0  # a window of ties: the gradient goes to its first pixel, as in F.max_pool2d
    x[-1, -1] = x[-1, -1].round()  # many ties, as on MNIST's constant background
    grad_out = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2).to(dtype)
    ours, ours_grad = _pool_and_grad(max_pool_2x2, x, grad_out)
    theirs, theirs_grad = _pool_and_grad(lambda t: F.max_pool2d(t, 2), x, grad_out)
    assert torch.equal(ours, theirs)
    assert torch.equal(ours_grad, theirs_grad)
    assert ours_grad.dtype == dtype and ours_grad.is_contiguous()


def test_without_grad_and_in_inference_mode():
    x = torch.randn(2, 3, 8, 6)
    with torch.inference_mode():
        assert torch.equal(MaxPool2x2()(x), F.max_pool2d(x, 2))
    assert torch.equal(max_pool_2x2(x), F.max_pool2d(x, 2))


@pytest.mark.parametrize(
    "x",
    [
        torch.randn(2, 3, 7, 6),  # odd height
        torch.randn(2, 16, 10, 10).contiguous(memory_format=torch.channels_last),  # PyTorch's NHWC kernel is the faster one
        torch.randn(3, 8, 8),  # unbatched
    ],
)
def test_other_inputs_fall_back_to_max_pool2d(x):
    ours, ours_grad = _pool_and_grad(max_pool_2x2, x, torch.ones_like(F.max_pool2d(x, 2)))
    theirs, theirs_grad = _pool_and_grad(lambda t: F.max_pool2d(t, 2), x, torch.ones_like(ours))
    assert torch.equal(ours, theirs) and torch.equal(ours_grad, theirs_grad)
    assert ours.is_contiguous(memory_format=torch.channels_last) == theirs.is_contiguous(memory_format=torch.channels_last)


def _with_ties(x: torch.Tensor) -> torch.Tensor:
    """Windows of equal values (positive, zero, negative), -0.0 and all-negative windows, as on MNIST's background."""
    x = x.clone()
    x[0, :, :4, :4] = 0.5
    x[0, :, 4:6, :2] = -0.5
    x[-1, :, :2, :2] = 0.0
    x[-1, :, 2:4, :2] = -0.0
    return x


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("shape", [(4, 6, 28, 28), (3, 16, 10, 10), (2, 3, 6, 4)])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_max_pool_relu_matches_relu_then_max_pool2d_exactly(dtype, shape, memory_format):
    """The integer path of 16-bit floats included: same values, same gradients, same memory format."""
    torch.manual_seed(0)
    x = _with_ties(torch.randn(shape)).to(dtype).contiguous(memory_format=memory_format)
    grad_out = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2).to(dtype)
    ours, ours_grad = _pool_and_grad(max_pool_relu, x, grad_out)
    theirs, theirs_grad = _pool_and_grad(lambda t: F.max_pool2d(F.relu(t), 2), x, grad_out)
    assert torch.equal(ours, theirs)
    assert torch.equal(ours_grad, theirs_grad)
    assert ours.dtype == ours_grad.dtype == dtype
    assert ours.is_contiguous(memory_format=memory_format) and ours_grad.is_contiguous(memory_format=memory_format)
    with torch.no_grad():
        assert torch.equal(MaxPoolReLU()(x), theirs)


@pytest.mark.parametrize(
    "x",
    [
        torch.randn(2, 3, 7, 6).bfloat16(),  # odd height
        torch.randn(2, 6, 8, 12).bfloat16()[..., :8],  # neither NCHW nor channels_last
        torch.randn(3, 8, 8).bfloat16(),  # unbatched
    ],
)
def test_max_pool_relu_other_inputs(x):
    ours, ours_grad = _pool_and_grad(max_pool_relu, x, torch.ones_like(F.max_pool2d(x, 2)))
    theirs, theirs_grad = _pool_and_grad(lambda t: F.max_pool2d(F.relu(t), 2), x, torch.ones_like(ours))
    assert torch.equal(ours, theirs) and torch.equal(ours_grad, theirs_grad)
