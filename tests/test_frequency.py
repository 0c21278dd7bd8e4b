"""The frequency split against a slow float64 transcription of its definition."""

import math

import numpy as np
import pytest
import torch

from fedsplit.frequency import (
    DUETFACE_CLIENT_CHANNELS,
    _operators,
    _transform_torch,
    block_dct,
    dct_split,
    inverse_dct,
    server_channels,
)


def reference_block_dct(images: np.ndarray, upsample: int) -> np.ndarray:
    """The definition, step by step, in float64 and without any shortcut."""
    b, _, height, width = images.shape
    rgb = (images.astype(np.float64) + 1.0) / 2.0
    big_h, big_w = height * upsample, width * upsample

    def sample(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # align_corners=True: output pixel 0 sits on input 0 and output n_out-1 on input n_in-1.
        pos = np.arange(n_out) * (n_in - 1) / (n_out - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, pos - lo

    r0, r1, fr = sample(height, big_h)
    c0, c1, fc = sample(width, big_w)
    top = rgb[:, :, r0][:, :, :, c0] * (1 - fc) + rgb[:, :, r0][:, :, :, c1] * fc
    bottom = rgb[:, :, r1][:, :, :, c0] * (1 - fc) + rgb[:, :, r1][:, :, :, c1] * fc
    up = (top * (1 - fr)[:, None] + bottom * fr[:, None]) * 255.0
    red, green, blue = up[:, 0], up[:, 1], up[:, 2]
    y = 0.299 * red + 0.587 * green + 0.114 * blue
    cb = -0.168736 * red - 0.331264 * green + 0.5 * blue + 128
    cr = 0.5 * red - 0.418688 * green - 0.081312 * blue + 128
    ycc = np.stack([y, cb, cr], axis=1) - 128.0
    h, w = big_h // 8, big_w // 8
    out = np.zeros((b, 3, 64, h, w))
    n = np.arange(8)
    for u in range(8):
        for v in range(8):
            au = math.sqrt(1 / 8) if u == 0 else math.sqrt(2 / 8)
            av = math.sqrt(1 / 8) if v == 0 else math.sqrt(2 / 8)
            basis = np.outer(np.cos((2 * n + 1) * u * math.pi / 16), np.cos((2 * n + 1) * v * math.pi / 16))
            blocks = ycc.reshape(b, 3, h, 8, w, 8)
            out[:, :, 8 * u + v] = au * av * np.einsum("bcixjy,xy->bcij", blocks, basis)
    return out


def face_like(batch: int = 2, size: int = 112, seed: int = 0) -> torch.Tensor:
    """Random smooth shapes plus sharp edges and noise: exercises every frequency, spans [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    disc = ((xx**2 / 0.5 + yy**2 / 0.7) < 1).float()
    base = torch.stack([0.6 * disc - 0.3, 0.2 * disc + 0.1 * xx, -0.4 * disc + 0.3 * yy])
    noise = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    return (0.5 * base + 0.5 * noise).clamp(-1, 1)


@pytest.mark.parametrize("upsample", [1, 2, 4, 8])
def test_block_dct_matches_definition(upsample):
    images = face_like(batch=2, size=112)
    ours = block_dct(images, upsample)
    ref = reference_block_dct(images.numpy(), upsample)
    assert ours.shape == (2, 3, 64, 14 * upsample, 14 * upsample)
    assert ours.dtype == torch.float32
    # Coefficients reach hundreds (DC about +-1024 at the extremes); float32 keeps ~1e-4 of that.
    assert np.abs(ref).max() > 100
    assert np.abs(ours.double().numpy() - ref).max() < 1e-3


def test_extreme_images_reach_dc_range_and_match():
    images = torch.stack([torch.full((3, 16, 16), -1.0), torch.full((3, 16, 16), 1.0)])
    ours = block_dct(images, 8)
    ref = reference_block_dct(images.numpy(), 8)
    assert np.abs(ours.double().numpy() - ref).max() < 1e-3
    assert ours[0, 0, 0].mean().item() == pytest.approx(-1024.0, abs=1e-2)  # 8 * (0 - 128)
    assert ours[1, 0, 0].mean().item() == pytest.approx(1016.0, abs=1e-2)  # 8 * (255 - 128)


def test_non_square_and_float64_input():
    images = face_like(batch=1, size=32)[:, :, :, :24].double()
    ours = block_dct(images, 4)
    assert ours.shape == (1, 3, 64, 16, 12)
    assert np.abs(ours.double().numpy() - reference_block_dct(images.numpy(), 4)).max() < 1e-3


def test_torch_path_matches_cpu_kernel():
    # The path used on accelerators, checked here against the CPU kernel.
    images = face_like(batch=2, size=112, seed=3)
    for upsample in (1, 8):
        ks = tuple(range(64))
        dense = _transform_torch(images, _operators(112, 112, upsample), ks)
        assert torch.allclose(dense, block_dct(images, upsample), atol=2e-3, rtol=0)


def test_split_order_is_colour_then_ascending_frequency():
    images = face_like(batch=2, size=112, seed=1)
    planes = block_dct(images, 8)
    client, server = dct_split(images)
    srv = server_channels()
    assert client.shape == (2, 30, 112, 112) and server.shape == (2, 162, 112, 112)
    assert len(srv) == 54 and srv == tuple(sorted(set(range(64)) - set(DUETFACE_CLIENT_CHANNELS)))
    for colour in range(3):
        for n, k in enumerate(DUETFACE_CLIENT_CHANNELS):
            assert torch.equal(client[:, colour * 10 + n], planes[:, colour, k])
        for n, k in enumerate(srv):
            assert torch.equal(server[:, colour * 54 + n], planes[:, colour, k])


def test_any_client_channel_set_is_sorted_and_complemented():
    images = face_like(batch=1, size=56, seed=2)
    client, server = dct_split(images, client_channels=(63, 0, 7), upsample=2)
    planes = block_dct(images, 2)
    assert client.shape == (1, 9, 14, 14) and server.shape == (1, 183, 14, 14)
    assert torch.equal(client[:, 0], planes[:, 0, 0])
    assert torch.equal(client[:, 1], planes[:, 0, 7])
    assert torch.equal(client[:, 2], planes[:, 0, 63])
    assert torch.equal(server[:, 61], planes[:, 1, 1])


@pytest.mark.parametrize("upsample", [1, 2, 4, 8])
def test_inverse_of_all_planes_recovers_image(upsample):
    images = face_like(batch=2, size=112, seed=4)
    back = inverse_dct(block_dct(images, upsample), upsample=upsample)
    assert back.shape == images.shape
    assert (back - images).abs().max().item() < 1e-4


def test_inverse_of_split_parts():
    images = face_like(batch=2, size=112, seed=5)
    client, server = dct_split(images, upsample=8)
    seen_by_client = inverse_dct(client, DUETFACE_CLIENT_CHANNELS, upsample=8)
    seen_by_server = inverse_dct(server, server_channels(), upsample=8)
    # The inverse is affine (the -128 shift lives in the Y DC term): the two views add up to the image
    # plus the inverse of all-zero planes.
    zero = inverse_dct(torch.zeros_like(server), server_channels(), upsample=8)
    assert (seen_by_client + seen_by_server - zero - images).abs().max().item() < 1e-4
    # The client's view keeps the coarse face; the server's view alone is far from the image.
    assert (seen_by_client - images).abs().mean() < (seen_by_server - images).abs().mean()


def test_constant_image_lives_only_in_client_dc():
    images = torch.full((1, 3, 112, 112), 0.25)
    client, server = dct_split(images)
    assert server.abs().max().item() < 1e-3
    assert (inverse_dct(client, DUETFACE_CLIENT_CHANNELS) - images).abs().max().item() < 1e-4


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.zeros(1, 3, 112, 112, dtype=torch.uint8), "floating point"),
        (torch.zeros(1, 1, 112, 112), "shape"),
        (torch.zeros(3, 112, 112), "shape"),
        (torch.full((1, 3, 112, 112), 2.0), r"\[-1, 1\]"),
        (torch.full((1, 3, 112, 112), float("nan")), "NaN"),
        (torch.zeros(1, 3, 100, 100), "multiples of 8"),
        (np.zeros((1, 3, 112, 112), np.float32), "torch.Tensor"),
    ],
)
def test_bad_images_name_the_problem(images, match):
    with pytest.raises(ValueError, match=match):
        block_dct(images, 1)


@pytest.mark.parametrize("upsample", [3, 16, 0, True, 8.0])
def test_bad_upsample(upsample):
    with pytest.raises(ValueError, match="upsample"):
        block_dct(torch.zeros(1, 3, 16, 16), upsample)


@pytest.mark.parametrize("channels, match", [((64,), "out of range"), ((-1,), "out of range"), ((1.5,), "integer"), ((3, 3), "repeats")])
def test_bad_client_channels(channels, match):
    with pytest.raises(ValueError, match=match):
        dct_split(torch.zeros(1, 3, 16, 16), client_channels=channels, upsample=8)


def test_bad_sample_is_named():
    images = torch.zeros(4, 3, 16, 16)
    images[2, 1, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"sample\(s\) \[2\]"):
        block_dct(images, 8)
    images[2, 1, 3, 3] = 0.0
    images[3] = 200.0
    with pytest.raises(ValueError, match=r"sample\(s\) \[3\]"):
        dct_split(images)


def test_inverse_rejects_wrong_plane_count():
    client, _ = dct_split(torch.zeros(1, 3, 16, 16), upsample=8)
    with pytest.raises(ValueError, match="planes must be"):
        inverse_dct(client, (0, 1), upsample=8)


def test_cpu_kernel_keeps_torch_thread_count():
    """numba's OpenMP pool shares torch's libgomp: its first launch must not raise torch's thread count."""
    import os
    import subprocess
    import sys

    code = ("import torch, numba\nfrom fedsplit.frequency import dct_split\n"
            "torch.set_num_threads(1)\n"
            "dct_split(torch.zeros(2, 3, 112, 112), upsample=1)\n"
            "print(torch.get_num_threads(), numba.get_num_threads())\n")
    # A fresh process, since the pool starts once per process; two numba threads, so one core cannot hide it.
    env = {**os.environ, "NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "1"]
