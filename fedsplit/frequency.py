"""The DuetFace frequency split: block DCT of an upsampled YCbCr face, and its inverse.

Definition (a contract, see `block_dct`): images (B,3,H,W) in [-1,1] -> [0,1] -> bilinear
upsampling by `upsample` with align_corners=True -> x255 -> JPEG full-range YCbCr -> minus 128 ->
orthonormal 8x8 DCT-II on each non-overlapping block. Plane k = 8*u + v (u vertical frequency).

Why this is fast: every step is linear and each 8x8 block of the upsampled image depends on only
a few original rows and columns. So the whole chain collapses, per axis, into a banded matrix
M[u, i, r] (frequency u of block i from original row r) with K <= 8 non-zero taps, and a block
coefficient is sum_{a,b} Mh[u,i,a] * Mw[v,j,b] * YCbCr[r_a, q_b]. The 896x896 upsampled image is never
built; the CPU kernel computes each output value from K*K original pixels and writes it once.
"""

from __future__ import annotations

import contextlib
import functools
import math
import mmap
from collections.abc import Iterator
from dataclasses import dataclass

import numba
import numpy as np
import torch

DUETFACE_CLIENT_CHANNELS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 8, 9, 16, 24)
UPSAMPLE_FACTORS: tuple[int, ...] = (1, 2, 4, 8)
COLOURS: tuple[str, ...] = ("Y", "Cb", "Cr")
NUM_FREQUENCIES = 64

# JPEG full-range RGB -> YCbCr. Its Cb and Cr rows sum to 0, so only Y feels the +1 of [-1,1] -> [0,1].
_RGB_TO_YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
)
# Per-colour constant after "x255, +128 on chroma, minus 128", for an input x in [-1,1]:
# value = 127.5 * (RGB_TO_YCBCR @ x) + offset, with Y: 127.5 - 128 = -0.5, Cb and Cr: 0.
_YCBCR_OFFSET = np.array([-0.5, 0.0, 0.0])
# A constant c over an 8x8 block has orthonormal DC coefficient 8c and no other energy.
_DC_GAIN = 8.0
_CMIX = (127.5 * _RGB_TO_YCBCR).astype(np.float32)  # [-1,1] RGB -> YCbCr less its offset
_DC = (_DC_GAIN * _YCBCR_OFFSET).astype(np.float32)  # the offset, as it lands on each colour's DC plane
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)


def server_channels(client_channels: tuple[int, ...] = DUETFACE_CLIENT_CHANNELS) -> tuple[int, ...]:
    """The per-colour frequencies the server receives: all 64 not kept by the client, ascending."""
    kept = set(_check_channels(client_channels, "client_channels"))
    return tuple(k for k in range(NUM_FREQUENCIES) if k not in kept)


def block_dct(images: torch.Tensor, upsample: int = 8) -> torch.Tensor:
    """All 64 DCT planes per colour: (B,3,H,W) in [-1,1] -> float32 (B, 3, 64, H*up/8, W*up/8)."""
    planes, _ = _transform(images, upsample, tuple(range(NUM_FREQUENCIES)), ())
    return planes


