"""The canonical 68-point face and the Haar-cascade landmark fit."""

import shutil

import cv2
import numpy as np
import pytest
from conftest import LFW_ROOT, needs_lfw

from fedsplit.data import landmarks
from fedsplit.data.folders import LFW_DEEPFUNNELED_CROP, FolderFaces
from fedsplit.data.landmarks import CANONICAL_LANDMARKS, detect_landmarks
from fedsplit.data.types import FACE_SIZE, NUM_LANDMARKS

JAW, BROWS, NOSE_TIP = slice(0, 17), slice(17, 27), 30
LEFT_EYE, RIGHT_EYE, MOUTH = slice(36, 42), slice(42, 48), slice(48, 68)
LFW_PEOPLE = ["Colin_Powell", "Tony_Blair", "Serena_Williams", "Hugo_Chavez"]


@pytest.fixture(scope="module")
def lfw_faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("lfw_few")
    for name in LFW_PEOPLE:
        shutil.copytree(LFW_ROOT / name, root / name)
    return FolderFaces(root, crop=LFW_DEEPFUNNELED_CROP, detect=False)


def test_canonical_template_shape_and_range():
    assert CANONICAL_LANDMARKS.shape == (NUM_LANDMARKS, 2)
    assert CANONICAL_LANDMARKS.dtype == np.float32
    assert CANONICAL_LANDMARKS.min() >= 0 and CANONICAL_LANDMARKS.max() <= FACE_SIZE - 1
    with pytest.raises(ValueError):
        CANONICAL_LANDMARKS[0, 0] = 1.0  # shared constant must not be editable


def test_canonical_template_matches_arcface_anchor_points():
    c = CANONICAL_LANDMARKS
    np.testing.assert_allclose(c[LEFT_EYE].mean(0), [38.3, 51.7], atol=0.5)
    np.testing.assert_allclose(c[RIGHT_EYE].mean(0), [73.5, 51.5], atol=0.5)
    np.testing.assert_allclose(c[NOSE_TIP], [56.0, 71.7], atol=0.5)
    np.testing.assert_allclose(c[48], [41.5, 92.4], atol=0.5)  # mouth corners
    np.testing.assert_allclose(c[54], [70.7, 92.2], atol=0.5)
    assert c[JAW, 0].min() <= 16 and c[JAW, 0].max() >= 96
    assert 105 <= c[8, 1] <= 111  # chin


def test_canonical_template_is_a_face():
    c = CANONICAL_LANDMARKS
    eyes_y = c[36:48, 1].mean()
    assert c[BROWS, 1].max() < c[36:48, 1].min()  # brows above eyes
    assert eyes_y < c[NOSE_TIP, 1] < c[MOUTH, 1].min()  # eyes above nose above mouth
    assert c[LEFT_EYE, 0].max() < c[RIGHT_EYE, 0].min()
    assert c[8, 1] == c[JAW, 1].max()  # chin is the lowest jaw point
    jaw = cv2.convexHull(c[JAW].astype(np.float32))
    for x, y in c[27:68]:  # nose, eyes, mouth all inside the jaw outline
        assert cv2.pointPolygonTest(jaw, (float(x), float(y)), False) > 0, (x, y)
    # The jaw is symmetric about the face's vertical midline x=56, as a mean face is.
    np.testing.assert_allclose(c[JAW, 0] + c[JAW, 0][::-1], 112.0, atol=1e-3)
    np.testing.assert_allclose(c[JAW, 1], c[JAW, 1][::-1], atol=1e-3)


def test_flat_image_falls_back_to_template():
    points, source = detect_landmarks(np.full((FACE_SIZE, FACE_SIZE, 3), 128, np.uint8))
    assert source == "template"
    np.testing.assert_array_equal(points, CANONICAL_LANDMARKS)
    points[0, 0] = -5  # a copy: the caller may edit it
    assert CANONICAL_LANDMARKS[0, 0] != -5


def test_detect_rejects_wrong_input():
    with pytest.raises(ValueError, match="uint8"):
        detect_landmarks(np.zeros((FACE_SIZE, FACE_SIZE, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(64, 64, 3\)"):
        detect_landmarks(np.zeros((64, 64, 3), np.uint8))


@needs_lfw
def test_detect_on_lfw_crops_uses_cascade(lfw_faces):
    images, _, _ = lfw_faces.batch(np.arange(0, len(lfw_faces), 3))
    sources, centres = [], []
    for image in images:
        points, source = detect_landmarks(image)
        assert points.shape == (NUM_LANDMARKS, 2) and points.dtype == np.float32
        assert points.min() >= 0 and points.max() <= FACE_SIZE - 1
        sources.append(source)
        if source == "cascade":
            centres.append(points[36:48].mean(0))
    assert sources.count("cascade") >= 0.8 * len(sources), sources
    # Fitted eyes land near the upper middle of a centre-cropped face, not anywhere.
    centres = np.array(centres)
    assert np.all(np.abs(centres[:, 0] - 56) < 15) and np.all((30 < centres[:, 1]) & (centres[:, 1] < 65))


@needs_lfw
def test_implausible_detections_are_rejected(lfw_faces):
    face = lfw_faces.batch([0])[0][0]
    finder = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    for side, corner in [(30, (40, 40)), (60, (0, 0))]:  # tiny and centred; big enough but off-centre
        canvas = np.full((FACE_SIZE, FACE_SIZE, 3), 128, np.uint8)
        canvas[corner[1] : corner[1] + side, corner[0] : corner[0] + side] = cv2.resize(
            face, (side, side), interpolation=cv2.INTER_AREA
        )
        raw = finder.detectMultiScale(cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY), 1.1, 3, minSize=(20, 20))
        assert len(raw) >= 1  # the cascade does see a face there...
        assert detect_landmarks(canvas)[1] == "template"  # ...but it is not the cropped face


def test_cascades_load_once():
    detect_landmarks(np.full((FACE_SIZE, FACE_SIZE, 3), 90, np.uint8))
    first = landmarks._cascades()
    detect_landmarks(np.full((FACE_SIZE, FACE_SIZE, 3), 30, np.uint8))
    assert landmarks._cascades() is first
    assert landmarks._cascades.cache_info().misses == 1
