"""Built-in synthetic face data set: deterministic ArcFace-aligned cartoon faces with 68 landmarks.

Every image is a pure function of (seed, identity, image), so any number of identities can be drawn
without storing anything. An identity is a set of shape and appearance parameters plus fixed fine
detail (skin texture, moles, freckles, wrinkles, hair, brow and beard strands) so that identity also
survives in the high spatial frequencies that DuetFace sends to the server; each image adds pose,
scale, shift, expression, lighting, background, occlusion, blur, noise and JPEG nuisance.
"""

from __future__ import annotations

import functools
import hashlib
import math
import sys
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from fedsplit.data import synthetic_kernels as _kern
from fedsplit.data.types import FACE_SIZE, NUM_LANDMARKS, FaceSample, stack_samples

# ArcFace's 5-point template for 112x112 crops: eye centres, nose tip, mouth corners (x, y).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)

# The head is drawn on a canvas larger than the output so that shrinking, shifting and turning it
# never pulls empty canvas border into view.
_MARGIN = 16
_CANVAS = FACE_SIZE + 2 * _MARGIN
# Sub-pixel bits for cv2 drawing: features are a few pixels wide, integer vertices would jitter.
_SHIFT = 4
_ONE = float(1 << _SHIFT)
_AA = cv2.LINE_AA
# Hair and beard strands are 1-pixel lines without anti-aliasing (set pixels, see _strands): several
# times cheaper than anti-aliased ones, still strand-like.
# Shading and the pose depth are smooth, so they live on a half-resolution grid.
_LOW = _CANVAS // 2
_LOW_XY = np.arange(_LOW, dtype=np.float32) * 2.0 + 0.5 - _MARGIN
# Output pixel x and y coordinates, for building the remap maps with cv2.addWeighted.
_GRID_X, _GRID_Y = np.meshgrid(np.arange(FACE_SIZE, dtype=np.float32), np.arange(FACE_SIZE, dtype=np.float32))

# Each random stream gets a tag, so identity, image and bank streams never share a key.
_TAG_IDENTITY = 0x1D
_TAG_IMAGE = 0x1A
_TAG_BANK = 0xBA
_BANK = 384
# Rendered identities kept per process: ~200 KiB each, enough for the default 200-identity set.
_CACHE = 256

_SKIN = np.array(
    [[70, 45, 33], [118, 77, 52], [166, 115, 82], [204, 152, 117], [230, 187, 154], [246, 214, 193]], np.float32
)
_HAIR = np.array(
    [[22, 18, 16], [48, 33, 24], [86, 58, 38], [128, 92, 58], [196, 160, 104], [140, 66, 34], [150, 146, 140],
     [206, 204, 198]],
    np.float32,
)
_HAIR_P = np.array([0.30, 0.22, 0.17, 0.10, 0.09, 0.05, 0.05, 0.02])
_IRIS = np.array(
    [[38, 24, 16], [76, 46, 24], [110, 82, 44], [78, 106, 66], [70, 108, 156], [104, 118, 130]], np.float32
)
_IRIS_P = np.array([0.30, 0.28, 0.12, 0.10, 0.13, 0.07])
_FRAMES = np.array(
    [[20, 20, 22], [70, 44, 30], [150, 150, 156], [120, 30, 36], [30, 40, 90], [190, 160, 90]], np.float32
)
_LASH = (28.0, 20.0, 18.0)
_MOUTH_DARK = (70.0, 22.0, 26.0)
_TEETH = (232.0, 226.0, 214.0)
# The same tables as tuples: identity colours are computed with plain floats.
_SKIN_T = [tuple(c) for c in _SKIN.tolist()]
_HAIR_T = [tuple(c) for c in _HAIR.tolist()]
_IRIS_T = [tuple(c) for c in _IRIS.tolist()]
_HAIR_P_T = _HAIR_P.tolist()
_IRIS_P_T = _IRIS_P.tolist()

_T9 = np.linspace(0.0, 1.0, 9)
_T11 = np.linspace(0.0, 1.0, 11)


def _bezier(n: int) -> np.ndarray:
    """Quadratic Bezier weights (n, 3): a curve through three control points is one matrix product."""
    t = np.linspace(0.0, 1.0, n)
    return np.stack([(1 - t) ** 2, 2 * (1 - t) * t, t**2], 1)


_BEZ6, _BEZ7, _BEZ11 = _bezier(6), _bezier(7), _bezier(11)
# Mouth curves are sampled at fixed u in [-1, 1]: dense for drawing, then the 20 iBUG lip points.
_U17 = np.linspace(-1.0, 1.0, 17)
_U_OUT = np.array([-1, -0.62, -0.28, 0, 0.28, 0.62, 1, 0.62, 0.3, 0, -0.3, -0.62])
_U_IN = np.array([-0.9, -0.4, 0, 0.4, 0.9, 0.4, 0, -0.4])
_U_ALL = np.concatenate([_U17, _U_OUT, _U_IN])
_PSI20 = np.linspace(0.0, math.pi, 20)
# Brow outline rows are 11 upper-edge points then 11 lower-edge points reversed; iBUG takes 5 of the centreline.
_BROW_TOP = np.array([[0, 3, 5, 7, 10], [10, 7, 5, 3, 0]])
_BROW_BOTTOM = 21 - _BROW_TOP
_BROW_ROW = np.array([[0], [1]])
# Per brow (left, right): x sign and mirror offset (x 2 cx) of the right brow's reflection.
_BROW_SIGN = np.array([[1.0], [-1.0]])
_BROW_MIRROR = np.array([[0.0], [2.0]])
# The lash line ends in a small outward flick at each outer corner.
_FLICK = (np.array([[[0, 0], [0, 0], [-1.6, -1.2]], [[0, 0], [0, 0], [1.6, -1.2]]]) * _ONE).astype(np.int32)
_PSI40 = np.linspace(0.0, math.pi, 40)
_COS40, _SIN40 = np.cos(_PSI40), np.sin(_PSI40)
_COS20, _SIN20 = np.cos(_PSI20), np.sin(_PSI20)
# Jaw superellipse terms over its 17 angles, and the hairline's fixed profile over 33 points.
_JAW_PHI = np.linspace(0.0, math.pi, 17)
_JAW_SIGN = np.sign(np.cos(_JAW_PHI))
_JAW_C, _JAW_S = np.abs(np.cos(_JAW_PHI)), np.abs(np.sin(_JAW_PHI))
_JAW_S2 = np.sin(_JAW_PHI) ** 2
_T6 = np.linspace(0.0, 1.0, 6)
_X7 = np.linspace(-1.0, 1.0, 7)
_X33 = np.linspace(-1.0, 1.0, 33)
_ABS33 = np.abs(_X33)
_RECESS33 = np.exp(-(((_ABS33 - 0.62) / 0.2) ** 2))
_EDGE33 = 1 - _ABS33**4


_EYE_LOWER = np.sin(math.pi * _T9) ** 1.2
# Derivative of the quadratic Bezier weights: brow tangents without a finite difference.
_DBEZ11 = np.stack([-2 * (1 - _T11), 2 - 4 * _T11, 2 * _T11], 1)
_BROW_T = np.concatenate([_T11, _T11[::-1]])
_BROW_LIFT = np.stack([np.zeros(22), 0.8 + 0.4 * _BROW_T], 1)[None]
_BROW_LIFT_FIXED = _BROW_LIFT * _ONE
_BROW_LM_LIFT = (_BROW_LIFT[0][_BROW_TOP] + _BROW_LIFT[0][_BROW_BOTTOM]).reshape(10, 2) * 0.5
# iBUG eye points 36-47 in the flattened (upper, lower) x (left, right) x 9 lid points.
_EYE_LM = np.array([0, 3, 5, 8, 23, 21, 17, 14, 12, 9, 30, 32])
_NOSE_SIDE = np.array([[[-0.85, -2.5], [-1.35, 1.0], [-0.75, 3.8]], [[0.85, -2.5], [1.35, 1.0], [0.75, 3.8]]])
_NOSE_CTRL_Y = np.array([[0.0, 1.0]])
_T4 = np.linspace(0.0, 1.0, 4)
# Mouth basis rows over u: u, u^2, upper and lower lip profiles (scaled per person), drop, open, tilt.
_LIP_SHAPE = np.maximum(1.0 - _U_ALL * _U_ALL, 0.0)
_LIP_BOW = np.exp(-(((np.abs(_U_ALL) - 0.3) / 0.18) ** 2)) - 0.6 * np.exp(-((_U_ALL / 0.12) ** 2))
_MOUTH_BASIS = np.stack([_U_ALL, _U_ALL**2, _LIP_SHAPE**0.6, _LIP_SHAPE**0.5, _LIP_SHAPE**0.9, _LIP_SHAPE, _U_ALL,
                         np.ones_like(_U_ALL)])
