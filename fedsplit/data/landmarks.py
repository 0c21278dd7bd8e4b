"""68 iBUG landmarks for real faces: a canonical mean face, fitted to OpenCV Haar cascade hits."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from fedsplit.data.types import FACE_SIZE, NUM_LANDMARKS

# ArcFace's 5-point reference for 112x112 crops (eye centres, nose tip, mouth corners); the
# canonical face below is hung on these so a template ROI sits where an aligned face is.
_ARCFACE_LEFT_EYE = (38.2946, 51.6963)
_ARCFACE_RIGHT_EYE = (73.5318, 51.5014)
_ARCFACE_NOSE_TIP = (56.0252, 71.7366)
_ARCFACE_MOUTH_LEFT = (41.5493, 92.3655)
_ARCFACE_MOUTH_RIGHT = (70.7299, 92.2041)
_MID_X = 56.0


def _arc(cx: float, cy: float, rx: float, ry: float, degrees: list[float] | np.ndarray) -> np.ndarray:
    """Points on an ellipse at the given angles, counter-clockwise on screen (y grows downwards)."""
    a = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    return np.stack([cx + rx * np.cos(a), cy - ry * np.sin(a)], axis=1)


def _canonical_landmarks() -> np.ndarray:
    """Build the iBUG-68 mean face from a few ellipse arcs anchored on the ArcFace 5 points."""
    # 0-16 jaw: lower half-ellipse from the left temple (eye level) through the chin at y=110.
    jaw = _arc(_MID_X, 46.0, 42.0, 64.0, np.linspace(180.0, 360.0, 17))
    # 17-21 / 22-26 brows: shallow arcs, outer end to inner end, y ~38 (peak) to ~42 (ends).
    brow_angles = np.linspace(160.0, 20.0, 5)
    left_brow = _arc(36.0, 44.0, 14.0, 6.0, brow_angles)
    right_brow = _arc(2 * _MID_X - 36.0, 44.0, 14.0, 6.0, brow_angles)
    # 27-30 nose bridge straight down to the tip, 31-35 nostril line just under it.
    bridge = np.stack([np.full(4, _ARCFACE_NOSE_TIP[0]), np.linspace(50.0, _ARCFACE_NOSE_TIP[1], 4)], 1)
    nostrils = _arc(_ARCFACE_NOSE_TIP[0], 74.0, 9.0, 3.0, np.linspace(200.0, 340.0, 5))
    # 36-41 / 42-47 eyes: left corner, two upper-lid points, right corner, two lower-lid points.
    eye_angles = [180.0, 120.0, 60.0, 0.0, 300.0, 240.0]
    left_eye = _arc(*_ARCFACE_LEFT_EYE, 7.5, 3.2, eye_angles)
    right_eye = _arc(*_ARCFACE_RIGHT_EYE, 7.5, 3.2, eye_angles)
    # 48-59 outer lips: left corner, over the upper lip to the right corner, back under the lower
    # lip; 60-67 inner lips the same way. The lower lip is a little fuller than the upper one.
    mouth_cx = (_ARCFACE_MOUTH_LEFT[0] + _ARCFACE_MOUTH_RIGHT[0]) / 2
    mouth_cy = (_ARCFACE_MOUTH_LEFT[1] + _ARCFACE_MOUTH_RIGHT[1]) / 2
    mouth_rx = (_ARCFACE_MOUTH_RIGHT[0] - _ARCFACE_MOUTH_LEFT[0]) / 2
    upper_lip = _arc(mouth_cx, mouth_cy, mouth_rx, 6.0, np.arange(180.0, -1.0, -30.0))
    lower_lip = _arc(mouth_cx, mouth_cy, mouth_rx, 7.0, np.arange(330.0, 209.0, -30.0))
    inner = _arc(mouth_cx, mouth_cy, mouth_rx - 4.0, 2.0, np.arange(180.0, -180.0, -45.0))
    points = np.concatenate(
        [jaw, left_brow, right_brow, bridge, nostrils, left_eye, right_eye, upper_lip, lower_lip, inner]
    )
    assert points.shape == (NUM_LANDMARKS, 2)
    return points.astype(np.float32)


CANONICAL_LANDMARKS: np.ndarray = _canonical_landmarks()
CANONICAL_LANDMARKS.setflags(write=False)

_LEFT_EYE = np.array(_ARCFACE_LEFT_EYE)
_RIGHT_EYE = np.array(_ARCFACE_RIGHT_EYE)

# Where the frontal-face cascade's box falls on the canonical face: (left, top, side) in template
# pixels. Calibrated on 800 LFW deep-funneled crops (crop 0.55) as the median box relative to the
# detected eye pair; AT&T boxes are a little tighter, which its higher eye-pair rate absorbs.
_CANONICAL_BOX = (11.2, 16.7, 90.5)

# Plausibility limits, as fractions of the image side: faces smaller than this or centred
# further out than this are not the face the crop was made around.
_MIN_FACE_FRACTION = 0.35
_MAX_CENTRE_OFFSET = 0.2
_RETRY_PAD = 12


@functools.cache
def _cascades() -> tuple[cv2.CascadeClassifier, cv2.CascadeClassifier]:
    """Load OpenCV's bundled frontal-face and eye cascades once per process."""
    loaded = []
    for name in ("haarcascade_frontalface_default.xml", "haarcascade_eye.xml"):
        path = cv2.data.haarcascades + name
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise RuntimeError(f"could not load the OpenCV Haar cascade {path}")
        loaded.append(cascade)
    return loaded[0], loaded[1]


