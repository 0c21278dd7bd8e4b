"""PSNR and SSIM of recovered faces against values known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fedsplit.privacy.metrics import psnr, ssim


def _faces(n: int = 3, seed: int = 0) -> np.ndarray:
    """Textured random images in [-0.5, 0.5], so that an offset up to 0.5 never meets the clamp."""
    rng = np.random.default_rng(seed)
    coarse = np.kron(rng.uniform(-0.3, 0.3, size=(n, 3, 8, 8)), np.ones((1, 1, 4, 4)))
    return coarse + rng.uniform(-0.2, 0.2, size=coarse.shape)  # (n, 3, 32, 32)


def test_identical_images_give_infinite_psnr_and_ssim_one():
    x = _faces()
    assert np.all(np.isinf(psnr(x, x))) and np.all(psnr(x, x) > 0)
    np.testing.assert_allclose(ssim(x, x), 1.0, atol=1e-12)


@pytest.mark.parametrize("d", [0.1, 0.02, 0.5])
def test_constant_offset_has_the_closed_form_psnr(d):
    x = _faces()
    got = psnr(x + d, x)
    np.testing.assert_allclose(got, 10 * math.log10(4 / d**2), rtol=1e-9)


def test_torch_and_numpy_inputs_agree_per_image():
    x = _faces(4)
    y = x + np.random.default_rng(1).normal(0, 0.1, x.shape)
    got = psnr(torch.from_numpy(y).float(), torch.from_numpy(x).float())
    assert got.shape == (4,)
    np.testing.assert_allclose(got, psnr(y, x), atol=1e-3)


def test_recovered_is_clamped_before_scoring():
    x = np.full((1, 3, 16, 16), 1.0)
    np.testing.assert_array_equal(psnr(x + 5.0, x), [np.inf])  # overshoot past 1 is clipped back to 1


def test_ssim_of_noise_or_scrambled_pixels_is_low_and_of_a_slight_change_high():
    # Not the negative: SSIM's luminance and structure terms are both negative there, and their product is not.
    x = _faces(2)
    rng = np.random.default_rng(2)
    noise = rng.uniform(-1, 1, x.shape)
    scrambled = rng.permutation(x.reshape(2, 3, -1), axis=2).reshape(x.shape)  # same values, no structure
    assert np.all(ssim(noise, x) < 0.1)
    assert np.all(ssim(scrambled, x) < 0.3)
    assert np.all(ssim(x + 0.01 * noise, x) > 0.9)


@pytest.mark.parametrize("bad, name", [
    ((np.zeros((2, 3, 16, 16)), np.zeros((2, 3, 16, 17))), "same shape"),
    ((np.zeros((3, 16, 16)), np.zeros((3, 16, 16))), "recovered must be a batch"),
    ((np.zeros((1, 3, 16, 16)), np.full((1, 3, 16, 16), np.nan)), "original contains NaN"),
    ((np.full((1, 3, 16, 16), np.nan), np.zeros((1, 3, 16, 16))), "recovered contains NaN"),
    ((np.zeros((1, 3, 16, 16), np.uint8), np.zeros((1, 3, 16, 16))), "recovered must be floating"),
])
def test_bad_inputs_raise_naming_the_argument(bad, name):
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match=name):
            metric(*bad)
