"""Compiled inner loops of the synthetic face generator (see synthetic.py).

A cold identity used to spend most of its time in hundreds of numpy calls on arrays of a few dozen
elements, each ~1 us of dispatch for nanoseconds of arithmetic. These kernels do that arithmetic in
one call each. They draw no random numbers: the caller draws with its own generator and passes the
draws in, so every image stays a pure function of (seed, identity, image). cache=True keeps the
compiled code on disk, so only the first import on a machine pays the compile.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True)


_F32 = np.float32
# Far-out Gaussian terms are capped at e^-25 (~1e-11): normal floats, never subnormals (~100x slower).
_CAP = math.exp(-25.0)
# Terms whose weight is below these cannot change a float32 normal or a rounded albedo level: skipped.
_TINY_RELIEF = 1e-9
_TINY_TINT = 1e-6


@_jit
def _gaussian(grid: np.ndarray, centre: float, sigma: float, g: np.ndarray, dg: np.ndarray) -> None:  # pragma: no cover
    """g = exp(-d^2 / 2) (capped, see _CAP) and dg its derivative -d g / sigma, d = (grid - centre) / sigma.

    On the evenly spaced grid successive ratios are themselves geometric, so three exps per bump replace
    one per grid point: walk outwards from the point nearest the centre until the cap is reached.
    """
    n = grid.shape[0]
    h = grid[1] - grid[0]
    c = math.exp(-h * h / (sigma * sigma))
    start = min(max(int(round((centre - grid[0]) / h)), 0), n - 1)
    d0 = (grid[start] - centre) / sigma
    e0 = math.exp(-0.5 * d0 * d0)
    r0 = math.exp(-h * d0 / sigma - 0.5 * h * h / (sigma * sigma))  # e[i + 1] / e[i] at i = start
    inv2 = 1.0 / (sigma * sigma)
    for step in (1, -1):
        e = e0
        r = r0 if step == 1 else c / r0
        i = start
        while 0 <= i < n:
            if e > _CAP:
                g[i] = e
                e *= r
                r *= c
            else:
                g[i] = _CAP
            i += step
    for i in range(n):
        dg[i] = (centre - grid[i]) * inv2 * g[i]


@_jit
def shading_maps(bumps: np.ndarray, tints: np.ndarray, grid: np.ndarray, cx: float, cy: float,
                 a: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Normals (n, n, 3) float32, albedo x128 (n, n, 4) uint8 and depth (n, n) float32 from 17 Gaussian bumps
    (x0, y0, sx, sy, amplitude): 0-9 relief, 10-14 colour spots with RGB amplitudes tints (5, 3), 15-16 depth.

    The normals are a head ellipsoid (horizontal semi-axis a, vertical 64, centre (cx, cy)) plus the relief.
    """
    n = grid.shape[0]
    k = bumps.shape[0]
    gx = np.empty((k, n))
    gy = np.empty((k, n))
    dgx = np.empty((k, n))
    dgy = np.empty((k, n))
    for j in range(k):
        _gaussian(grid, bumps[j, 0], bumps[j, 2], gx[j], dgx[j])
        _gaussian(grid, bumps[j, 1], bumps[j, 3], gy[j], dgy[j])
    # Float32 rows: twice the SIMD width of float64 for the per-pixel work.
    gx32 = gx.astype(np.float32)
    dgx32 = dgx.astype(np.float32)
    b = 64.0
    u = np.empty(n, np.float32)
    uu = np.empty(n, np.float32)
    for i in range(n):
        u[i] = _F32((grid[i] - cx) / a)
        uu[i] = u[i] * u[i]
    normals = np.empty((n, n, 3), np.float32)
    albedo = np.empty((n, n, 4), np.uint8)
    depth = np.empty((n, n), np.float32)
    sx = np.empty(n, np.float32)
    sy = np.empty(n, np.float32)
    nx = np.empty(n, np.float32)
    ny = np.empty(n, np.float32)
    nz = np.empty(n, np.float32)
    tone = np.empty((3, n), np.float32)
    floor = _F32(0.0484)  # the ellipsoid's slope is capped at 1 / 0.22
    one = _F32(1.0)
    for y in range(n):
        v = (grid[y] - cy) / b
        rest = _F32(1.0 - v * v)
        ky = _F32(0.9 * a / b * v)
        sx[:] = 0.0
        sy[:] = 0.0
        for j in range(10):
            ay = _F32(bumps[j, 4] * gy[j, y])
            by = _F32(bumps[j, 4] * dgy[j, y])
            if abs(ay) > _TINY_RELIEF:
                row = dgx32[j]
                for x in range(n):
                    sx[x] += ay * row[x]
            if abs(by) > _TINY_RELIEF:
                row = gx32[j]
                for x in range(n):
                    sy[x] += by * row[x]
        for x in range(n):
            q = rest - uu[x]
            iw = one / np.sqrt(q if q > floor else floor)
            px = _F32(0.9) * u[x] * iw - sx[x]
            py = ky * iw - sy[x]
            nx[x] = px
            ny[x] = py
            nz[x] = one / np.sqrt(px * px + py * py + one)
        for x in range(n):
            normals[y, x, 0] = nx[x] * nz[x]
            normals[y, x, 1] = ny[x] * nz[x]
            normals[y, x, 2] = nz[x]
        tone[:] = 128.0
        for j in range(10, 15):
            row = gx32[j]
            for c in range(3):
                w = _F32(gy[j, y] * 128.0 * tints[j - 10, c])
                if abs(w) > _TINY_TINT:
                    dst = tone[c]
                    for x in range(n):
                        dst[x] += w * row[x]
        for x in range(n):
            for c in range(3):
                albedo[y, x, c] = min(max(int(round(tone[c, x])), 0), 255)
            albedo[y, x, 3] = 128
        d0 = bumps[15, 4] * gy[15, y]
        d1 = bumps[16, 4] * gy[16, y]
        for x in range(n):
            depth[y, x] = d0 * gx[15, x] + d1 * gx[16, x]
    return normals, albedo, depth


