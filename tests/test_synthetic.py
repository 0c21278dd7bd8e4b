"""The built-in synthetic face generator: determinism, identity signal, landmarks, data-set API."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fedsplit.data.synthetic import ARCFACE_TEMPLATE, SyntheticFaces, render_face
from fedsplit.data.types import FACE_SIZE, NUM_LANDMARKS, FaceSample

IDS, PER = 20, 4


@pytest.fixture(scope="module")
def gallery() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """20 identities x 4 images: enough to compare within- and between-identity distances."""
    samples = [render_face(7, i, j) for i in range(IDS) for j in range(PER)]
    images = np.stack([s.image for s in samples])
    labels = np.array([s.label for s in samples])
    landmarks = np.stack([s.landmarks for s in samples])
    return images, labels, landmarks


def _unit_rows(features: list[np.ndarray]) -> np.ndarray:
    f = np.stack([x.ravel() - x.mean() for x in features]).astype(np.float64)
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def _distances(unit_rows: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between unit-norm rows."""
    return 2.0 - 2.0 * unit_rows @ unit_rows.T


def _nearest_neighbour_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    d = _distances(features)
    np.fill_diagonal(d, np.inf)
    return float((labels[d.argmin(1)] == labels).mean())


def _intra_inter(features: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    d = _distances(features)
    same = labels[:, None] == labels[None]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    return float(d[same & off_diagonal].mean()), float(d[~same].mean())


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _high_pass(image: np.ndarray) -> np.ndarray:
    g = _grey(image)
    return g - cv2.GaussianBlur(g, (0, 0), 1.5)


def test_render_face_returns_a_face_sample() -> None:
    s = render_face(0, 3, 1)
    assert isinstance(s, FaceSample)
    assert s.image.shape == (FACE_SIZE, FACE_SIZE, 3) and s.image.dtype == np.uint8
    assert s.image.flags["C_CONTIGUOUS"]
    assert s.landmarks.shape == (NUM_LANDMARKS, 2) and s.landmarks.dtype == np.float32
    assert s.label == 3 and s.landmark_source == "synthetic"
    assert s.image.std() > 20  # a drawn picture, not a blank frame


def test_same_arguments_give_identical_pixels_and_landmarks() -> None:
    a = render_face(5, 42, 3)
    for other in range(6):  # interleave other renders: nothing may leak between calls
        render_face(5, other, other)
    b = render_face(5, 42, 3)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)


@pytest.mark.parametrize("args", [(6, 42, 3), (5, 43, 3), (5, 42, 4)])
def test_changing_seed_identity_or_image_changes_the_picture(args: tuple[int, int, int]) -> None:
    base = render_face(5, 42, 3).image.astype(np.int16)
    other = render_face(*args).image.astype(np.int16)
    assert np.abs(base - other).mean() > 8


def test_identities_differ_more_than_images_of_one_identity(gallery) -> None:
    images, labels, _ = gallery
    low = _unit_rows([cv2.resize(cv2.GaussianBlur(im.astype(np.float32), (0, 0), 3), (28, 28)) for im in images])
    intra, inter = _intra_inter(low, labels)
    assert intra < 0.85 * inter
    assert _nearest_neighbour_accuracy(low, labels) > 0.15  # chance is 3/79


def test_images_of_one_identity_still_vary(gallery) -> None:
    images, labels, _ = gallery
    same = images[labels == 0].astype(np.int16)
    diffs = [np.abs(same[i] - same[j]).mean() for i in range(PER) for j in range(i + 1, PER)]
    assert min(diffs) > 10  # pose, light, background and expression change every image


def test_identity_is_recoverable_from_high_frequencies(gallery) -> None:
    images, labels, landmarks = gallery
    # Where the fine detail is (hair strands, brows, wrinkles, freckles, glasses), robust to pose.
    energy = _unit_rows([cv2.resize(cv2.GaussianBlur(np.abs(_high_pass(im)), (0, 0), 2), (28, 28))
                         for im in images])
    assert _nearest_neighbour_accuracy(energy, labels) > 0.3  # chance is 3/79
    # After aligning with the landmarks the high-passed pixels themselves match across images.
    reference = landmarks.mean(0)
    aligned = []
    for im, lm in zip(images, landmarks):
        m, _ = cv2.estimateAffinePartial2D(lm, reference)
        warped = cv2.warpAffine(im, m, (FACE_SIZE, FACE_SIZE), borderMode=cv2.BORDER_REFLECT)
        aligned.append(_high_pass(warped)[16:100, 16:100])
    assert _nearest_neighbour_accuracy(_unit_rows(aligned), labels) > 0.6


def test_landmarks_are_inside_the_image_and_the_face(gallery) -> None:
    _, _, landmarks = gallery
    assert np.all(landmarks >= 0) and np.all(landmarks < FACE_SIZE)
    for lm in landmarks:
        eyes_y = lm[36:48, 1].mean()
        assert eyes_y < lm[30, 1] < lm[48:68, 1].mean()  # eyes above nose tip above mouth
        assert lm[17:27, 1].mean() < eyes_y  # brows above eyes
        assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]  # image-left eye first, corners in order
        assert lm[48, 0] < lm[54, 0] and lm[0, 0] < lm[16, 0]
        assert lm[8, 1] > lm[[0, 1, 2, 3, 13, 14, 15, 16], 1].max()  # chin below the upper jaw (roll allowed)
        hull = cv2.convexHull(lm[0:27].astype(np.float32))
        inside = [cv2.pointPolygonTest(hull, (float(x), float(y)), True) for x, y in lm[27:68]]
        assert min(inside) > -0.5