# iBUG mouth points 48-67: which lip curve (1 outer upper, 2 inner upper, 3 inner lower, 4 outer lower) at which u.
_MOUTH_ROW = np.array([1] * 7 + [4] * 5 + [2] * 5 + [3] * 3)
_MOUTH_COL = len(_U17) + np.arange(20)
# Lip polygons in the flattened (outer upper, inner upper, inner lower, outer lower) x 17 drawing points.
_UPPER_LIP = np.r_[0:17, 33:16:-1]
_LOWER_LIP = np.r_[34:51, 67:50:-1]
_SUPER = np.linspace(0, 2 * math.pi, 28, endpoint=False)
_SUPER_C, _SUPER_S = np.cos(_SUPER), np.sin(_SUPER)
# Texture banks are int8 at this many units per standard deviation (clipped at about 5 sigma).
_TEX = 24.0
# Input levels 0..255, for the per-image camera curve.
_LEVELS_1D = np.arange(256, dtype=np.float32)
_ALPHA128 = np.full((_CANVAS, _CANVAS), 128, np.uint8)
_ALPHA128_LOW = np.full((_LOW, _LOW), 128, np.uint8)  # alpha x1 in x128 multiplies


_LOCAL = threading.local()


def _rng(slot: int, *key: int) -> np.random.Generator:
    """A PCG64 generator whose state is a BLAKE2b hash of the integer key, reused per thread and slot.

    Setting the state of an existing generator costs a few microseconds, building one through a
    SeedSequence about ten times that, twice per image. The caller must be done with the slot's
    previous stream (identity and image streams use different slots).
    """
    gens = getattr(_LOCAL, "gens", None)
    if gens is None:
        gens = _LOCAL.gens = (np.random.Generator(np.random.PCG64(0)), np.random.Generator(np.random.PCG64(0)))
    h = hashlib.blake2b(",".join(map(str, key)).encode(), digest_size=32).digest()
    gen = gens[slot]
    gen.bit_generator.state = {"bit_generator": "PCG64", "has_uint32": 0, "uinteger": 0,
                               "state": {"state": int.from_bytes(h[:16], "little"),
                                         "inc": int.from_bytes(h[16:], "little") | 1}}
    return gen


