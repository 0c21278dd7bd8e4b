"""Convex-hull ROI masks, checked against OpenCV's polygon fill."""

import cv2
import numpy as np
import pytest
import torch

from fedsplit.data.landmarks import CANONICAL_LANDMARKS
from fedsplit.data.roi import roi_masks


def reference_mask(points: np.ndarray, size: int = 112) -> np.ndarray:
    """Per-image reference: OpenCV's convex hull filled with fillConvexPoly (boundary included)."""
    mask = np.zeros((size, size), np.uint8)
    hull = cv2.convexHull(points.astype(np.float32))
    # 4 fractional bits, so the reference is not off by the rounding of each vertex.
    cv2.fillConvexPoly(mask, np.round(hull * 16).astype(np.int32), 1, shift=4)
    return mask.astype(bool)


def face_like_batch(n: int, seed: int) -> np.ndarray:
    """Canonical faces jittered, scaled, shifted and rotated: a batch of different hull shapes."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        angle = np.deg2rad(rng.uniform(-20, 20))
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        centred = CANONICAL_LANDMARKS - 56.0
        points = centred @ rot.T * rng.uniform(0.8, 1.0) + 56.0 + rng.uniform(-8, 8, 2)
        out.append(points + rng.normal(0, 1.5, points.shape))
    return np.stack(out).astype(np.float32)


def test_matches_opencv_fill_up_to_boundary_pixels():
    batch = face_like_batch(12, seed=0)
    masks = roi_masks(batch)
    assert masks.shape == (12, 1, 112, 112) and masks.dtype == torch.float32
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    for points, mask in zip(batch, masks[:, 0].numpy().astype(bool)):
        ref = reference_mask(points)
        iou = (mask & ref).sum() / (mask | ref).sum()
        assert iou > 0.98, iou
        # Every disagreement is a pixel whose centre lies within a pixel of the hull outline.
        hull = cv2.convexHull(points.astype(np.float32))
        for y, x in zip(*np.nonzero(mask != ref)):
            assert abs(cv2.pointPolygonTest(hull, (float(x), float(y)), True)) <= 1.0


def test_mixed_shapes_in_one_batch_are_independent():
    square = np.array([[10, 10], [50, 10], [50, 50], [10, 50]], float)
    triangle = np.array([[60, 60], [100, 60], [60, 100]], float)
    # Pad every sample to K=8 with interior points and points on an edge, which must not change the hull.
    square = np.vstack([square, [[30, 30], [30, 10], [50, 20], [20, 40]]])
    triangle = np.vstack([triangle, [[70, 70], [80, 60], [80, 80], [61, 61], [60, 80]]])
    scattered = np.random.default_rng(3).uniform(0, 111, (8, 2))
    batch = np.stack([square, triangle, scattered])
    masks = roi_masks(batch)[:, 0].numpy()
    assert masks[0].sum() == 41 * 41  # pixel centres 10..50 inclusive in x and y
    assert masks[0][10:51, 10:51].all()
    assert masks[1].sum() == 41 * 42 / 2  # right triangle with legs of 41 pixel centres
    for b in range(3):
        np.testing.assert_array_equal(masks[b], roi_masks(batch[b : b + 1])[0, 0].numpy())
    ref = reference_mask(scattered)
    assert (masks[2].astype(bool) & ref).sum() / (masks[2].astype(bool) | ref).sum() > 0.97


def test_torch_and_numpy_inputs_agree_and_size_is_honoured():
    batch = face_like_batch(3, seed=1)
    np.testing.assert_array_equal(roi_masks(batch).numpy(), roi_masks(torch.from_numpy(batch)).numpy())
    small = roi_masks(batch / 2, size=56)
    assert small.shape == (3, 1, 56, 56)
    assert 0 < small.sum() < 3 * 56 * 56


def test_hull_beyond_the_frame_is_cut_at_the_edges():
    huge = np.array([[[-50.0, -50.0], [200.0, -50.0], [200.0, 200.0], [-50.0, 200.0]]])
    assert roi_masks(huge).sum() == 112 * 112
    outside = np.array([[[200.0, 200.0], [300.0, 200.0], [250.0, 300.0]]])
    assert roi_masks(outside).sum() == 0


def test_degenerate_samples_give_empty_masks_without_nan():
    identical = np.full((68, 2), 40.0)
    collinear = np.stack([np.linspace(10, 100, 68), np.linspace(20, 90, 68)], 1)
    vertical = np.stack([np.full(68, 30.0), np.linspace(5, 100, 68)], 1)
    batch = np.stack([identical, collinear, CANONICAL_LANDMARKS.astype(float), vertical])
    masks = roi_masks(batch)
    assert torch.isfinite(masks).all()
    assert masks[0].sum() == 0 and masks[1].sum() == 0 and masks[3].sum() == 0
    np.testing.assert_array_equal(masks[2], roi_masks(batch[2:3])[0])  # a real face beside them is unaffected
    assert masks[2].sum() > 4000
    assert roi_masks(np.full((1, 1, 2), 5.0)).sum() == 0  # a single point


def test_non_finite_landmarks_name_the_sample():
    batch = face_like_batch(4, seed=2)
    batch[2, 7, 0] = np.nan
    with pytest.raises(ValueError, match="sample 2"):
        roi_masks(batch)
    batch[2, 7, 0] = 1.0
    batch[3, 0, 1] = np.inf
    with pytest.raises(ValueError, match="sample 3"):
        roi_masks(torch.from_numpy(batch))


@pytest.mark.parametrize("shape", [(68, 2), (2, 68, 3), (2, 0, 2), (2, 68, 2, 1)])
def test_bad_shapes_are_rejected(shape):
    with pytest.raises(ValueError, match="landmarks must be"):
        roi_masks(np.zeros(shape))


def test_bad_size_and_empty_batch():
    with pytest.raises(ValueError, match="size"):
        roi_masks(np.zeros((1, 68, 2)), size=0)
    assert roi_masks(np.zeros((0, 68, 2))).shape == (0, 1, 112, 112)
