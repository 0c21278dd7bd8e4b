"""Image-folder face source: decoding, cropping, labels, and skipping corrupt files."""

import shutil
import warnings

import cv2
import numpy as np
import pytest
from conftest import ATT_ROOT, LFW_ROOT, needs_att, needs_lfw

from fedsplit.data.folders import LFW_DEEPFUNNELED_CROP, FolderFaces
from fedsplit.data.landmarks import CANONICAL_LANDMARKS
from fedsplit.data.types import LANDMARK_SOURCES, FaceSample

PEOPLE = ["Tony_Blair", "Colin_Powell", "Ai_Sugiyama", "Serena_Williams"]  # sorted: Ai, Colin, Serena, Tony


@pytest.fixture
def lfw_copy(tmp_path):
    root = tmp_path / "lfw"
    root.mkdir()
    for name in PEOPLE:
        shutil.copytree(LFW_ROOT / name, root / name)
    shutil.copy(LFW_ROOT / "pairs_fold1.txt", root / "pairs_fold1.txt")  # root-level file: not an identity
    (root / ".cache").mkdir()  # hidden folder: not an identity
    (root / "Tony_Blair" / "notes.txt").write_text("not an image")  # ignored, not skipped
    return root


def label_by_name(faces):
    return {p.name: int(label) for p, label in zip(faces.paths, faces.labels)}


@needs_lfw
def test_lfw_copy_loads_with_folder_labels(lfw_copy):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean tree warns about nothing
        faces = FolderFaces(lfw_copy, crop=LFW_DEEPFUNNELED_CROP, detect=False)
    assert faces.identity_names == sorted(PEOPLE)
    expected = sum(len(list((lfw_copy / n).glob("*.jpg"))) for n in PEOPLE)
    assert len(faces) == expected == len(faces.paths) == len(faces.labels)
    assert faces.skipped == []
    assert faces.labels.dtype == np.int64
    for path, label in zip(faces.paths, faces.labels):
        assert faces.identity_names[label] == path.parent.name
    images, labels, landmarks = faces.batch(np.arange(len(faces)))
    assert images.shape == (expected, 112, 112, 3) and images.dtype == np.uint8
    assert landmarks.shape == (expected, 68, 2) and landmarks.dtype == np.float32
    np.testing.assert_array_equal(labels, faces.labels)
    np.testing.assert_array_equal(landmarks[0], CANONICAL_LANDMARKS)  # detect=False: template
    assert set(faces.landmark_sources) == {"template"}


@needs_lfw
def test_getitem_matches_batch_and_detects_lazily(lfw_copy):
    faces = FolderFaces(lfw_copy, crop=LFW_DEEPFUNNELED_CROP)
    sample = faces[3]
    assert isinstance(sample, FaceSample)
    assert sample.image.shape == (112, 112, 3) and sample.landmarks.shape == (68, 2)
    assert sample.landmark_source in LANDMARK_SOURCES
    images, labels, landmarks = faces.batch([3, 3, 0])
    np.testing.assert_array_equal(images[0], sample.image)
    np.testing.assert_array_equal(landmarks[1], sample.landmarks)
    assert labels[0] == sample.label
    np.testing.assert_array_equal(faces[-1].image, faces[len(faces) - 1].image)
    sources = faces.landmark_sources
    assert len(sources) == len(faces) and sources.count("cascade") >= 0.8 * len(faces)
    with pytest.raises(IndexError):
        faces[len(faces)]
    with pytest.raises(IndexError):
        faces.batch([0, len(faces)])


@needs_lfw
def test_index_of_finds_lfw_file_names(lfw_copy):
    faces = FolderFaces(lfw_copy, detect=False)
    i = faces.index_of("Colin_Powell", 3)
    assert faces.paths[i].name == "Colin_Powell_0003.jpg"
    assert faces.identity_names[faces.labels[i]] == "Colin_Powell"
    with pytest.raises(KeyError, match="Colin_Powell_0999"):
        faces.index_of("Colin_Powell", 999)
    with pytest.raises(KeyError, match="George_W_Bush"):
        faces.index_of("George_W_Bush", 1)


