import pytest
import torch
import torch.nn.functional as F

from mnistlab.augment import _affine_grid, augment_batch
from mnistlab.errors import ConfigError
from mnistlab.idx import MNIST
from mnistlab.settings import AugmentSettings

BACKGROUND = -MNIST.mean / MNIST.std  # a black pixel after normalization
AFFINE = AugmentSettings(rotation=15, translate=0.1, scale=0.1)


def digits(n=8):
    x = torch.full((n, 1, 28, 28), BACKGROUND)
    x[:, :, 8:20, 12:16] = 2.8  # a vertical bar
    return x


def test_shape_dtype_device_preserved():
    x = digits()
    out = augment_batch(x, AFFINE, torch.Generator().manual_seed(0), BACKGROUND)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device


def test_disabled_is_identity():
    x = digits()
    assert augment_batch(x, AugmentSettings(), torch.Generator(), BACKGROUND) is x


def test_deterministic_for_a_seed_and_different_across_seeds():
    x = digits()
    a = augment_batch(x, AFFINE, torch.Generator().manual_seed(1), BACKGROUND)
    b = augment_batch(x, AFFINE, torch.Generator().manual_seed(1), BACKGROUND)
    c = augment_batch(x, AFFINE, torch.Generator().manual_seed(2), BACKGROUND)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("cfg", [AFFINE, AugmentSettings(elastic_alpha=3.0)])
def test_each_sample_gets_its_own_warp(cfg):
    out = augment_batch(digits(16), cfg, torch.Generator().manual_seed(0), BACKGROUND)
    flat = out.flatten(1)
    assert all(not torch.allclose(flat[0], flat[i]) for i in range(1, 16))


def test_background_stays_black_and_ink_is_kept():
    out = augment_batch(digits(), AFFINE, torch.Generator().manual_seed(0), BACKGROUND)
    assert out[:, :, 0, 0].allclose(torch.tensor(BACKGROUND))  # corners stay background after a shift
    ink_in, ink_out = (digits() - BACKGROUND).sum(), (out - BACKGROUND).sum()
    assert 0.7 < ink_out / ink_in < 1.3


def test_bad_ranges_name_the_key():
    with pytest.raises(ConfigError, match="regularization.augment.scale must be < 1, got 1.5"):
        AugmentSettings(scale=1.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", [(28, 28), (5, 9)])
def test_affine_grid_matches_torch(dtype, size):
    theta = torch.randn(7, 2, 3, dtype=dtype)
    expected = F.affine_grid(theta, [7, 1, *size], align_corners=False)
    torch.testing.assert_close(_affine_grid(theta, *size), expected)
