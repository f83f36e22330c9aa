"""The random warp (``technique.random_warp``, set by ``regularization.augment``): per-sample, seeded, black stays black."""

import pytest
import torch
import torch.nn.functional as F

from mnistlab.data.catalog import MNIST
from mnistlab.training.techniques.random_warp import RandomWarp, _affine_grid

BACKGROUND = -MNIST.mean / MNIST.std  # a black pixel after normalization
AFFINE = {"rotation": 15, "translate": 0.1, "scale": 0.1}


def warp(**ranges) -> RandomWarp:
    return RandomWarp(**ranges, mean=[MNIST.mean], std=[MNIST.std])


def digits(n=8):
    x = torch.full((n, 1, 28, 28), BACKGROUND)
    x[:, :, 8:20, 12:16] = 2.8  # a vertical bar
    return x


def test_shape_dtype_device_and_labels_preserved():
    x, y = digits(), torch.arange(8)
    out, labels = warp(**AFFINE)(x, y, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device and labels is y


def test_all_zeros_is_the_identity_and_draws_nothing():
    x, generator = digits(), torch.Generator().manual_seed(0)
    before = generator.get_state()
    assert warp()(x, torch.arange(8), generator)[0] is x
    assert torch.equal(generator.get_state(), before)


def test_deterministic_for_a_seed_and_different_across_seeds():
    x = digits()
    a = warp(**AFFINE).warp(x, torch.Generator().manual_seed(1))
    b = warp(**AFFINE).warp(x, torch.Generator().manual_seed(1))
    c = warp(**AFFINE).warp(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("ranges", [AFFINE, {"elastic_alpha": 3.0}])
def test_each_sample_gets_its_own_warp(ranges):
    out = warp(**ranges).warp(digits(16), torch.Generator().manual_seed(0))
    flat = out.flatten(1)
    assert all(not torch.allclose(flat[0], flat[i]) for i in range(1, 16))


def test_background_stays_black_and_ink_is_kept():
    out = warp(**AFFINE).warp(digits(), torch.Generator().manual_seed(0))
    assert out[:, :, 0, 0].allclose(torch.tensor(BACKGROUND))  # corners stay background after a shift
    ink_in, ink_out = (digits() - BACKGROUND).sum(), (out - BACKGROUND).sum()
    assert 0.7 < ink_out / ink_in < 1.3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", [(28, 28), (5, 9)])
def test_affine_grid_matches_torch(dtype, size):
    """Our broadcast-sum grid is the one F.affine_grid computes, faster on a CPU."""
    theta = torch.randn(7, 2, 3, dtype=dtype)
    expected = F.affine_grid(theta, [7, 1, *size], align_corners=False)
    torch.testing.assert_close(_affine_grid(theta, *size), expected)