@needs_lfw
def test_corrupt_files_are_skipped_counted_and_named(lfw_copy):
    clean = label_by_name(FolderFaces(lfw_copy, detect=False))
    good = (lfw_copy / "Colin_Powell" / "Colin_Powell_0001.jpg").read_bytes()
    (lfw_copy / "Ai_Sugiyama" / "Ai_Sugiyama_0099.jpg").write_bytes(b"this is not a jpeg" * 20)
    (lfw_copy / "Colin_Powell" / "Colin_Powell_0098.jpg").write_bytes(b"")
    (lfw_copy / "Serena_Williams" / "Serena_Williams_0097.JPG").write_bytes(good[: len(good) // 2])
    ok, png = cv2.imencode(".png", np.full((50, 40, 3), 200, np.uint8))
    (lfw_copy / "Tony_Blair" / "Tony_Blair_0096.png").write_bytes(png.tobytes()[:-30])
    # An identity whose only file is corrupt keeps its label slot; "Bb" sorts between "Ai" and "Colin".
    (lfw_copy / "Bb_Broken").mkdir()
    (lfw_copy / "Bb_Broken" / "Bb_Broken_0001.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 100)

    with pytest.warns(UserWarning, match=r"skipped 5 .*Ai_Sugiyama_0099\.jpg") as caught:
        faces = FolderFaces(lfw_copy, detect=False)
    assert len([w for w in caught if "skipped" in str(w.message)]) == 1  # one warning, not one per file
    message = str(caught[0].message)
    assert "Colin_Powell_0098.jpg" in message and "Serena_Williams_0097.JPG" in message

    skipped = {p.name: why for p, why in faces.skipped}
    assert set(skipped) == {
        "Ai_Sugiyama_0099.jpg", "Colin_Powell_0098.jpg", "Serena_Williams_0097.JPG",
        "Tony_Blair_0096.png", "Bb_Broken_0001.jpg",
    }
    assert "0 bytes" in skipped["Colin_Powell_0098.jpg"]
    assert "truncated JPEG" in skipped["Serena_Williams_0097.JPG"]
    assert "truncated PNG" in skipped["Tony_Blair_0096.png"]
    assert len(faces) == len(clean)

    # Labels follow folder names only: Bb_Broken has slot 1 and every later identity moved up
    # by exactly that, in both runs the names map to the same identity.
    assert faces.identity_names == ["Ai_Sugiyama", "Bb_Broken", "Colin_Powell", "Serena_Williams", "Tony_Blair"]
    assert 1 not in faces.labels
    now = label_by_name(faces)
    assert set(now) == set(clean)
    clean_names = sorted(PEOPLE)
    for name, label in now.items():
        assert faces.identity_names[label] == clean_names[clean[name]]
    with pytest.raises(KeyError, match="skipped"):
        faces.index_of("Ai_Sugiyama", 99)


@needs_lfw
def test_corrupt_files_do_not_shift_labels_without_new_folders(lfw_copy):
    clean = label_by_name(FolderFaces(lfw_copy, detect=False))
    # Ai_Sugiyama (label 0) loses all 5 files and Colin_Powell one: the others keep their labels.
    broken = sorted((lfw_copy / "Ai_Sugiyama").iterdir()) + [lfw_copy / "Colin_Powell" / "Colin_Powell_0001.jpg"]
    for path in broken:
        path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=r"skipped 6 .*, and 1 more \(see \.skipped\)"):
        faces = FolderFaces(lfw_copy, detect=False)
    assert len(faces.skipped) == 6
    assert faces.identity_names[0] == "Ai_Sugiyama" and 0 not in faces.labels
    now = label_by_name(faces)
    assert now == {name: label for name, label in clean.items() if name not in {p.name for p in broken}}


def test_formats_colour_order_and_crop(tmp_path):
    root = tmp_path / "faces"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    red_bgr = np.zeros((60, 90, 3), np.uint8)
    red_bgr[..., 2] = 255
    cv2.imwrite(str(root / "a" / "red.png"), red_bgr)
    grey = np.zeros((100, 100), np.uint8)
    grey[25:75, 25:75] = 255  # white centre square, half the side
    cv2.imwrite(str(root / "b" / "square.pgm"), grey)
    cv2.imwrite(str(root / "b" / "square.bmp"), grey)

    full = FolderFaces(root, crop=1.0, detect=False)
    assert len(full) == 3 and full.labels.tolist() == [0, 1, 1]
    red = full[0].image
    assert red.shape == (112, 112, 3) and (red[..., 0] == 255).all() and (red[..., 1:] == 0).all()
    square = full[1].image
    assert (square[..., 0] == square[..., 1]).all() and (square[..., 1] == square[..., 2]).all()
    assert square[0, 0, 0] == 0 and square[56, 56, 0] == 255

    cropped = FolderFaces(root, crop=0.5, detect=False)
    assert (cropped[1].image == 255).all()  # the centre half is the white square


def test_bad_roots_and_crop(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match="nowhere"):
        FolderFaces(missing)
    flat = tmp_path / "flat"
    flat.mkdir()
    cv2.imwrite(str(flat / "face.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"flat.*no identity"):
        FolderFaces(flat)
    (flat / "someone").mkdir()
    for crop in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="crop"):
            FolderFaces(flat, crop=crop)


@needs_att
def test_att_faces_grey_to_rgb_with_folder_labels():
    faces = FolderFaces(ATT_ROOT, crop=1.0, detect=False)
    assert len(faces) == 400 and len(faces.identity_names) == 40 and faces.skipped == []
    assert faces.identity_names == sorted(f"s{n}" for n in range(1, 41))
    assert np.bincount(faces.labels).tolist() == [10] * 40
    for path, label in zip(faces.paths, faces.labels):
        assert faces.identity_names[label] == path.parent.name
    images, _, _ = faces.batch(np.arange(0, 400, 37))
    assert images.shape == (11, 112, 112, 3)
    assert (images[..., 0] == images[..., 1]).all() and (images[..., 1] == images[..., 2]).all()
    assert images.std() > 20  # real pictures, not blank frames
    assert faces.paths[faces.index_of("s1", 10)].name == "10.pgm"
    assert [p.name for p in faces.paths[:3]] == ["1.pgm", "2.pgm", "3.pgm"]


@needs_lfw
def test_whole_lfw_tree_smoke():
    faces = FolderFaces(LFW_ROOT, crop=LFW_DEEPFUNNELED_CROP, detect=False)
    assert len(faces) == 3858 and len(faces.identity_names) == 812 and faces.skipped == []
    assert "pairs.txt" not in faces.identity_names
    counts = np.bincount(faces.labels, minlength=812)
    assert counts.min() >= 1 and counts.max() <= 10 + 10  # <= 10 subset images plus a few fold-1 extras