def _check_index(name: str, value: int) -> None:
    """Raise ValueError naming `name` unless value is a non-negative integer (SeedSequence needs that)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _fix(points: np.ndarray) -> np.ndarray:
    """Canonical (template) pixel coordinates to fixed-point canvas coordinates for cv2 drawing."""
    return ((np.asarray(points) + _MARGIN) * _ONE + 0.5).astype(np.int32)


def _col(rgb: np.ndarray) -> tuple[float, float, float, float]:
    """Opaque RGBA drawing colour; no clipping: cv2 saturates scalar colours to the image depth."""
    r, g, b = rgb.tolist() if isinstance(rgb, np.ndarray) else rgb
    return (r, g, b, 255.0)


def _rgba(c: tuple, k: float = 1.0) -> tuple[float, float, float, float]:
    """Opaque RGBA drawing colour from an (r, g, b) tuple scaled by k (cv2 saturates, so no clipping)."""
    return (c[0] * k, c[1] * k, c[2] * k, 255.0)


def _mix(a: tuple, b: tuple, t: float) -> tuple[float, float, float]:
    """Linear blend of (r, g, b) tuples from a (t=0) to b (t=1); colours are plain floats, not arrays."""
    s = 1.0 - t
    return (a[0] * s + b[0] * t, a[1] * s + b[1] * t, a[2] * s + b[2] * t)


def _times(a: tuple, k0: float, k1: float, k2: float) -> tuple[float, float, float]:
    """Per-channel product of an (r, g, b) tuple."""
    return (a[0] * k0, a[1] * k1, a[2] * k2)


def _unit(v: np.ndarray) -> np.ndarray:
    """Normalise 2-vectors stored as rows: v[0] the x, v[1] the y components (any trailing shape)."""
    # Row layout keeps every operation on contiguous runs; hypot and (n, 2) broadcasts are several times slower.
    n = v[0] * v[0]
    n += v[1] * v[1]
    np.sqrt(n, out=n)
    np.maximum(n, 1e-6, out=n)
    return v / n


def _fill(canvas: np.ndarray, points: np.ndarray, rgba: tuple) -> None:
    """Anti-aliased filled polygon from canonical points."""
    cv2.fillPoly(canvas, [_fix(points)], rgba, _AA, _SHIFT)


def _stroke(canvas: np.ndarray, lines: list[np.ndarray] | np.ndarray, rgba: tuple, thickness: int = 1,
            line: int = _AA) -> None:
    """Draw already fixed-point polylines (a list, or an (n, k, 2) array) in one call per colour."""
    if len(lines):
        cv2.polylines(canvas, lines, False, rgba, thickness, line, _SHIFT)


def _ellipse(canvas: np.ndarray, centre: tuple, axes: tuple, angle: float, rgba: tuple, thick: int = -1,
             arc: tuple = (0, 360)) -> None:
    """Anti-aliased ellipse (filled when thick is -1) at canonical coordinates."""
    c = (int((centre[0] + _MARGIN) * _ONE + 0.5), int((centre[1] + _MARGIN) * _ONE + 0.5))
    a = (max(int(axes[0] * _ONE + 0.5), 1), max(int(axes[1] * _ONE + 0.5), 1))
    cv2.ellipse(canvas, c, a, angle, arc[0], arc[1], rgba, thick, _AA, _SHIFT)


@functools.lru_cache(maxsize=8)
def _banks(seed: int) -> tuple[tuple, tuple, np.ndarray]:
    """Per-seed noise banks; identities and images crop them instead of drawing fresh noise.

    The skin-texture banks are int8 (x _TEX per standard deviation), each stored in all 8 orientations
    (transposed and flipped copies), so a crop in any orientation is a window with contiguous rows that
    cv2 reads without a copy.
    """
    rng = np.random.default_rng([_TAG_BANK, seed])
    raw = rng.standard_normal((2, _BANK, _BANK), dtype=np.float32)
    banks = []
    for plane, sigma in ((raw[0], 0.6), (raw[1], 2.2)):
        blurred = cv2.GaussianBlur(plane, (0, 0), sigma)
        b8 = np.clip(np.rint(blurred * (_TEX / blurred.std())), -127, 127).astype(np.int8)
        # All 8 orientations as contiguous copies (a flipped view would make cv2 copy every crop).
        banks.append(tuple(np.ascontiguousarray((b8.T if f >> 2 else b8)[:: -1 if f & 1 else 1, :: -1 if f & 2 else 1])
                           for f in range(8)))
    # Sensor noise as uint8 around 128 (std 16) so adding it stays in cv2's fast 8-bit path.
    camera = np.clip(128.0 + 16.0 * rng.standard_normal((160, 160, 3)), 0, 255).astype(np.uint8)
    return banks[0], banks[1], camera


def _crop(banks: tuple, u: list[float], size: int) -> np.ndarray:
    """A size x size window of a bank in one of 8 orientations, chosen by three uniforms u."""
    f = int(u[2] * 8)
    bank = banks[f]
    n = bank.shape[0] - size
    y, x = int(u[0] * n), int(u[1] * n)
    # The window [y, y + size) of the unflipped bank is [n - y, n - y + size) of a flipped copy.
    if f & 1:
        y = n - y
    if f & 2:
        x = n - x
    return bank[y : y + size, x : x + size]


class _Draws:
    """Hands out pre-drawn uniforms and normals: one generator call instead of a hundred."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        """Draw n uniforms and n standard normals up front."""
        self.u = rng.random(n).tolist()
        self.g = rng.standard_normal(n).tolist()
        self.i = 0
        self.j = 0

    def uniform(self, low: float, high: float) -> float:
        """The next uniform, scaled to [low, high)."""
        self.i += 1
        return low + (high - low) * self.u[self.i - 1]

    def take(self, n: int) -> list[float]:
        """The next n uniforms in [0, 1)."""
        self.i += n
        return self.u[self.i - n : self.i]

    def normal(self, mean: float, std: float) -> float:
        """The next normal with this mean and standard deviation."""
        self.j += 1
        return mean + std * self.g[self.j - 1]

    def normals(self, n: int) -> list[float]:
        """The next n standard normals."""
        self.j += n
        return self.g[self.j - n : self.j]

    def choice(self, p: np.ndarray | list[float]) -> int:
        """Index drawn with probability proportional to p."""
        weights = list(p)
        x = self.uniform(0.0, 1.0) * sum(weights)
        for k, w in enumerate(weights):
            x -= w
            if x < 0:
                return k
        return len(weights) - 1


@dataclass(slots=True)
class _Identity:
    """One synthetic person: parameters (canonical template pixels) and pre-rendered static layers."""

    skin: tuple
    colours: dict
    cx: float
    eye_y: float
    eye_h: float
    iris_r: float
    crease: float
    lash: int
    lip_low: float
    mouth_y: float
    mouth_w: float
    mouth_basis: np.ndarray
    smile_lines: float
    eye_rest: np.ndarray
    eye_move: np.ndarray
    eye_centres: np.ndarray
    brow_fixed: np.ndarray
    brow_lm: np.ndarray
    brow_strands: np.ndarray
    brow_strand_lift: np.ndarray
    folds: list[np.ndarray]
    glasses: tuple | None
    static_lm: np.ndarray
    base: np.ndarray
    overlay: tuple | None
    normals: np.ndarray
    albedo: np.ndarray
    depth: np.ndarray
    eye_depth: float


def _jaw(cx: float, w: float, top_y: float, chin_y: float, power: float, taper: float, sym: float) -> np.ndarray:
    """The 17 iBUG jaw points: a tapered superellipse from ear to ear via the chin."""
    e = 2.0 / power
    out = np.empty((17, 2))
    out[:, 0] = cx - w * _JAW_SIGN * _JAW_C**e * (1.0 - taper * _JAW_S2) * (1.0 + 0.02 * sym * _JAW_SIGN)
    out[:, 1] = top_y + (chin_y - top_y) * _JAW_S**e
    return out


def _dense(points: np.ndarray) -> np.ndarray:
    """Insert smoothed midpoints so an outline through few landmarks stays round."""
    mid = (points[:-1] + points[1:]) / 2
    prev = np.concatenate([points[:1], points[:-2]])
    nxt = np.concatenate([points[2:], points[-1:]])
    mid += ((points[:-1] - prev) - (nxt - points[1:])) / 16
    out = np.empty((len(points) * 2 - 1, 2))
    out[0::2] = points
    out[1::2] = mid
    return out


def _mask(polys: list[np.ndarray], mask: np.ndarray | None = None, value: int = 255) -> np.ndarray:
    """Fill fixed-point canvas polygons into a half-resolution (LOW x LOW) mask: placing strands needs no more."""
    if mask is None:
        mask = np.zeros((_LOW, _LOW), np.uint8)
    cv2.fillPoly(mask, polys, value, cv2.LINE_8, _SHIFT + 1)
    return mask


def _sample_in(mask: np.ndarray, rng: np.random.Generator, n: int, box: tuple) -> np.ndarray:
    """Up to n canonical points (2, m), rows x and y, uniformly inside a half-resolution mask, within box."""
    lo = -_MARGIN + 0.5  # keep candidates on the canvas so no index needs clipping
    hi = _CANVAS - _MARGIN - 1.5
    x0, y0, x1, y1 = max(box[0], lo), max(box[1], lo), min(box[2], hi), min(box[3], hi)
    return _kern.sample_in(mask, rng.random((2, n * 4)), x0, y0, x1, y1, n, _MARGIN + 1.0)


def _strands(starts: np.ndarray, noise: np.ndarray, mode: int, k: int, p0: float = 0.0, p1: float = 0.0,
             p2: float = 0.0, p3: float = 1.0) -> np.ndarray:
    """Slightly curved 1-pixel hairs as flat indices (n, k) of RGBA canvas pixels, k samples per hair, from
    starts (2, n) and standard normals (3, n); see synthetic_kernels.strands for the flow modes.

    Rounded samples a pixel apart form an 8-connected line, as cv2's LINE_8 does, at a fraction of the
    cost of one cv2 polyline per hair (per-call binding overhead dominated).
    """
    return _kern.strands(starts, noise, mode, p0, p1, p2, p3, k, _MARGIN + 0.5, _CANVAS)


def _splat(canvas: np.ndarray, pixels: np.ndarray, rgba: tuple, first: int = 0, step: int = 1) -> None:
    """Set the RGBA canvas pixels of hairs first, first + step, ... (rows of flat indices) to an opaque
    colour (saturated like cv2's)."""
    # One uint32 per RGBA pixel: a scalar fancy-index assignment, several times faster than 4-byte rows.
    value = int.from_bytes(bytes(min(max(round(c), 0), 255) for c in rgba), sys.byteorder)
    _kern.splat(canvas.view(np.uint32).reshape(-1), pixels, first, step, np.uint32(value))


def _maps(bumps: np.ndarray, tints: np.ndarray, cx: float, cy: float, a: float) -> tuple:
    """Low-resolution maps from Gaussian bumps (17, 5: x0, y0, sx, sy, amplitude): rows 0-9 shading relief,
    10-14 colour spots (their RGB amplitudes in tints (5, 3)), 15-16 the pose-warp depth.

    Returns unit normals (LOW, LOW, 3) float32 of a head ellipsoid (horizontal semi-axis a, centre (cx, cy))
    plus the relief (interleaved, so one cv2.transform per image lights them), the multiplicative albedo
    x128 as uint8 (LOW, LOW, 4; alpha 128) and the depth (LOW, LOW) float32.
    """
    return _kern.shading_maps(bumps, tints, _LOW_XY, cx, cy, a)


def _hair(p: dict, d: _Draws, rng: np.random.Generator, style: int) -> tuple:
    """Front and back hair polygons and fixed-point strands; all fixed per identity."""
    cx, w, jaw_top, top = p["cx"], p["face_w"], p["jaw_top"], p["top"]
    # Styles: 0 short, 1 medium, 2 long, 3 buzz / receding, 4 fringe, 5 curly volume.
    vol = d.uniform(*((1, 4), (3, 8), (3, 8), (0, 1.5), (2, 6), (8, 15))[style])
    side_bottom = d.uniform(*((50, 62), (68, 88), (80, 104), (46, 56), (56, 84), (64, 90))[style])
    side_w = d.uniform(*((2, 4), (4, 8), (4, 10), (1.5, 3), (3, 7), (3, 7))[style])
    hairline = d.uniform(10, 22) + (d.uniform(4, 14) if style == 3 else 0.0)
    if style == 4:
        hairline = d.uniform(29, 37)
    temple_y = p["eye_y"] - d.uniform(12, 20)
    recess = d.uniform(0, 8) * (1.0 if style in (0, 3) else 0.3)
    power = d.uniform(2, 5)
    part = (d.choice([1.0, 1.0, 1.0]) - 1) * d.uniform(6, 16)
    jag = d.uniform(1.5, 3.5) if style == 4 else d.uniform(0, 1.0)
    jag_phase, jag_freq = d.uniform(0, 6.3), d.uniform(0.5, 0.9)
    bumps = d.uniform(1, 3) if style == 5 else d.uniform(0, 0.8)
    bump_freq, ph0, ph1 = round(d.uniform(9, 16)), d.uniform(0, 6.3), d.uniform(0, 6.3)

    # Front outline: right side (6), crown (38), left side (6), then the hairline from left to right.
    r = vol + bumps * (np.sin(bump_freq * _PSI40 + ph0) + 0.5 * np.sin(2.3 * bump_freq * _PSI40 + ph1))
    front = np.empty((87, 2))
    side_vol = vol * (0.3 if style in (0, 3) else 0.8)
    front[:6, 0] = cx + w + side_vol + (vol - side_vol) * _T6
    front[:6, 1] = side_bottom + (jaw_top - side_bottom) * _T6
    front[6:44, 0] = cx + (w + r[1:-1]) * _COS40[1:-1]
    front[6:44, 1] = jaw_top - (jaw_top - top + r[1:-1]) * _SIN40[1:-1]
    front[44:50, 0] = 2 * cx - front[5::-1, 0]
    front[44:50, 1] = front[5::-1, 1]
    wt = w - side_w - 1.0
    x = wt * _X33
    line = hairline + (temple_y - hairline) * _ABS33**power + recess * _RECESS33
    line += jag * np.sin(jag_freq * x + jag_phase) * _EDGE33
    if part:
        line += 3.0 * np.exp(-(((x - part) / 4.0) ** 2))
    front[50:52] = [[cx - w + side_w, side_bottom], [cx - w + side_w, temple_y + 3]]
    front[52:85, 0] = cx + x
    front[52:85, 1] = line
    front[85:87] = [[cx + w - side_w, temple_y + 3], [cx + w - side_w, side_bottom]]

    back = None
    if style in (1, 2, 5):
        length = d.uniform(*{1: (95, 118), 2: (125, 150), 5: (85, 110)}[style])
        spread = vol + d.uniform(2, 7)
        back = np.empty((42, 2))
        back[:2] = [[cx + w + spread - 2, length], [cx + w + spread, jaw_top + 20]]
        back[2:40, 0] = cx + (w + spread) * _COS40[1:-1]
        back[2:40, 1] = jaw_top - (jaw_top - top + vol) * _SIN40[1:-1]
        back[40:] = [[cx - w - spread, jaw_top + 20], [cx - w - spread + 2, length]]

    # Strands flow away from the parting; curly hair gets short random arcs instead.
    front_fixed = _fix(front)
    box = (cx - w - vol - 6, top - vol - 2, cx + w + vol + 6, jaw_top + 60)
    n = int({0: 110, 1: 150, 2: 150, 3: 40, 4: 150, 5: 170}[style] * d.uniform(0.7, 1.2))
    starts = _sample_in(_mask([front_fixed]), rng, n, box)
    noise = rng.standard_normal((3, starts.shape[1]))
    # At most 11 pixels long, plus the bend: 13 samples.
    if style == 5:
        hairs = _strands(starts, noise, _kern.CURLY, 13)
    else:
        gravity = d.uniform(0.4, 1.2) + (1.5 if style == 4 else 0.0)
        hairs = _strands(starts, noise, _kern.FRONT, 13, cx + part, top - vol, gravity, 0.45 if style == 3 else 1.0)
    back_hairs = None
    if back is not None:
        # Back hair hangs below the jaw line (the sampling box starts there) and outside the face.
        mask = _mask([_fix(p["jaw"])], _mask([_fix(back)]), 0)
        starts = _sample_in(mask, rng, 70, (cx - w - vol - 10, jaw_top, cx + w + vol + 10, 150))
        back_hairs = _strands(starts, rng.standard_normal((3, starts.shape[1])), _kern.BACK, 18, cx)
    density = d.uniform(0.45, 0.7) if style == 3 else 1.0
    return front_fixed, back, hairs, back_hairs, density


@functools.lru_cache(maxsize=_CACHE)
def _identity(seed: int, identity: int) -> _Identity:
    """Sample one person and pre-render everything about them that no expression changes."""
    rng = _rng(0, _TAG_IDENTITY, seed, identity)
    d = _Draws(rng, 224)  # about 130 uniforms and 30 normals are used
    male = d.uniform(0, 1)
    age = min(max(d.normal(0.4, 0.22), 0.0), 1.0)

    # Colours are (r, g, b) tuples of floats: a few scalar products each, far cheaper than tiny arrays.
    tone = d.uniform(0, 1) ** 0.8 * (len(_SKIN) - 1)
    k = min(int(tone), len(_SKIN) - 2)
    j0, j1, j2 = (math.exp(0.04 * v) for v in d.normals(3))
    skin = _times(_mix(_SKIN_T[k], _SKIN_T[k + 1], tone - k), j0, j1 * (1.0 - 0.04 * male), j2 * (1.0 - 0.03 * male))
    dark = 1.0 - tone / (len(_SKIN) - 1)
    hair_p = [w * f for w, f in zip(_HAIR_P_T, (1 + 3 * dark, 1 + dark, 1, 1, 1 - dark, 1 - dark, 1 + 4 * age**2,
                                                5 * age**3))]
    hair = _times(_HAIR_T[d.choice(hair_p)], *(math.exp(0.08 * v) for v in d.normals(3)))
    brow = _mix(_times(hair, 0.8, 0.8, 0.8), _times(skin, 0.35, 0.35, 0.35), 0.3 if sum(hair) > 360 else 0.0)
    iris_p = [w * f for w, f in zip(_IRIS_P_T, (1 + 3 * dark, 1 + dark, 1, 1 - dark, 1 - dark, 1 - dark))]
    iris = _times(_IRIS_T[d.choice(iris_p)], *(math.exp(0.1 * v) for v in d.normals(3)))
    lk = d.uniform(0.85, 1.05)
    lip = _times(skin, 0.86 * lk, 0.58 * lk, 0.6 * lk)

    # Geometry jitters around the ArcFace template, as real faces do after 5-point alignment.
    cx = 56.0 + d.normal(0, 0.5)
    eye_y = 51.6 + d.normal(0, 1.0)
    eye_dx = 17.6 + d.normal(0, 0.9)
    eye_w, eye_h = d.uniform(6.0, 8.0), d.uniform(2.4, 3.7)
    eye_tilt, eye_skew = d.normal(0, 0.9), d.uniform(0.7, 1.4)
    nose_y, nose_w = 71.7 + d.normal(0, 1.4), d.uniform(5.5, 8.5) + 0.8 * male
    nose_bridge, nose_depth = d.uniform(2.3, 4.0), d.uniform(5.0, 9.0)
    mouth_y, mouth_w = 92.3 + d.normal(0, 1.5), 14.6 + d.normal(0, 1.2)
    face_w = d.uniform(37.0, 42.5) + 1.5 * male
    jaw_top = eye_y + d.uniform(-2.0, 4.0)
    lip_up = d.uniform(2.0, 4.2) * (1.1 - 0.2 * male)
    lip_low = d.uniform(2.8, 5.2) * (1.1 - 0.2 * male)
    # The chin stays below a fully opened lower lip (the jaw itself does not move).
    chin_y = max(d.uniform(101.0, 109.5), mouth_y + lip_low + 11.5)
    sym = d.normal(0, 0.6)
    jaw = _jaw(cx, face_w, jaw_top, chin_y, d.uniform(1.7, 2.6) + 0.3 * male, d.uniform(0.04, 0.16), sym)
    top = d.uniform(-8.0, 2.0)
    p = {"cx": cx, "face_w": face_w, "jaw_top": jaw_top, "top": top, "eye_y": eye_y, "jaw": jaw}
    style_p = [0.45, 0.12, 0.04, 0.22, 0.07, 0.10] if male > 0.55 else [0.10, 0.28, 0.34, 0.02, 0.16, 0.10]
    front_fixed, back, hairs, back_hairs, density = _hair(p, d, rng, d.choice(style_p))

    canvas = np.zeros((_CANVAS, _CANVAS, 4), np.uint8)
    if back is not None:
        _fill(canvas, back, _rgba(hair, 0.82))
        _splat(canvas, back_hairs, _rgba(hair, 0.55))
        _splat(canvas, back_hairs, _rgba(hair, 1.2), 0, 3)
    # The neck only shows when the head is shrunk or shifted, but then it must be there. No clothes:
    # a per-person shirt colour in the corners would be an identity shortcut.
    neck_w = face_w * 0.62
    _fill(canvas, np.array([[cx - neck_w, jaw[4, 1] - 8], [cx - neck_w - 2, 134], [cx + neck_w + 2, 134],
                            [cx + neck_w, jaw[12, 1] - 8]]), _rgba(skin, 0.78))
    ear_w, ear_h = d.uniform(4.0, 6.0), d.uniform(9.5, 12.5)
    for s in (-1.0, 1.0):
        centre = (cx + s * (face_w - 1.0 - 0.3 * ear_w), eye_y + 11)
        _ellipse(canvas, centre, (ear_w, ear_h), s * 8, _rgba(skin, 0.93))
        helix = (-80, 80) if s > 0 else (100, 260)
        _ellipse(canvas, centre, (ear_w * 0.6, ear_h * 0.75), s * 8, _rgba(skin, 0.7), 1, helix)
    dense = _dense(jaw)
    outline = np.empty((len(dense) + 18, 2))
    outline[: len(dense)] = dense
    outline[len(dense) :, 0] = cx + face_w * _COS20[1:-1]
    outline[len(dense) :, 1] = jaw_top - (jaw_top - top - 2) * _SIN20[1:-1]
    _fill(canvas, outline, _rgba(skin))

    # Fine identity detail: moles, freckles, wrinkles. Fixed per person, so it is identity signal.
    for _ in range(int(rng.poisson(1.3))):
        mx, my_ = cx + d.uniform(-0.85, 0.85) * face_w, d.uniform(eye_y - 25, chin_y - 4)
        radius = d.uniform(0.6, 1.5)
        shade = d.uniform(0.3, 0.6)
        _ellipse(canvas, (mx, my_), (radius, radius), 0, _rgba(_times(skin, shade, shade * 0.85, shade * 0.8)))
    if d.uniform(0, 1) < 0.22:
        m = int(d.uniform(30, 90))
        g = rng.standard_normal((m, 4))
        dots = np.empty((m, 2, 2))
        dots[:, 0, 0] = cx + np.sign(g[:, 0]) * np.abs(14 + 8 * g[:, 1])
        dots[:, 0, 1] = nose_y - 4 + 5 * g[:, 2]
        dots[:, 1] = dots[:, 0] + 0.3 * g[:, 2:4]
        shade = d.uniform(0.7, 0.85)
        _stroke(canvas, _fix(dots), _rgba(_times(skin, shade, shade * 0.9, shade * 0.85)), 1)
    lines = []
    for i in range(int(d.uniform(0, 3.99) * (age > 0.3))):
        y0 = eye_y - 16 - 4.0 * i + d.normal(0, 0.8)
        ln = np.empty((7, 2))
        ln[:, 0] = cx + _X7 * d.uniform(10, 18)
        ln[:, 1] = y0 + d.uniform(0.5, 2.5) * _X7**2 + 0.4 * rng.standard_normal(7)
        lines.append(_fix(ln))
    if age > 0.45:
        for s in (-1.0, 1.0):
            ex = cx + s * (eye_dx + eye_w + 1.5)
            for _ in range(int(d.uniform(1, 3.99))):
                a = math.radians(d.uniform(-35, 35))
                lines.append(_fix([[ex, eye_y], [ex + s * 4 * math.cos(a), eye_y + 4 * math.sin(a)]]))
            ey, ex = eye_y + eye_h + d.uniform(2.0, 3.5), cx + s * (eye_dx + 0.5)
            lines.append(_fix([[ex - 4.0, ey], [ex, ey + 1], [ex + 4.0, ey]]))
    _stroke(canvas, lines, _rgba(skin, 0.85 - 0.25 * age))

    # Beard: stubble, goatee or full, with strands; a mustache sometimes on its own.
    bearded = male > 0.55 and d.uniform(0, 1) < 0.4 + 0.2 * age
    beard_kind = d.choice([0.45, 0.3, 0.25]) + 1 if bearded else 0
    mustache = beard_kind > 1 or (male > 0.55 and d.uniform(0, 1) < 0.12)
    if beard_kind or mustache:
        beard_col = _times(hair, 0.9, 0.9, 0.9)
        shapes = []
        thick = d.uniform(0.15, 0.3) if beard_kind == 1 else d.uniform(0.35, 0.65)
        if beard_kind:
            low_lip = mouth_y + lip_low + 1.5
            if beard_kind == 2:
                under_lip = [[cx + mouth_w * 0.75, mouth_y + 2.5], [cx + mouth_w * 0.5, low_lip],
                             [cx - mouth_w * 0.5, low_lip], [cx - mouth_w * 0.75, mouth_y + 2.5]]
                poly = np.concatenate([jaw[5:12], under_lip])
            else:
                cheek = nose_y + d.uniform(-2, 6)
                poly = np.concatenate([jaw[1:16], [[jaw[15, 0] - 4, cheek], [cx + mouth_w + 4, mouth_y - 3],
                                                   [cx + mouth_w * 0.45, low_lip], [cx - mouth_w * 0.45, low_lip],
                                                   [cx - mouth_w - 4, mouth_y - 3], [jaw[1, 0] + 4, cheek]]])
            fixed = _fix(poly)
            cv2.fillPoly(canvas, [fixed], _rgba(_mix(skin, beard_col, thick)), _AA, _SHIFT)
            shapes.append(fixed)
        if mustache:
            t_, b_ = nose_y + 4.5, mouth_y - lip_up + 0.5
            fixed = _fix([[cx - mouth_w - 2, b_ + 2], [cx - mouth_w * 0.6, t_ + 1.5], [cx, t_ + 0.5],
                          [cx + mouth_w * 0.6, t_ + 1.5], [cx + mouth_w + 2, b_ + 2], [cx + mouth_w * 0.5, b_],
                          [cx, b_ - 0.5], [cx - mouth_w * 0.5, b_]])
            cv2.fillPoly(canvas, [fixed], _rgba(_mix(skin, beard_col, max(thick, 0.5))), _AA, _SHIFT)
            shapes.append(fixed)
        box = (cx - face_w, nose_y - 4, cx + face_w, chin_y + 2)
        pts = _sample_in(_mask(shapes), rng, 260 if beard_kind == 1 else 200, box)
        g = rng.standard_normal((3, pts.shape[1]))
        _splat(canvas, _strands(pts, g, _kern.BEARD, 7, cx, float(beard_kind)), _rgba(hair, 0.6))

    # Nose: nostrils, wings, a faint bridge and a tip highlight (the relief below adds the shading).
    for s in (-1.0, 1.0):
        _ellipse(canvas, (cx + s * nose_w * 0.5, nose_y + 3.2), (nose_w * 0.3, 1.1), -s * 18, _rgba(skin, 0.3))
    sides = _fix(_BEZ7 @ (_NOSE_SIDE * [nose_w, 1.0]) + [cx, nose_y])
    bridge = _fix([[[cx - nose_bridge, eye_y + 2], [cx - nose_bridge * 1.1, nose_y - 5.0]],
                   [[cx + nose_bridge, eye_y + 2], [cx + nose_bridge * 1.1, nose_y - 5.0]]])
    _stroke(canvas, sides, _rgba(skin, 0.68))
    _stroke(canvas, bridge, _rgba(skin, 0.9))
    _ellipse(canvas, (cx, nose_y - 1.0), (2.2, 1.3), 0, _rgba(skin, 1.08))

    # Skin texture multiplies the colour (x128 fixed point): it is albedo, and premultiplied alpha stays valid.
    fine, coarse, _ = _banks(seed)
    amp = d.uniform(1.2, 2.6) * (0.8 + 0.6 * age)
    fine_w, coarse_w = amp * d.uniform(0.6, 1.0), amp * d.uniform(0.3, 0.8)
    texture = cv2.addWeighted(_crop(fine, d.take(3), _CANVAS), fine_w / _TEX, _crop(coarse, d.take(3), _CANVAS),
                              coarse_w / _TEX, 128.0, dtype=cv2.CV_8U)
    canvas = cv2.multiply(canvas, cv2.merge((texture, texture, texture, _ALPHA128)), scale=1.0 / 128.0)

    # Front hair goes straight onto the textured skin. Per-image features (brows, eyes, mouth) are drawn
    # later, so the pixels the hair changes in their zone are kept and laid back over them per image.
    hair_fill = _rgba(_mix(skin, hair, density))
    light = _rgba(_mix(_times(hair, 1.35, 1.35, 1.35), (255.0, 240.0, 210.0), 0.12))
    brow_gap, brow_len, brow_thick = d.uniform(7.0, 10.5), d.uniform(1.9, 2.4), d.uniform(1.8, 3.2) + 0.9 * male
    x0 = int(cx - eye_dx - eye_w * brow_len * 0.62 - 3 + _MARGIN)
    x1 = int(cx + eye_dx + eye_w * brow_len * 0.62 + 4 + _MARGIN)
    y0 = int(eye_y - brow_gap - 12 + _MARGIN)
    y1 = int(mouth_y + lip_low + 10 + _MARGIN)
    before = canvas[y0:y1, x0:x1].copy()
    cv2.fillPoly(canvas, [front_fixed], hair_fill, _AA, _SHIFT)
    _splat(canvas, hairs, _rgba(hair, 0.6), 0, 2)
    _splat(canvas, hairs, light, 1, 2)
    zone = canvas[y0:y1, x0:x1]
    changed = zone.view(np.uint32)[..., 0] != before.view(np.uint32)[..., 0]
    overlay = None
    bx, by, bw, bh = cv2.boundingRect(changed.view(np.uint8))
    if bw:
        keep = changed[by : by + bh, bx : bx + bw, None].copy()
        overlay = (y0 + by, y0 + by + bh, x0 + bx, x0 + bx + bw, zone[by : by + bh, bx : bx + bw].copy(), keep)

    # Eyes: lid geometry relative to the corners; openness is applied per image.
    outer = np.array([[cx - eye_dx - eye_w, eye_y + 0.2 - eye_tilt], [cx + eye_dx + eye_w, eye_y - 0.2 - eye_tilt]])
    inner = np.array([[cx - eye_dx + eye_w * 0.92, eye_y + 0.5], [cx + eye_dx - eye_w * 0.92, eye_y + 0.1]])
    eye_rest = np.empty((2, 2, 9, 2))
    eye_rest[:] = outer[:, None, :] + (inner - outer)[:, None, :] * _T9[:, None]
    eye_move = np.zeros((2, 2, 9, 2))
    eye_move[0, :, :, 1] = np.sin(math.pi * _T9**eye_skew) ** 0.8 * -eye_h
    eye_move[1, :, :, 1] = _EYE_LOWER * (0.75 * eye_h)
    eye_centres = np.array([[cx - eye_dx, eye_y + 0.2], [cx + eye_dx, eye_y - 0.2]])

    # Brows: outline and hair strands at rest; lift (y, per unit of raise) grows towards the inner end.
    # The right brow's outline mirrors the left one; its hairs are drawn independently.
    arch, slant = d.uniform(0.5, 3.5), d.normal(0, 1.2)
    ex, y_ = cx - eye_dx, eye_y - brow_gap
    ox, oy = ex - eye_w * brow_len * 0.62, y_ + 1.5 + 0.3 * slant
    ix, iy = ex + eye_w * 1.05, y_ + 0.5 - 0.3 * slant
    ctrl = np.array([[ox, oy], [ox + (ix - ox) * 0.38, oy + (iy - oy) * 0.38 - arch - 2.0], [ix, iy]])
    left = _BEZ11 @ ctrl
    tx, ty = _unit((_DBEZ11 @ ctrl).T)
    centre = np.empty((2, 11, 2))
    centre[0] = left
    centre[1, :, 0] = 2 * cx - left[:, 0]
    centre[1, :, 1] = left[:, 1]
    normal = np.empty((2, 11, 2))  # (ty, -tx) on the left brow, mirrored on the right
    normal[0, :, 0] = ty
    normal[1, :, 0] = -ty
    normal[:, :, 1] = -tx
    half = (brow_thick * (0.35 + 0.65 * _T11) / 2)[None, :, None]
    brow_poly = np.concatenate([centre + normal * half, (centre - normal * half)[:, ::-1]], axis=1)
    # Hairs per brow, placed along the left brow's centreline (the right brow's mirrored), drawn independently.
    brow_strands, strand_lift = _kern.brow_hairs(left, tx, ty, rng.random((int(d.uniform(18, 34)) * 2, 4)), cx,
                                                 brow_thick, float(_MARGIN), _ONE)

    # Nasolabial folds at rest; a smile darkens them per image.
    aw, cw, mid_y = nose_w + 2.0, mouth_w + 4.0, (nose_y + mouth_y + 5.0) / 2
    folds = _fix(_BEZ6 @ np.array([[[cx - aw, nose_y + 1.0], [cx - (aw + cw) / 2 - 3.0, mid_y], [cx - cw, mouth_y + 4.0]],
                                   [[cx + aw, nose_y + 1.0], [cx + (aw + cw) / 2 + 3.0, mid_y], [cx + cw, mouth_y + 4.0]]]))

    # Lip profiles over u: cupid's bow on the upper lip, fuller in the middle for both.
    mouth_basis = _MOUTH_BASIS.copy()
    mouth_basis[2] = lip_up * _MOUTH_BASIS[2] + d.uniform(0.0, 1.3) * _LIP_BOW
    mouth_basis[3] *= lip_low
    mouth_basis[6] *= 0.25 * sym

    glasses = None
    if d.uniform(0, 1) < 0.16:
        e = [2.0, 4.0, 2.6][int(d.uniform(0, 2.99))]
        gw, gh = d.uniform(4.0, 6.5), d.uniform(4.0, 6.5)
        rx, ry = eye_w + gw, eye_h + gh
        shape = np.empty((len(_SUPER), 2))
        shape[:, 0] = np.sign(_SUPER_C) * np.abs(_SUPER_C) ** (2 / e) * rx
        shape[:, 1] = np.sign(_SUPER_S) * np.abs(_SUPER_S) ** (2 / e) * ry
        left, right = np.array([cx - eye_dx, eye_y + 1]), np.array([cx + eye_dx, eye_y + 1])
        rims = [_fix(left + shape), _fix(right + shape)]
        bridge = [[left[0] + rx - 0.5, eye_y - 1], [cx, eye_y - 2.5], [right[0] - rx + 0.5, eye_y - 1]]
        arms = [_fix(np.array(bridge)),
                _fix(np.array([[left[0] - rx, eye_y - 1], [cx - face_w + 1, eye_y - 2]])),
                _fix(np.array([[right[0] + rx, eye_y - 1], [cx + face_w - 1, eye_y - 2]]))]
        glasses = (rims, arms, _FRAMES[int(d.uniform(0, len(_FRAMES) - 0.01))], 1 + int(d.uniform(0, 1) < 0.45),
                   [left + shape.mean(0), right + shape.mean(0)])

    static = np.zeros((NUM_LANDMARKS, 2))
    static[0:17] = jaw
    static[27:31, 0] = cx
    static[27:31, 1] = eye_y + 0.5 + (nose_y - eye_y - 0.5) * _T4
    static[31:36] = [[cx - nose_w, nose_y + 3.0], [cx - nose_w * 0.5, nose_y + 4.0], [cx, nose_y + 4.6],
                     [cx + nose_w * 0.5, nose_y + 4.0], [cx + nose_w, nose_y + 3.0]]

    # Low-resolution maps as sums of separable Gaussian bumps (x0, y0, sx, sy, amplitude): shading
    # relief (nose, brow ridges, eye sockets, cheekbones, lips, chin), colour (blush, eye shadow,
    # stubble shadow; RGB amplitudes in tints) and the pose-warp depth (a head dome and the nose;
    # smooth, so the warp never folds).
    blobs = np.array(
        [[cx, (eye_y + nose_y) / 2, nose_bridge * 0.8, (nose_y - eye_y) / 2.2, nose_depth * 0.7],
         [cx, nose_y - 1.5, nose_w * 0.55, 3.5, nose_depth * 0.6],
         [cx - eye_dx, eye_y - 8, 8, 3, d.uniform(1, 3)], [cx + eye_dx, eye_y - 8, 8, 3, d.uniform(1, 3)],
         [cx - eye_dx, eye_y, 7, 4.5, -d.uniform(2, 4)], [cx + eye_dx, eye_y, 7, 4.5, -d.uniform(2, 4)],
         [cx - 23, eye_y + 14, 7, 6, d.uniform(1, 3)], [cx + 23, eye_y + 14, 7, 6, d.uniform(1, 3)],
         [cx, mouth_y, mouth_w * 0.6, 3.5, d.uniform(1, 2.5)], [cx, chin_y - 8, 7, 5, d.uniform(1, 3)],
         [cx - 22, nose_y + 2, 8, 6, 0], [cx + 22, nose_y + 2, 8, 6, 0], [cx - eye_dx, eye_y - 2, 7, 3.5, 0],
         [cx + eye_dx, eye_y - 2, 7, 3.5, 0], [cx, mouth_y + 6, 18, 9, 0],
         [cx, 62.0, 30.0, 42.0, 30.0], [cx, nose_y - 4.0, 5.0, 8.0, nose_depth + 3.0]],
        np.float32,
    )
    blush, shadow, stubble = d.uniform(0, 0.1), d.uniform(0.04, 0.12), 0.06 * male * d.uniform(0, 1)
    tints = np.array([[0, -blush, -blush], [0, -blush, -blush], [-shadow, -shadow, -shadow * 0.7],
                      [-shadow, -shadow, -shadow * 0.7], [-stubble, -stubble, -stubble * 0.5]], np.float32)
    normals, albedo, depth = _maps(blobs, tints, cx, eye_y + 10.0, face_w + 1.0)
    # Depth at the eye midpoint, in closed form from the two depth bumps.
    eye_depth = 30.0 * math.exp(-0.5 * (((eye_y - 62.0) / 42.0) ** 2)) + (nose_depth + 3.0) * math.exp(
        -0.5 * (((eye_y - nose_y + 4.0) / 8.0) ** 2))

    colours = {
        "mouth": _rgba(_MOUTH_DARK), "teeth": _rgba(_TEETH), "lip_up": _rgba(lip, 0.88), "lip_low": _rgba(lip, 1.02),
        "lip_line": _rgba(lip, 0.45), "lip_shine": _rgba(_mix(lip, (255.0, 235.0, 230.0), 0.35)),
        "brow_fill": _rgba(_mix(skin, brow, d.uniform(0.35, 0.75))), "brow_hair": _rgba(brow, 0.9),
        "lid": _rgba(skin, 0.72), "crease": _rgba(skin, 0.75), "lash": _rgba(_LASH),
        "sclera": _rgba(_mix((226.0, 224.0, 218.0), skin, 0.15)),
        "iris": _rgba(iris), "limbus": _rgba(iris, 0.5), "pupil": (8.0, 6.0, 6.0, 255.0),
        "glint": (250.0, 250.0, 250.0, 255.0),
    }
    return _Identity(
        skin=skin, colours=colours, cx=cx, eye_y=eye_y, eye_h=eye_h, iris_r=d.uniform(2.9, 3.6),
        crease=d.uniform(1.8, 3.5) if d.uniform(0, 1) < 0.7 else 0.0,
        lash=2 if d.uniform(0, 1) < 0.35 * (1.2 - male) + 0.1 else 1, lip_low=lip_low, mouth_y=mouth_y,
        mouth_w=mouth_w, mouth_basis=mouth_basis, smile_lines=0.08 + 0.25 * age + d.uniform(0, 0.1),
        eye_rest=eye_rest, eye_move=eye_move, eye_centres=eye_centres, brow_fixed=(brow_poly + _MARGIN) * _ONE + 0.5,
        brow_lm=(brow_poly[_BROW_ROW, _BROW_TOP] + brow_poly[_BROW_ROW, _BROW_BOTTOM]).reshape(10, 2) * 0.5,
        brow_strands=brow_strands, brow_strand_lift=strand_lift,
        folds=folds, glasses=glasses, static_lm=static, base=canvas, overlay=overlay,
        # Cached per process: the albedo is stored small, x128 as uint8.
        normals=normals, albedo=albedo, depth=depth,
        eye_depth=eye_depth,
    )


@dataclass(slots=True)
class _Nuisance:
    """Per-image draws: pose, expression, lighting and degradations."""

    yaw: float
    pitch: float
    roll: float
    scale: float
    shift: np.ndarray
    smile: float
    open: float
    brow: float
    blink: float
    gaze: np.ndarray
    lights: np.ndarray
    ambient: float
    specular: float
    glasses: bool
    glare: float
    gains: list[float]
    contrast: float
    gamma: float
    blur: float
    noise: float
    jpeg: int
    occlude: bool


def _nuisance(rng: np.random.Generator) -> _Nuisance:
    """Draw one image's nuisance; the fixed draw layout keeps each field's stream stable."""
    u = rng.random(20).tolist()
    g = rng.standard_normal(14).tolist()
    az = u[0] * 2 * math.pi
    lz = 0.5 + 0.45 * u[1]
    lr = math.sqrt(1 - lz * lz)
    lx, ly = lr * math.cos(az), lr * math.sin(az) - 0.15  # light from slightly above, on average
    norm = math.sqrt(lx * lx + ly * ly + lz * lz)
    lx, ly, lz = lx / norm, ly / norm, lz / norm
    hnorm = math.sqrt(lx * lx + ly * ly + (lz + 1.0) ** 2)
    # Columns: light direction (diffuse) and the half vector to the viewer (specular).
    lights = np.array([[lx, lx / hnorm], [ly, ly / hnorm], [lz, (lz + 1.0) / hnorm]])
    return _Nuisance(
        yaw=min(max(0.16 * g[0], -0.38), 0.38),
        pitch=min(max(0.08 * g[1], -0.2), 0.2),
        roll=min(max(4.5 * g[2], -12.0), 12.0),
        scale=min(max(math.exp(0.035 * g[3]), 0.92), 1.07),
        shift=np.array([min(max(1.5 * g[4], -3.5), 3.5), min(max(1.5 * g[5], -3.5), 3.5)]),
        smile=min(max(0.15 + 0.4 * g[6], -0.4), 1.0),
        open=0.15 + 0.85 * u[3] if u[2] < 0.3 else 0.0,
        brow=min(max(0.5 * g[7], -1.0), 1.0),
        blink=0.25 * u[5] if u[4] < 0.06 else 1.0,
        gaze=np.array([min(max(0.6 * g[8], -1.3), 1.3), min(max(0.3 * g[9], -0.8), 0.8)]),
        lights=lights,
        ambient=0.35 + 0.35 * u[6],
        specular=0.3 * u[7],
        glasses=u[8] < 0.88,
        glare=u[9],
        gains=[math.exp(0.045 * g[10 + c] + 0.1 * g[13]) for c in range(3)],
        contrast=0.8 + 0.32 * u[10],
        gamma=math.exp(0.24 * (u[11] - 0.5)),
        blur=0.3 + 0.6 * u[13] if u[12] < 0.4 else 0.0,
        noise=5.0 * u[14],
        jpeg=int(40 + 56 * u[16]) if u[15] < 0.4 else 0,
        occlude=u[17] < 0.15,
    )


def _features(p: _Identity, nz: _Nuisance, canvas: np.ndarray) -> np.ndarray:
    """Draw the expression-dependent parts (mouth, brows, eyes) and return all 68 canonical landmarks."""
    lm = p.static_lm.copy()
    c = p.colours

    # Mouth: rows of p.mouth_basis are u, u^2, the lip profiles, tilt and ones; one small matrix product
    # gives x and the four lip curves' y: a smile lifts and widens the corners, opening drops the lower lip.
    s, o = nz.smile, nz.open
    y0 = p.mouth_y + 0.6 * s
    k = -2.6 * s
    curves = np.array([[p.mouth_w * (1.0 + 0.07 * s), 0, 0, 0, 0, 0, 0, p.cx],
                       [0, k, -1, 0, 0, 0, 1, y0],
                       [0, k, 0, 0, 0, -0.8 * o, 1, y0],
                       [0, k, 0, 0, 5.0 * o, 0, 1, y0],
                       [0, k, 0, 1, 5.0 * o, 0, 1, y0]]) @ p.mouth_basis
    n = len(_U17)
    lm[48:68, 0] = curves[0, n:]
    lm[48:68, 1] = curves[_MOUTH_ROW, _MOUTH_COL]
    fixed = (curves[:, :n] + _MARGIN) * _ONE + 0.5
    lips = np.empty((4, n, 2), np.int32)
    lips[..., 0] = fixed[0]
    lips[..., 1] = fixed[1:]
    uo, ui, li, lo = lips
    if o > 0.05:
        cv2.fillPoly(canvas, [np.concatenate([ui, li[::-1]])], c["mouth"], _AA, _SHIFT)
        teeth = ui.copy()
        teeth[:, 1] += (min(2.6, 6.0 * o) * _ONE * p.mouth_basis[5, :n]).astype(np.int32)
        cv2.fillPoly(canvas, [np.concatenate([ui, teeth[::-1]])], c["teeth"], _AA, _SHIFT)
    cv2.fillPoly(canvas, [lips.reshape(-1, 2)[_UPPER_LIP]], c["lip_up"], _AA, _SHIFT)
    cv2.fillPoly(canvas, [lips.reshape(-1, 2)[_LOWER_LIP]], c["lip_low"], _AA, _SHIFT)
    cv2.polylines(canvas, [ui], False, c["lip_line"], 1, _AA, _SHIFT)
    shine = lo[6:11] - [0, int(p.lip_low * 0.45 * _ONE)]
    cv2.polylines(canvas, [shine.astype(np.int32)], False, c["lip_shine"], 1, _AA, _SHIFT)
    f = 1.0 - 0.5 * (p.smile_lines + 0.25 * max(s, 0.0))
    r, g, b = p.skin
    cv2.polylines(canvas, p.folds, False, (r * f, g * f, b * f, 255.0), 1, _AA, _SHIFT)

    # Brows: raised or lowered as a whole, the inner ends a little more (expression).
    lift = -1.8 * nz.brow
    cv2.fillPoly(canvas, (p.brow_fixed + lift * _BROW_LIFT_FIXED).astype(np.int32), c["brow_fill"], _AA, _SHIFT)
    lm[17:27] = p.brow_lm + lift * _BROW_LM_LIFT
    hairs = p.brow_strands + (lift * p.brow_strand_lift).astype(np.int32)
    cv2.polylines(canvas, hairs, False, c["brow_hair"], 1, _AA, _SHIFT)

    # Eyes: sclera and iris composited inside the lid outline, then lower lid, crease and lash line.
    # p.eye_rest and p.eye_move are (upper, lower) x (left, right) x 9 lid points at rest and per unit open.
    openness = nz.blink * (1.0 - 0.25 * max(s, 0.0)) * (1.0 + 0.15 * max(nz.brow, 0.0))
    lower_open = max(openness, 0.15) * (0.7 + 0.3 * openness)
    lids = p.eye_rest + np.array([[[[openness]]], [[[lower_open]]]]) * p.eye_move
    lm[36:48] = lids.reshape(-1, 2)[_EYE_LM]
    fu, fl = _fix(lids)
    flicks = fu[:, [1, 0, 0]] + _FLICK
    if openness >= 0.3:
        _eyes(canvas, p, nz, fu, fl)
        cv2.polylines(canvas, fl, False, c["lid"], 1, _AA, _SHIFT)
        if p.crease > 0:
            cv2.polylines(canvas, fu[:, 1:-1] - [0, int(p.crease * _ONE)], False, c["crease"], 1, _AA, _SHIFT)
    cv2.polylines(canvas, fu, False, c["lash"], p.lash, _AA, _SHIFT)
    cv2.polylines(canvas, flicks, False, c["lash"], 1, _AA, _SHIFT)
    return lm


def _eyes(canvas: np.ndarray, p: _Identity, nz: _Nuisance, upper: np.ndarray, lower: np.ndarray) -> None:
    """Sclerae, irises, pupils and catch-lights, drawn in one patch over both eyes, masked by the lid outlines."""
    polys = np.concatenate([upper, lower[:, ::-1]], axis=1)
    flat = polys.reshape(-1, 2)
    x0, y0 = (flat.min(0) >> _SHIFT).tolist()
    x1, y1 = ((flat.max(0) >> _SHIFT) + 2).tolist()
    roi = canvas[y0:y1, x0:x1]
    # A hard mask is enough: the anti-aliased lash and lid lines drawn next cover its edge.
    mask = np.zeros(roi.shape[:2], np.uint8)
    cv2.fillPoly(mask, polys - [x0 << _SHIFT, y0 << _SHIFT], 255, cv2.LINE_8, _SHIFT)
    c = p.colours
    inside = np.empty_like(roi)
    inside[:] = c["sclera"]
    r = int(p.iris_r * _ONE + 0.5)
    r_pupil = int(p.iris_r * 0.45 * _ONE + 0.5)
    glint_dx = (0.9 - 0.8 * float(nz.lights[0, 0])) * _ONE
    for cx, cy in ((p.eye_centres + nz.gaze + _MARGIN - [x0, y0]) * _ONE).tolist():
        ci = (int(cx + 0.5), int(cy + 0.5))
        cv2.circle(inside, ci, r, c["iris"], -1, _AA, _SHIFT)
        cv2.circle(inside, ci, r, c["limbus"], 1, _AA, _SHIFT)
        cv2.circle(inside, ci, r_pupil, c["pupil"], -1, _AA, _SHIFT)
        cv2.circle(inside, (int(cx + glint_dx), int(cy - 0.9 * _ONE)), int(0.55 * _ONE), c["glint"], -1, _AA, _SHIFT)
    cv2.copyTo(inside, mask, roi)  # in place: roi is a view of the canvas with contiguous rows


def _draw_glasses(canvas: np.ndarray, p: _Identity, nz: _Nuisance) -> None:
    """Frames (fixed per person) and, in some images, a glare streak on one lens."""
    rims, arms, colour, thick, centres = p.glasses
    cv2.polylines(canvas, rims, True, _col(colour), thick, _AA, _SHIFT)
    _stroke(canvas, arms, _col(colour), thick)
    if nz.glare > 0.6:
        c = centres[int(nz.glare * 10) % 2]
        _stroke(canvas, [_fix(np.array([c + [-3.0, 2.0], c + [1.0, -3.0]]))], (245.0, 245.0, 250.0, 255.0), 2)


def _pose(p: _Identity, nz: _Nuisance) -> tuple[np.ndarray, np.ndarray]:
    """Affine from posed canonical to output pixels, and the (yaw, pitch) depth-displacement gains."""
    gains = np.array([math.sin(nz.yaw), math.sin(nz.pitch)])
    # Shift so the eye midpoint stays put, as 5-point alignment of a real turned face would do.
    anchor = p.eye_depth * gains
    a = math.radians(nz.roll)
    rot = nz.scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    centre = np.array([56.0, 62.0])
    t = centre + nz.shift - rot @ (centre + anchor)
    return np.concatenate([rot, t[:, None]], axis=1), gains


def _project(p: _Identity, lm: np.ndarray, affine: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Output-pixel landmarks: solve posed - gains * depth(posed) = lm (Newton), then apply the affine.

    The depth is interpolated as the pixel warp's cv2 calls do (1/32-pixel bilinear weights), so
    landmarks follow the pixels.
    """
    g0, g1 = gains.tolist()
    return _kern.project(p.depth, np.asarray(lm, np.float64), g0, g1, np.asarray(affine, np.float64), _MARGIN - 0.5)


def _warp(p: _Identity, canvas: np.ndarray, affine: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Resample the canvas into the output: inverse affine, then the depth displacement for yaw/pitch."""
    (a, b, c), (d, e, f) = cv2.invertAffineTransform(affine).tolist()
    # The depth displacement is smooth: sample it on every other output pixel and upsample
    # (within ~0.05 px of sampling it everywhere, which is what the landmarks use). Output pixel
    # (2i + 0.5, 2j + 0.5) in half-resolution depth coordinates, written out in plain floats.
    off = 0.5 * (_MARGIN - 0.5)
    to_low = np.array([[a, b, 0.25 * (a + b) + 0.5 * c + off], [d, e, 0.25 * (d + e) + 0.5 * f + off]])
    depth = cv2.warpAffine(p.depth, to_low, (FACE_SIZE // 2, FACE_SIZE // 2),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    depth = cv2.resize(depth, (FACE_SIZE, FACE_SIZE))
    # Separate x and y maps: each is two single-channel fused multiply-adds (fast paths in cv2).
    g0, g1 = gains.tolist()
    map_x = cv2.scaleAdd(depth, -g0, cv2.addWeighted(_GRID_X, a, _GRID_Y, b, c + _MARGIN))
    map_y = cv2.scaleAdd(depth, -g1, cv2.addWeighted(_GRID_X, d, _GRID_Y, e, f + _MARGIN))
    return cv2.remap(canvas, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _background(rng: np.random.Generator, gains: list[float]) -> np.ndarray:
    """Per-image backdrop: a muted four-corner gradient with a few plain shapes (not anti-aliased: cheaper),
    under the camera's per-channel colour gains."""
    u = rng.random(28).tolist()
    grey, spread = 40 + 180 * u[0], 40 + 140 * u[1]
    low = grey - spread / 2
    corners = [min(max((low + v * spread) * gains[i % 3], 0.0), 255.0) for i, v in enumerate(u[2:14])]
    bg = cv2.resize(np.array(corners, np.uint8).reshape(2, 2, 3), (FACE_SIZE, FACE_SIZE))
    g0, g1, g2 = gains
    for k in range(int(u[14] * 5)):
        colour = ((grey + (u[15 + k] - 0.5) * 220) * g0, (grey + (u[16 + k] - 0.5) * 220) * g1,
                  (grey + (u[17 + k] - 0.5) * 220) * g2)
        x, y, w, h = int(u[20 + k] * FACE_SIZE), int(u[21 + k] * FACE_SIZE), int(u[22 + k] * FACE_SIZE), \
            int(u[23 + k] * FACE_SIZE)
        kind = int(u[24 + k % 4] * 3)
        if kind == 0:
            cv2.rectangle(bg, (x, y), (x + w // 2 + 6, y + h // 2 + 6), colour, -1, cv2.LINE_8)
        elif kind == 1:
            cv2.circle(bg, (x, y), w // 4 + 4, colour, -1, cv2.LINE_8)
        else:
            cv2.line(bg, (x, y), (w, h), colour, 1 + h % 3, cv2.LINE_8)
    return bg


def _occlude(img: np.ndarray, lm: np.ndarray, rng: np.random.Generator) -> None:
    """Something in front of the face: a patch, a hand-sized blob at the side, or a mask over the mouth."""
    u = rng.random(8)
    colour = tuple((rng.random(3) * 255).tolist())
    kind = int(u[0] * 3)
    if kind == 0:
        cx, cy = lm[int(u[1] * NUM_LANDMARKS)]
        w, h = 10 + 20 * u[2], 10 + 20 * u[3]
        cv2.rectangle(img, (int(cx - w / 2), int(cy - h / 2)), (int(cx + w / 2), int(cy + h / 2)), colour, -1, _AA)
    elif kind == 1:
        c = lm[3 if u[1] < 0.5 else 13]
        axes = (int(10 + 8 * u[2]), int(16 + 12 * u[3]))
        cv2.ellipse(img, (int(c[0]), int(c[1])), axes, 60 * u[4] - 30, 0, 360, colour, -1, _AA)
    else:
        pts = lm[[2, 14, 12, 8, 4]].copy()
        pts[:2, 1] = lm[29, 1]
        cv2.fillPoly(img, [(pts * _ONE).astype(np.int32)], colour, _AA, _SHIFT)


def _render(seed: int, identity: int, image: int) -> tuple[np.ndarray, np.ndarray]:
    """The RGB image and output-pixel landmarks of one (seed, identity, image)."""
    p = _identity(seed, identity)
    rng = _rng(1, _TAG_IMAGE, seed, identity, image)
    nz = _nuisance(rng)
    canvas = p.base.copy()
    lm = _features(p, nz, canvas)
    if p.overlay is not None:
        y0, y1, x0, x1, crop, keep = p.overlay
        np.copyto(canvas[y0:y1, x0:x1], crop, where=keep)
    if p.glasses is not None and nz.glasses:
        _draw_glasses(canvas, p, nz)

    # Lambertian light with a per-image direction, on the half-resolution grid, scaled so that a
    # surface facing the camera keeps its colour (x128: the canvas multiply below is 8-bit).
    (lx, hx), (ly, hy), (lz, hz) = nz.lights.tolist()
    front = 128.0 / (nz.ambient + (1.0 - nz.ambient) * lz)
    k = (1.0 - nz.ambient) * front
    diffuse = cv2.max(cv2.transform(p.normals, np.array([[lx * k, ly * k, lz * k]])), 0.0)
    spec = cv2.max(cv2.transform(p.normals, np.array([[hx, hy, hz]])), 0.01)  # 0.01**12 is still a normal float
    # The camera's colour cast is a per-channel gain: applied here (and to the backdrop's colours) it leaves
    # a single-channel camera curve below, about half the cost of a per-channel one.
    highlight = cv2.pow(spec, 12)  # Blinn-Phong exponent 12
    shades = [cv2.addWeighted(diffuse, g, highlight, nz.specular * front * g, nz.ambient * front * g, dtype=cv2.CV_8U)
              for g in nz.gains]
    low = cv2.multiply(cv2.merge((*shades, _ALPHA128_LOW)), p.albedo, scale=1.0 / 128.0)
    canvas = cv2.multiply(canvas, cv2.resize(low, (_CANVAS, _CANVAS)), scale=1.0 / 128.0)

    affine, gains = _pose(p, nz)
    points = _project(p, lm, affine, gains)
    # Keep every landmark inside the frame by nudging the translation (pixels follow the same affine).
    under = np.maximum(0.5 - points.min(0), 0.0)
    over = np.maximum(points.max(0) - (FACE_SIZE - 1.5), 0.0)
    if under.any() or over.any():
        affine[:, 2] += under - over
        points += under - over
    fg = _warp(p, canvas, affine, gains)

    bg = _background(rng, nz.gains)
    keep = cv2.cvtColor(cv2.bitwise_not(cv2.extractChannel(fg, 3)), cv2.COLOR_GRAY2RGB)
    img = cv2.add(cv2.cvtColor(fg, cv2.COLOR_RGBA2RGB), cv2.multiply(bg, keep, scale=1.0 / 255.0))

    # Camera: contrast and gamma in one table (the colour cast is already in); then occluder, blur, sensor
    # noise, JPEG. sumElems is several times cheaper than cv2.mean here.
    mean = sum(cv2.sumElems(img)[:3]) * (1.0 / (3 * FACE_SIZE * FACE_SIZE))
    lut = _LEVELS_1D * (nz.contrast / 255.0)
    lut += mean * (1.0 - nz.contrast) / 255.0
    np.maximum(lut, 0.0, out=lut)
    np.minimum(lut, 1.0, out=lut)
    np.power(lut, nz.gamma, out=lut)
    lut *= 255.0
    img = cv2.LUT(img.reshape(FACE_SIZE, FACE_SIZE * 3), lut.astype(np.uint8)).reshape(FACE_SIZE, FACE_SIZE, 3)
    if nz.occlude:
        _occlude(img, points, rng)
    if nz.blur:
        img = cv2.GaussianBlur(img, (5, 5), nz.blur)
    if nz.noise > 0.5:
        gain = nz.noise / 16.0
        y, x = rng.integers(0, 160 - FACE_SIZE, 2).tolist()
        img = cv2.addWeighted(img, 1.0, _banks(seed)[2][y : y + FACE_SIZE, x : x + FACE_SIZE], gain, -128.0 * gain)
    if nz.jpeg:
        _, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, nz.jpeg])
        img = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return img, points.astype(np.float32)


def render_face(seed: int, identity: int, image: int) -> FaceSample:
    """Render image `image` of generator identity `identity` under `seed`; its label is `identity`."""
    _check_index("seed", seed)
    _check_index("identity", identity)
    _check_index("image", image)
    img, landmarks = _render(int(seed), int(identity), int(image))
    return FaceSample(image=img, label=int(identity), landmarks=landmarks, landmark_source="synthetic")


class SyntheticFaces:
    """A virtual data set of identities x images_per_identity synthetic faces, rendered on demand."""

    def __init__(
        self, identities: int = 200, images_per_identity: int = 12, seed: int = 0, first_identity: int = 0
    ) -> None:
        """Describe the data set; nothing is rendered until a sample is requested."""
        for name, value, least in (("identities", identities, 1), ("images_per_identity", images_per_identity, 1),
                                   ("seed", seed, 0), ("first_identity", first_identity, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        self.identities = int(identities)
        self.images_per_identity = int(images_per_identity)
        self.seed = int(seed)
        self.first_identity = int(first_identity)
        first = self.first_identity
        self.identity_names: list[str] = [f"synthetic_{first + i:05d}" for i in range(self.identities)]
        self.labels: np.ndarray = np.repeat(np.arange(self.identities, dtype=np.int64), self.images_per_identity)

    def __len__(self) -> int:
        """Number of images."""
        return self.identities * self.images_per_identity

    def __getitem__(self, index: int) -> FaceSample:
        """Render sample `index`: local identity index // images_per_identity, image index % that number."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        label, image = divmod(int(index) % n, self.images_per_identity)
        img, landmarks = _render(self.seed, self.first_identity + label, image)
        return FaceSample(image=img, label=label, landmarks=landmarks, landmark_source="synthetic")

    def batch(self, indices: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render images (n,112,112,3) uint8, labels (n,) int64 and landmarks (n,68,2) float32."""
        idx = np.asarray(indices).reshape(-1)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"indices must be integers, got {idx.dtype}")
        return stack_samples([self[i] for i in idx.tolist()])