def dct_split(
    images: torch.Tensor,
    client_channels: tuple[int, ...] = DUETFACE_CLIENT_CHANNELS,
    upsample: int = 8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split faces into (client, server) planes, each (B, 3*n, h, w), colour first then ascending k."""
    client_k = tuple(sorted(_check_channels(client_channels, "client_channels")))
    client, server = _transform(images, upsample, client_k, server_channels(client_k))
    return client.flatten(1, 2), server.flatten(1, 2)


def inverse_dct(
    planes: torch.Tensor,
    channels: tuple[int, ...] | None = None,
    upsample: int = 8,
) -> torch.Tensor:
    """Least-squares image (B,3,H,W) on the [-1,1] scale from a subset of planes, missing ones zero.

    `planes` is (B, 3*len(channels), h, w) in dct_split's order, or (B, 3, 64, h, w) from block_dct
    when `channels` is None. Values are not clamped: a partial view overshoots [-1,1], which is
    part of what a picture of it should show.
    """
    upsample = _check_upsample(upsample)
    ks = tuple(range(NUM_FREQUENCIES)) if channels is None else _check_channels(channels, "channels")
    if not isinstance(planes, torch.Tensor) or not planes.is_floating_point():
        raise ValueError(f"planes must be a floating-point torch.Tensor, got {_describe(planes)}")
    if planes.ndim == 5 and channels is None and planes.shape[1:3] == (3, NUM_FREQUENCIES):
        planes = planes.flatten(1, 2)
    if planes.ndim != 4 or planes.shape[1] != 3 * len(ks):
        raise ValueError(
            f"planes must be (B, {3 * len(ks)}, h, w) for {len(ks)} channels per colour, "
            f"got shape {tuple(planes.shape)}"
        )
    if not torch.isfinite(planes).all():
        raise ValueError("planes contain NaN or infinite values")
    b, _, h, w = planes.shape
    if (h * 8) % upsample or (w * 8) % upsample:
        raise ValueError(f"planes of {h}x{w} do not come from upsample={upsample} (h*8 must divide by it)")
    size = (h * 8 // upsample, w * 8 // upsample)
    ops = _operators(size[0], size[1], upsample)
    full = planes.new_zeros(b, 3, NUM_FREQUENCIES, h, w, dtype=torch.float64)
    full[:, :, list(ks)] = planes.reshape(b, 3, len(ks), h, w).double()
    # Rows of the collapsed operator are (u, i); pinv maps them back to original rows.
    grid = full.reshape(b, 3, 8, 8, h, w).permute(0, 1, 2, 4, 3, 5).reshape(b, 3, 8 * h, 8 * w)
    lh = torch.from_numpy(ops.pinv_h).to(planes.device)
    lw = torch.from_numpy(ops.pinv_w).to(planes.device)
    ycc = lh @ grid @ lw.T
    offset = torch.from_numpy(_YCBCR_OFFSET).to(planes.device).view(1, 3, 1, 1)
    rgb = torch.einsum("oc,bchw->bohw", torch.from_numpy(_YCBCR_TO_RGB).to(planes.device), (ycc - offset) / 127.5)
    return rgb.float()


# --- operators -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Operators:
    """Per-axis banded operators for one (H, W, upsample)."""

    taps_h: np.ndarray  # (8, h, K) float32: weight of original row rows_h[i, a] in frequency u of block i
    rows_h: np.ndarray  # (h, K) int64
    taps_w: np.ndarray  # (K, 8, w) float32, laid out so the kernel's inner loop over blocks j is contiguous
    cols_w: np.ndarray  # (K, w) int64
    dense_h: np.ndarray  # (8, h, H) float32, the same operator unbanded (for the torch path)
    dense_w: np.ndarray  # (8, w, W) float32
    pinv_h: np.ndarray  # (H, 8h) float64, least-squares inverse of dense_h viewed as (8h, H)
    pinv_w: np.ndarray  # (W, 8w) float64


def _dct_matrix(n: int = 8) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def _bilinear_matrix(n_in: int, factor: int) -> np.ndarray:
    """(n_in*factor, n_in) matrix of 1-D linear interpolation with align_corners=True."""
    n_out = n_in * factor
    src = np.arange(n_out) * ((n_in - 1) / (n_out - 1))
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    a = np.zeros((n_out, n_in))
    np.add.at(a, (np.arange(n_out), lo), 1.0 - frac)
    np.add.at(a, (np.arange(n_out), hi), frac)
    return a


def _axis_operator(n_in: int, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dense (8, blocks, n_in) operator, its band (taps, rows) and its least-squares inverse."""
    blocks = n_in * factor // 8
    interp = _bilinear_matrix(n_in, factor).reshape(blocks, 8, n_in)
    dense = np.einsum("ua,iar->uir", _dct_matrix(), interp)  # (8, blocks, n_in)
    support = np.abs(dense).sum(axis=0) > 1e-12  # (blocks, n_in)
    first = support.argmax(axis=1)
    last = n_in - 1 - support[:, ::-1].argmax(axis=1)
    k = int((last - first).max()) + 1
    first = np.minimum(first, n_in - k)
    rows = first[:, None] + np.arange(k)[None, :]  # (blocks, K)
    taps = np.take_along_axis(dense, np.broadcast_to(rows, (8, blocks, k)), axis=2)
    pinv = np.linalg.pinv(dense.reshape(8 * blocks, n_in))  # (n_in, 8*blocks)
    return dense, taps, rows, pinv


@functools.lru_cache(maxsize=16)
def _operators(height: int, width: int, upsample: int) -> _Operators:
    dense_h, taps_h, rows_h, pinv_h = _axis_operator(height, upsample)
    dense_w, taps_w, cols_w, pinv_w = _axis_operator(width, upsample)
    return _Operators(
        taps_h=np.ascontiguousarray(taps_h, dtype=np.float32),
        rows_h=np.ascontiguousarray(rows_h, dtype=np.int64),
        taps_w=np.ascontiguousarray(taps_w.transpose(2, 0, 1), dtype=np.float32),
        cols_w=np.ascontiguousarray(cols_w.T, dtype=np.int64),
        dense_h=dense_h.astype(np.float32),
        dense_w=dense_w.astype(np.float32),
        pinv_h=pinv_h,
        pinv_w=pinv_w,
    )


# --- the transform ---------------------------------------------------------------------------


def _transform(
    images: torch.Tensor, upsample: int, ks_a: tuple[int, ...], ks_b: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two groups of planes of every colour, each (B, 3, len(ks), h, w) float32, from one pass."""
    upsample = _check_upsample(upsample)
    _check_images(images, upsample)
    b, _, height, width = images.shape
    ops = _operators(height, width, upsample)
    if images.device.type != "cpu":
        x = images.float()
        return _transform_torch(x, ops, ks_a), _transform_torch(x, ops, ks_b)
    h, w = height * upsample // 8, width * upsample // 8
    out_a = _empty_float32((b, 3, len(ks_a), h, w))
    out_b = _empty_float32((b, 3, len(ks_b), h, w))
    if b:
        x = images.detach().to(torch.float32).contiguous()
        with _torch_threads():
            _split_kernel(
                x.numpy(), _CMIX, _DC, ops.taps_h, ops.rows_h, ops.taps_w, ops.cols_w,
                np.asarray(ks_a, dtype=np.int64), out_a.numpy(), np.asarray(ks_b, dtype=np.int64), out_b.numpy(),
            )
    return out_a, out_b


@contextlib.contextmanager
def _torch_threads() -> Iterator[None]:
    """Run numba's parallel kernel on as many threads as torch may use, and leave torch's count as it was.

    numba's OpenMP pool and torch share one libgomp. The pool's first launch sets that library's thread
    count to every core, which would override OMP_NUM_THREADS, torch.set_num_threads and a client
    actor's client_cpus for all later torch work in the thread: two one-thread runs on two cores would
    spin four threads, and float sums (so results) would change with it.
    """
    threads = torch.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _transform_torch(images: torch.Tensor, ops: _Operators, ks: tuple[int, ...]) -> torch.Tensor:
    """The same transform as dense matmuls, for devices the CPU kernel cannot reach."""
    dev = images.device
    ycc = torch.einsum("oc,bchw->bohw", torch.from_numpy(_CMIX).to(dev), images)
    u = torch.tensor([k // 8 for k in ks], device=dev)
    v = torch.tensor([k % 8 for k in ks], device=dev)
    mh = torch.from_numpy(ops.dense_h).to(dev)[u]  # (n, h, H)
    mw = torch.from_numpy(ops.dense_w).to(dev)[v]  # (n, w, W)
    rows = torch.einsum("nir,bcrq->bcniq", mh, ycc)
    out = torch.einsum("bcniq,njq->bcnij", rows, mw)
    dc = torch.tensor([k == 0 for k in ks], device=dev, dtype=out.dtype)
    return out + torch.from_numpy(_DC).to(dev).view(1, 3, 1, 1, 1) * dc.view(1, 1, -1, 1, 1)


# A batch of 64 at upsample 8 is 588 MiB; touching that much fresh memory in 4 KiB pages costs more
# than computing it. Asking the kernel for transparent huge pages halves that first-touch cost.
_HUGE_PAGE_MIN_BYTES = 2 * 2**20


def _empty_float32(shape: tuple[int, ...]) -> torch.Tensor:
    nbytes = 4 * math.prod(shape)
    if nbytes < _HUGE_PAGE_MIN_BYTES or not hasattr(mmap, "MADV_HUGEPAGE"):
        return torch.empty(shape, dtype=torch.float32)
    buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buffer.madvise(mmap.MADV_HUGEPAGE)
    return torch.frombuffer(buffer, dtype=torch.float32).view(shape)  # the tensor keeps the mapping alive


@numba.njit(parallel=True, fastmath=True, cache=True)
def _split_kernel(img, cmix, dc, taps_h, rows_h, taps_w, cols_w, ks_a, out_a, ks_b, out_b):  # pragma: no cover
    n_img, _, height, width = img.shape
    n_taps_h = rows_h.shape[1]
    n_taps_w = cols_w.shape[0]
    h = rows_h.shape[0]
    w = cols_w.shape[1]
    for job in numba.prange(n_img * 3):
        b = job // 3
        c = job % 3
        ycc = np.empty((height, width), np.float32)
        for r in range(height):
            for q in range(width):
                ycc[r, q] = cmix[c, 0] * img[b, 0, r, q] + cmix[c, 1] * img[b, 1, r, q] + cmix[c, 2] * img[b, 2, r, q]
        # Vertical pass: frequency u of block row i, still at original column resolution.
        vert = np.zeros((8, h, width), np.float32)
        for u in range(8):
            for i in range(h):
                for a in range(n_taps_h):
                    weight = taps_h[u, i, a]
                    src = ycc[rows_h[i, a]]
                    dst = vert[u, i]
                    for q in range(width):
                        dst[q] += weight * src[q]
        # Gather each horizontal tap once so the inner loops below are contiguous and vectorise.
        tapped = np.empty((n_taps_w, 8, h, w), np.float32)
        for k in range(n_taps_w):
            for u in range(8):
                for i in range(h):
                    for j in range(w):
                        tapped[k, u, i, j] = vert[u, i, cols_w[k, j]]
        _horizontal_pass(tapped, taps_w, dc[c], ks_a, out_a[b, c])
        _horizontal_pass(tapped, taps_w, dc[c], ks_b, out_b[b, c])


@numba.njit(fastmath=True, cache=True)
def _horizontal_pass(tapped, taps_w, dc, ks, out):  # pragma: no cover - compiled
    """Write planes ks (n, h, w) of one image and colour, each value once."""
    n_taps_w, _, h, w = tapped.shape
    for n in range(ks.shape[0]):
        u = ks[n] // 8
        v = ks[n] % 8
        for i in range(h):
            dst = out[n, i]
            weight = taps_w[0, v]
            src = tapped[0, u, i]
            for j in range(w):
                dst[j] = weight[j] * src[j]
            for k in range(1, n_taps_w):
                weight = taps_w[k, v]
                src = tapped[k, u, i]
                for j in range(w):
                    dst[j] += weight[j] * src[j]
            if ks[n] == 0:
                for j in range(w):
                    dst[j] += dc


# --- validation ------------------------------------------------------------------------------

# Float32 rounding of a [-1,1] image that went through arithmetic can land a hair outside.
_RANGE_SLACK = 1e-3


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor {x.dtype} {tuple(x.shape)}"
    return type(x).__name__


def _check_upsample(upsample: int) -> int:
    if isinstance(upsample, bool) or not isinstance(upsample, (int, np.integer)) or upsample not in UPSAMPLE_FACTORS:
        raise ValueError(f"upsample must be one of {UPSAMPLE_FACTORS}, got {upsample!r}")
    return int(upsample)


def _check_channels(channels: tuple[int, ...], name: str) -> tuple[int, ...]:
    ks = tuple(channels)
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ValueError(f"{name} must hold integer frequency indices 0..63, got {k!r} in {ks}")
        if not 0 <= k < NUM_FREQUENCIES:
            raise ValueError(f"{name} index {k} is out of range: frequencies are 0..63 (k = 8*u + v)")
    if len(set(ks)) != len(ks):
        raise ValueError(f"{name} repeats a frequency: {ks}")
    return tuple(int(k) for k in ks)


def _check_images(images: torch.Tensor, upsample: int) -> None:
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor (B,3,H,W) in [-1,1], got {_describe(images)}")
    if not images.is_floating_point():
        raise ValueError(
            f"images must be floating point in [-1,1], got dtype {images.dtype} "
            "(uint8 images: use fedsplit.data.types.images_to_tensor)"
        )
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    _, _, height, width = images.shape
    if height < 2 or width < 2 or (height * upsample) % 8 or (width * upsample) % 8:
        raise ValueError(
            f"images of {height}x{width} cannot be cut into 8x8 blocks after upsample={upsample}: "
            f"H*upsample and W*upsample must be multiples of 8"
        )
    if images.numel() == 0:
        return
    lo, hi = torch.aminmax(images.detach())
    if not (torch.isfinite(lo) and torch.isfinite(hi)):
        bad = (~torch.isfinite(images.detach())).flatten(1).any(dim=1).nonzero().flatten().tolist()
        raise ValueError(f"images contain NaN or infinite values in sample(s) {bad[:10]}")
    if lo < -1 - _RANGE_SLACK or hi > 1 + _RANGE_SLACK:
        outside = (images.detach().flatten(1).abs() > 1 + _RANGE_SLACK).any(dim=1).nonzero().flatten().tolist()
        raise ValueError(
            f"images must lie in [-1, 1], got values in [{lo.item():.4g}, {hi.item():.4g}] "
            f"in sample(s) {outside[:10]} (uint8 images: use fedsplit.data.types.images_to_tensor)"
        )