def test_landmarks_follow_the_pixels(gallery) -> None:
    images, _, landmarks = gallery
    # Upper-lid landmarks sit on the dark lash line; points between eye and nostril are cheek skin.
    darker = []
    for im, lm in zip(images, landmarks):
        g = _grey(im)
        lid = np.mean([g[int(round(y)), int(round(x))] for x, y in lm[[37, 38, 43, 44]]])
        cheeks = [(lm[41] + lm[31]) / 2, (lm[46] + lm[35]) / 2]
        cheek = np.mean([g[int(round(y)), int(round(x))] for x, y in cheeks])
        darker.append(lid < 0.8 * cheek)
    assert np.mean(darker) > 0.9
    # At neutral pose the faces are ArcFace-aligned; pose nuisance averages out over images.
    eyes = [landmarks[:, 36:42].mean(1), landmarks[:, 42:48].mean(1)]
    five = np.stack([*eyes, landmarks[:, 30], landmarks[:, 48], landmarks[:, 54]], axis=1)
    np.testing.assert_allclose(five.mean(0), ARCFACE_TEMPLATE, atol=2.0)


def test_landmark_transform_is_the_pixel_warp() -> None:
    # White-box: a small blob drawn at a canonical point must land where the landmark transform puts it.
    from fedsplit.data import synthetic as syn

    yy, xx = np.mgrid[0 : syn._CANVAS, 0 : syn._CANVAS].astype(np.float64) - syn._MARGIN
    oy, ox = np.mgrid[0:FACE_SIZE, 0:FACE_SIZE].astype(np.float64)
    points = np.array([[38.0, 52.0], [74.0, 51.0], [56.0, 72.0], [42.0, 92.0], [22.0, 60.0]])
    worst = 0.0
    for k in range(12):
        p = syn._identity(0, k)
        nz = syn._nuisance(np.random.default_rng([99, k]))
        affine, gains = syn._pose(p, nz)
        assert abs(gains[0]) > 0 or abs(gains[1]) > 0
        moved = syn._project(p, points, affine, gains)
        for (cx, cy), (px, py) in zip(points, moved):
            canvas = np.zeros((syn._CANVAS, syn._CANVAS, 4), np.uint8)
            canvas[..., 0] = np.round(255 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 2.0))
            out = syn._warp(p, canvas, affine, gains)[..., 0] * ((np.abs(ox - px) < 8) & (np.abs(oy - py) < 8))
            centroid = np.array([(out * ox).sum(), (out * oy).sum()]) / out.sum()
            worst = max(worst, float(np.abs(centroid - [px, py]).max()))
    assert worst < 0.3


def test_ten_thousand_identities_need_no_storage() -> None:
    faces = SyntheticFaces(identities=10_000, images_per_identity=12, seed=1)
    assert len(faces) == 120_000 and faces.identity_names[-1] == "synthetic_09999"
    last = faces[len(faces) - 1]
    assert last.label == 9999
    np.testing.assert_array_equal(last.image, render_face(1, 9999, 11).image)
    far = render_face(1, 12345, 0)
    assert far.label == 12345 and far.image.std() > 20
    assert np.abs(far.image.astype(np.int16) - render_face(1, 12346, 0).image).mean() > 8


def test_data_set_indexing_labels_and_batches() -> None:
    faces = SyntheticFaces(identities=3, images_per_identity=2, seed=4, first_identity=10)
    assert len(faces) == 6
    assert faces.identity_names == ["synthetic_00010", "synthetic_00011", "synthetic_00012"]
    assert faces.labels.dtype == np.int64 and faces.labels.tolist() == [0, 0, 1, 1, 2, 2]
    s = faces[3]  # local identity 1 = generator identity 11, image 1
    assert s.label == 1 and s.landmark_source == "synthetic"
    np.testing.assert_array_equal(s.image, render_face(4, 11, 1).image)
    np.testing.assert_array_equal(faces[-1].image, faces[5].image)
    with pytest.raises(IndexError):
        faces[6]
    with pytest.raises(IndexError):
        faces[-7]
    images, labels, landmarks = faces.batch([5, 0, 3])
    assert images.shape == (3, FACE_SIZE, FACE_SIZE, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == [2, 0, 1]
    assert landmarks.shape == (3, NUM_LANDMARKS, 2) and landmarks.dtype == np.float32
    np.testing.assert_array_equal(images[2], s.image)
    np.testing.assert_array_equal(landmarks[2], s.landmarks)
    empty = faces.batch(np.array([], dtype=np.int64))
    assert empty[0].shape == (0, FACE_SIZE, FACE_SIZE, 3)


def test_first_identity_gives_disjoint_held_out_sets() -> None:
    train = SyntheticFaces(identities=4, images_per_identity=1, seed=2)
    held_out = SyntheticFaces(identities=4, images_per_identity=1, seed=2, first_identity=4)
    assert not set(train.identity_names) & set(held_out.identity_names)
    assert train.labels.tolist() == held_out.labels.tolist()  # labels are local to each set
    assert all(np.abs(train[i].image.astype(np.int16) - held_out[i].image).mean() > 8 for i in range(4))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"identities": 0}, "identities"),
        ({"images_per_identity": 0}, "images_per_identity"),
        ({"seed": -1}, "seed"),
        ({"first_identity": -3}, "first_identity"),
        ({"identities": 2.5}, "identities"),
        ({"identities": True}, "identities"),
    ],
)
def test_bad_data_set_arguments_raise_value_error(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        SyntheticFaces(**kwargs)


@pytest.mark.parametrize(("args", "name"), [((-1, 0, 0), "seed"), ((0, -1, 0), "identity"), ((0, 0, -2), "image"),
                                            ((0, 1.0, 0), "identity")])
def test_bad_render_arguments_raise_value_error(args: tuple, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        render_face(*args)
