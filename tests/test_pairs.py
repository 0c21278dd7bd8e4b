"""LFW pairs files and seeded verification pairs."""

import numpy as np
import pytest
from conftest import LFW_ROOT, needs_lfw

from fedsplit.data.folders import FolderFaces
from fedsplit.data.pairs import Pair, make_pairs, pairs_to_indices, read_pairs


@pytest.fixture(scope="module")
def lfw():
    return FolderFaces(LFW_ROOT, crop=0.55, detect=False)


def write(tmp_path, text, name="pairs.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_small_two_fold_file(tmp_path):
    text = "2\t1\nAnn 1 2\nAnn 1 Bob 3\nBob 2 4\nCy 1 Dee 2\n\n"  # trailing blank line is fine
    pairs = read_pairs(write(tmp_path, text))
    assert pairs == [
        Pair("Ann", 1, "Ann", 2, True, 0),
        Pair("Ann", 1, "Bob", 3, False, 0),
        Pair("Bob", 2, "Bob", 4, True, 1),
        Pair("Cy", 1, "Dee", 2, False, 1),
    ]


def test_single_number_header_is_one_fold(tmp_path):
    pairs = read_pairs(write(tmp_path, "2\nA 1 2\nB 3 4\nA 1 B 1\nC 2 D 2\n"))
    assert [p.same for p in pairs] == [True, True, False, False]
    assert {p.fold for p in pairs} == {0}


@pytest.mark.parametrize(
    "text, line, what",
    [
        ("", 1, "header"),
        ("1 2 3\nA 1 2\n", 1, "header"),
        ("ten 1\nA 1 2\nA 1 B 2\n", 1, "integers"),
        ("1 0\n", 1, "positive"),
        ("1 1\nA 1\nA 1 B 2\n", 2, "matched pair"),
        ("1 1\nA 1 2\nA 1 B\n", 3, "mismatched pair"),
        ("1 1\nA one 2\nA 1 B 2\n", 2, "image numbers"),
        ("1 1\nA 1 2\nA 1 B 2.5\n", 3, "image numbers"),
        ("1 1\nA 1 -2\nA 1 B 2\n", 2, "positive"),
        ("2 1\nA 1 2\nA 1 B 2\nC 1 2\n", 5, "4 pair lines"),
        ("1 1\nA 1 2\nA 1 B 2\nC 1 2\n", 4, "end of the file"),
        ("1 2\nA 1 2\n\nA 1 B 2\nC 1 D 2\n", 3, "matched pair"),
        ("1 2\nA 1 2\nA 1 B 2\nC 1 D 2\n", 3, "matched pair"),  # a dropped line is caught where it shifts
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, text, line, what):
    path = write(tmp_path, text, "bad_pairs.txt")
    with pytest.raises(ValueError, match=rf"bad_pairs\.txt:{line}: .*{what}"):
        read_pairs(path)


@needs_lfw
def test_pairs_fold1_file():
    pairs = read_pairs(LFW_ROOT / "pairs_fold1.txt")
    assert len(pairs) == 600
    assert all(p.same for p in pairs[:300]) and not any(p.same for p in pairs[300:])
    assert {p.fold for p in pairs} == {0}
    assert pairs[0] == Pair("Abel_Pacheco", 1, "Abel_Pacheco", 4, True, 0)
    assert all(p.name_a == p.name_b for p in pairs[:300])


@needs_lfw
def test_full_ten_fold_pairs_file():
    pairs = read_pairs(LFW_ROOT / "pairs.txt")
    assert len(pairs) == 6000
    fold = np.array([p.fold for p in pairs])
    same = np.array([p.same for p in pairs])
    np.testing.assert_array_equal(fold, np.repeat(np.arange(10), 600))
    np.testing.assert_array_equal(same, np.tile(np.repeat([True, False], 300), 10))
    assert pairs[:600] == read_pairs(LFW_ROOT / "pairs_fold1.txt")


@needs_lfw
def test_fold1_resolves_completely_against_lfw(lfw):
    pairs = read_pairs(LFW_ROOT / "pairs_fold1.txt")
    index, same, fold, unresolved = pairs_to_indices(pairs, lfw)
    assert unresolved == []
    assert index.shape == (600, 2) and index.dtype == np.int64
    assert same.dtype == bool and same.sum() == 300 and fold.dtype == np.int64 and (fold == 0).all()
    # Resolution goes to the right files: same-name pairs share a label, others do not.
    labels = lfw.labels[index]
    np.testing.assert_array_equal(labels[:, 0] == labels[:, 1], same)
    first = pairs[0]
    assert lfw.paths[index[0, 0]].name == f"{first.name_a}_{first.number_a:04d}.jpg"
    assert lfw.paths[index[0, 1]].name == f"{first.name_b}_{first.number_b:04d}.jpg"


@needs_lfw
def test_unresolved_pairs_are_reported(lfw):
    pairs = read_pairs(LFW_ROOT / "pairs.txt")
    index, same, fold, unresolved = pairs_to_indices(pairs, lfw)
    assert len(index) + len(unresolved) == 6000
    assert (fold == 0).sum() == 600  # fold 1 complete, the others mostly missing (see SOURCE.md)
    assert all(80 <= (fold == f).sum() <= 130 for f in range(1, 10))
    assert all(p.fold > 0 for p in unresolved)
    ghost = Pair("No_Such_Person", 1, "Colin_Powell", 1, False, 0)
    assert pairs_to_indices([ghost], lfw)[3] == [ghost]


def check_pairs(labels, index, same, fold, n_pairs, folds):
    assert index.shape == (n_pairs, 2) and index.dtype == np.int64
    assert same.dtype == bool and fold.dtype == np.int64
    assert (index[:, 0] != index[:, 1]).all()  # no self pair
    assert len({tuple(sorted(p)) for p in index.tolist()}) == n_pairs  # no duplicate, either order
    np.testing.assert_array_equal(labels[index[:, 0]] == labels[index[:, 1]], same)
    n = n_pairs // (2 * folds)
    np.testing.assert_array_equal(fold, np.repeat(np.arange(folds), 2 * n))
    np.testing.assert_array_equal(same, np.tile(np.repeat([True, False], n), folds))


def test_make_pairs_invariants_and_determinism():
    labels = np.repeat(np.arange(40), np.arange(40) % 5 + 1)  # 1 to 5 images per identity
    index, same, fold = make_pairs(labels, 200, seed=7)  # 100 of the 160 matched pairs
    check_pairs(labels, index, same, fold, 200, 10)
    again = make_pairs(labels, 200, seed=7)
    for a, b in zip((index, same, fold), again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(make_pairs(labels, 200, seed=8)[0], index)


def test_make_pairs_large_source_uses_sampling():
    labels = np.repeat(np.arange(3000), 20)
    index, same, fold = make_pairs(labels, 6000, seed=0)
    check_pairs(labels, index, same, fold, 6000, 10)


def test_make_pairs_can_use_every_matched_pair():
    labels = np.array([0, 0, 0, 1, 1, 2, 3])  # exactly 3 + 1 = 4 matched pairs exist
    index, same, fold = make_pairs(labels, 8, seed=1, folds=2)
    check_pairs(labels, index, same, fold, 8, 2)
    assert {tuple(p) for p in index[same].tolist()} == {(0, 1), (0, 2), (1, 2), (3, 4)}


def test_make_pairs_rejects_impossible_requests():
    with pytest.raises(ValueError, match="2\\+ images"):
        make_pairs(np.arange(50), 20, seed=0)  # every identity has one image
    with pytest.raises(ValueError, match="matched pairs"):
        make_pairs(np.array([0, 0, 1, 1]), 20, seed=0, folds=1)
    with pytest.raises(ValueError, match="mismatched pairs"):
        make_pairs(np.array([0, 0, 0, 0, 1]), 10, seed=0, folds=1)
    with pytest.raises(ValueError, match="multiple of 2 \\* folds"):
        make_pairs(np.repeat(np.arange(10), 5), 30, seed=0, folds=10)
    with pytest.raises(ValueError, match="folds"):
        make_pairs(np.repeat(np.arange(10), 5), 30, seed=0, folds=0)