@_jit
def sample_in(mask: np.ndarray, cand: np.ndarray, x0: float, y0: float, x1: float, y1: float, n: int,
              offset: float) -> np.ndarray:  # pragma: no cover - compiled
    """The first n of the uniform candidates cand (2, m) scaled to the box that fall inside the half-resolution
    mask, as (2, <= n) x and y rows; offset maps canonical coordinates to twice mask pixels."""
    out = np.empty((2, n))
    m = 0
    for i in range(cand.shape[1]):
        if m == n:
            break
        x = cand[0, i] * (x1 - x0) + x0
        y = cand[1, i] * (y1 - y0) + y0
        if mask[int((y + offset) * 0.5), int((x + offset) * 0.5)] > 0:
            out[0, m] = x
            out[1, m] = y
            m += 1
    return out[:, :m].copy()  # contiguous: one compiled specialisation of strands


# Strand flow modes: how a hair's direction, length and bend follow from its start and three normals.
CURLY, FRONT, BACK, BEARD = 0, 1, 2, 3


@_jit
def strands(starts: np.ndarray, noise: np.ndarray, mode: int, p0: float, p1: float, p2: float, p3: float, k: int,
            offset: float, size: int) -> np.ndarray:  # pragma: no cover - compiled
    """Flat pixel indices (n, k) into a size x size canvas of slightly bent 1-pixel hairs, k samples each.

    starts (2, n) are canonical x and y (offset to canvas pixels), noise (3, n) standard normals. Modes:
    CURLY random direction; FRONT away from (p0, p1) with gravity p2, length scale p3; BACK hanging down,
    away from x = p0; BEARD down and outward from x = p0, p1 the beard kind (1 stubble). Samples are at most
    a pixel apart (k >= longest hair + 1), so truncated they form an 8-connected line; points off the
    canvas are clamped to its border, which the margin keeps out of view.
    """
    count = starts.shape[1]
    out = np.empty((count, k), np.int64)
    hi = size - 1.0
    for i in range(count):
        sx = starts[0, i]
        sy = starts[1, i]
        g0 = noise[0, i]
        g1 = noise[1, i]
        g2 = noise[2, i]
        if mode == CURLY:
            dx, dy = g0, g1
            length = 2.5 + 1.2 * abs(g2)
            bend = min(max(g2, -2.0), 2.0)
        elif mode == FRONT:
            dx, dy = sx - p0, sy - p1
            r = max(math.sqrt(dx * dx + dy * dy), 1e-6)
            dx = dx / r + 0.25 * g0
            dy = dy / r + p2 + 0.25 * g1
            length = min(max(7.0 + 2.0 * g2, 4.0), 11.0) * p3
            bend = min(max(g2 * 0.6, -1.2), 1.2)
        elif mode == BACK:
            side = 1.0 if sx > p0 else (-1.0 if sx < p0 else 0.0)
            dx = 0.15 * g0 + side * 0.15
            dy = 0.15 * g1 + 1.0
            length = min(max(10.0 + 2.0 * g2, 4.0), 16.0)
            bend = min(max(g2, -1.5), 1.5)
        else:
            dx = 0.4 * g0 + (sx - p0) * 0.03
            dy = 0.4 * g1 + 1.0
            length = (1.0 + 0.25 * g2) if p1 == 1.0 else (3.2 + 0.7 * g2)
            length = min(max(length, -6.0), 6.0)
            bend = 0.3 * g2
        r = max(math.sqrt(dx * dx + dy * dy), 1e-6)
        dx /= r
        dy /= r
        ax, ay = dx * length, dy * length
        bx, by = -dy * bend, dx * bend  # the bend is perpendicular to the hair
        for j in range(k):
            t = j / (k - 1)
            s = 4.0 * t * (1.0 - t)
            px = min(max(sx + offset + t * ax + s * bx, 0.0), hi)
            py = min(max(sy + offset + t * ay + s * by, 0.0), hi)
            out[i, j] = int(py) * size + int(px)
    return out


@_jit
def splat(pixels: np.ndarray, hairs: np.ndarray, first: int, step: int, value: np.uint32) -> None:  # pragma: no cover
    """Set pixels (a flat uint32 view of an RGBA canvas) to value along hairs first, first + step, ..."""
    for i in range(first, hairs.shape[0], step):
        for j in range(hairs.shape[1]):
            pixels[hairs[i, j]] = value