def _similarity(src_a: np.ndarray, src_b: np.ndarray, dst_a: np.ndarray, dst_b: np.ndarray) -> complex:
    """Rotation-and-scale (as a complex number) taking the segment src_a->src_b onto dst_a->dst_b."""
    return complex(*(dst_b - dst_a)) / complex(*(src_b - src_a))


def _apply(points: np.ndarray, origin: np.ndarray, zoom: complex, target: np.ndarray) -> np.ndarray:
    """Map points by p -> target + zoom * (p - origin), treating (x, y) as x + iy."""
    z = (points[:, 0] - origin[0]) + 1j * (points[:, 1] - origin[1])
    w = zoom * z
    return np.stack([w.real + target[0], w.imag + target[1]], axis=1)


def _pick_face(faces: np.ndarray, size: int) -> tuple[int, int, int, int] | None:
    """The largest detection that is big enough and near the centre, or None."""
    plausible = []
    for x, y, w, h in faces:
        off = np.hypot(x + w / 2 - size / 2, y + h / 2 - size / 2)
        if w >= _MIN_FACE_FRACTION * size and off <= _MAX_CENTRE_OFFSET * size:
            plausible.append((int(x), int(y), int(w), int(h)))
    return max(plausible, key=lambda b: b[2] * b[3]) if plausible else None


def _find_face(face_cascade: cv2.CascadeClassifier, grey: np.ndarray) -> tuple[int, int, int, int] | None:
    """Plausible face box in the image, retrying on a border-padded copy when none is found."""
    min_side = int(_MIN_FACE_FRACTION * grey.shape[0])
    for pad in (0, _RETRY_PAD):
        # A face that fills the frame (AT&T) leaves the cascade no context at the edges;
        # replicating the border gives it some (AT&T hit rate 82% -> 97%).
        padded = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else grey
        faces = face_cascade.detectMultiScale(
            padded, scaleFactor=1.1, minNeighbors=3, minSize=(min_side, min_side)
        )
        faces = np.asarray(faces, dtype=np.int64).reshape(-1, 4)
        faces[:, :2] -= pad
        box = _pick_face(faces, grey.shape[0])
        if box is not None:
            return box
    return None


def _pick_eyes(
    centres: list[np.ndarray], box: tuple[int, int, int, int], expected: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The (left, right) eye-centre pair closest to where the box fit puts them, if plausible."""
    x, _, w, _ = box
    best, best_err = None, np.inf
    for left in centres:
        for right in centres:
            dx, dy = right - left
            # One eye per half of the box, roughly level, at a face-like distance apart.
            if left[0] >= x + w / 2 or right[0] < x + w / 2:
                continue
            if not (0.25 * w <= dx <= 0.6 * w) or abs(dy) > 0.25 * dx:
                continue
            err = np.linalg.norm(left - expected[0]) + np.linalg.norm(right - expected[1])
            if err < best_err:
                best, best_err = (left, right), err
    # A pair far from where the box says the eyes are is more likely a brow or nostril hit.
    if best is None or best_err > 0.35 * w:
        return None
    return best


def detect_landmarks(image: np.ndarray) -> tuple[np.ndarray, str]:
    """Fit the canonical face to Haar cascade hits: (68,2) float32 landmarks, "cascade" or "template"."""
    if image.dtype != np.uint8 or image.shape != (FACE_SIZE, FACE_SIZE, 3):
        raise ValueError(
            f"detect_landmarks needs a uint8 ({FACE_SIZE}, {FACE_SIZE}, 3) RGB image, "
            f"got {image.dtype} {tuple(image.shape)}"
        )
    face_cascade, eye_cascade = _cascades()
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    box = _find_face(face_cascade, grey)
    if box is None:
        return CANONICAL_LANDMARKS.copy(), "template"

    x, y, w, h = box
    bx, by, bw = _CANONICAL_BOX
    box_zoom = complex(w / bw, 0.0)
    box_origin, box_target = np.array([bx, by]), np.array([x, y], dtype=np.float64)
    expected = _apply(np.stack([_LEFT_EYE, _RIGHT_EYE]), box_origin, box_zoom, box_target)

    # Eyes sit in the upper part of the face box; searching only there avoids mouth and nostril hits.
    # (A box found on the padded retry may poke out of the frame, hence the clamp at 0.)
    x0, y0 = max(x, 0), max(y, 0)
    upper = grey[y0 : y + int(0.6 * h), x0 : x + w]
    eyes = eye_cascade.detectMultiScale(
        upper, scaleFactor=1.1, minNeighbors=3, minSize=(w // 8, w // 8), maxSize=(w // 2, w // 2)
    )
    centres = [np.array([x0 + ex + ew / 2, y0 + ey + eh / 2]) for ex, ey, ew, eh in np.reshape(eyes, (-1, 4))]
    pair = _pick_eyes(centres, box, expected)
    if pair is not None:
        zoom = _similarity(_LEFT_EYE, _RIGHT_EYE, *pair)
        # Reject eye fits that disagree with the face box on scale or tilt by a lot.
        ratio = abs(zoom) / abs(box_zoom)
        if 0.75 <= ratio <= 1.33 and abs(np.angle(zoom)) <= np.deg2rad(25.0):
            points = _apply(CANONICAL_LANDMARKS, _LEFT_EYE, zoom, pair[0])
        else:
            points = _apply(CANONICAL_LANDMARKS, box_origin, box_zoom, box_target)
    else:
        points = _apply(CANONICAL_LANDMARKS, box_origin, box_zoom, box_target)
    # The ROI is cut at the frame anyway; clipping keeps every point a valid pixel position.
    points = np.clip(points, 0.0, FACE_SIZE - 1.0)
    return points.astype(np.float32), "cascade"