@_jit
def brow_hairs(left: np.ndarray, tx: np.ndarray, ty: np.ndarray, draws: np.ndarray, cx: float, thick: float,
               offset: float, one: float) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Fixed-point brow hairs (2m, 2, 2) and their lift per unit brow raise (2m, 1, 2) from uniforms (2m, 4).

    left (11, 2) is the left brow's centreline, (tx, ty) its unit tangents; the right brow mirrors x about
    cx. Draw rows: m hairs of the left brow, then m of the right; columns: position along the brow, across
    it, direction spread, length.
    """
    m = draws.shape[0] // 2
    out = np.empty((2 * m, 2, 2), np.int32)
    lift = np.zeros((2 * m, 1, 2))
    for side in range(2):
        sign = 1.0 - 2.0 * side
        for h in range(m):
            row = side * m + h
            t = draws[row, 0]
            i0 = int(t * 10)  # t < 1, so i0 <= 9
            f = t * 10 - i0
            px = sign * (left[i0, 0] * (1 - f) + left[i0 + 1, 0] * f) + 2.0 * side * cx
            py = left[i0, 1] * (1 - f) + left[i0 + 1, 1] * f
            ti, ui = tx[i0], ty[i0]
            w = (draws[row, 1] - 0.5) * thick * (0.35 + 0.65 * t)
            sx = px + sign * ui * w
            sy = py - ti * w
            up = t**3  # hairs near the inner end point up, the rest lie along the brow
            q = up + 0.5 * (draws[row, 2] - 0.5)
            dx = sign * (ui * q - ti * (1 - up))
            dy = -ui * (1 - up) - ti * q
            grow = (2.0 + 2.0 * draws[row, 3]) / max(math.sqrt(dx * dx + dy * dy), 1e-6)
            out[row, 0, 0] = int((sx + offset) * one + 0.5)
            out[row, 0, 1] = int((sy + offset) * one + 0.5)
            out[row, 1, 0] = int((sx + dx * grow + offset) * one + 0.5)
            out[row, 1, 1] = int((sy + dy * grow + offset) * one + 0.5)
            lift[row, 0, 1] = (0.8 + 0.4 * t) * one
    return out, lift


@_jit
def _depth_sample(depth: np.ndarray, x: float, y: float) -> float:  # pragma: no cover - compiled
    """Bilinear depth at half-resolution pixel (x, y), border replicated, weights in 1/32 steps as cv2.remap."""
    h, w = depth.shape
    fx = round(x * 32.0)
    fy = round(y * 32.0)
    ix = int(fx) >> 5
    iy = int(fy) >> 5
    ax = (int(fx) & 31) / 32.0
    ay = (int(fy) & 31) / 32.0
    x0 = min(max(ix, 0), w - 1)
    x1 = min(max(ix + 1, 0), w - 1)
    y0 = min(max(iy, 0), h - 1)
    y1 = min(max(iy + 1, 0), h - 1)
    top = depth[y0, x0] * (1.0 - ax) + depth[y0, x1] * ax
    bottom = depth[y1, x0] * (1.0 - ax) + depth[y1, x1] * ax
    return top * (1.0 - ay) + bottom * ay


@_jit
def project(depth: np.ndarray, lm: np.ndarray, g0: float, g1: float, affine: np.ndarray,
            offset: float) -> np.ndarray:  # pragma: no cover - compiled
    """Output-pixel points (n, 2): solve posed - (g0, g1) depth(posed) = lm per point (Newton), then the affine.

    depth is sampled at half resolution, (canonical + offset) / 2, as the pixel warp samples it.
    """
    out = np.empty((lm.shape[0], 2))
    for i in range(lm.shape[0]):
        lx, ly = lm[i, 0], lm[i, 1]
        x, y = lx, ly
        if g0 != 0.0 or g1 != 0.0:
            z = _depth_sample(depth, (x + offset) * 0.5, (y + offset) * 0.5)
            x, y = lx + z * g0, ly + z * g1
            for _ in range(8):
                gx = (x + offset) * 0.5
                gy = (y + offset) * 0.5
                z = _depth_sample(depth, gx, gy)
                rx = x - lx - z * g0
                ry = y - ly - z * g1
                if max(abs(rx), abs(ry)) < 0.02:  # cv2 interpolates in 1/32 steps: finer is noise
                    break
                # The Jacobian I - g (zx, zy)^T is rank-one off the identity: Sherman-Morrison inverts it.
                zx = _depth_sample(depth, gx + 0.5, gy) - z
                zy = _depth_sample(depth, gx, gy + 0.5) - z
                step = (zx * rx + zy * ry) / (1.0 - (g0 * zx + g1 * zy))
                x -= rx + step * g0
                y -= ry + step * g1
        out[i, 0] = affine[0, 0] * x + affine[0, 1] * y + affine[0, 2]
        out[i, 1] = affine[1, 0] * x + affine[1, 1] * y + affine[1, 2]
    return out
