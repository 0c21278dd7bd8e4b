"""The verification protocol on hand-made embeddings with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from fedsplit.verification import MIN_NEGATIVES_FOR_TAR, best_threshold, evaluate_pairs, pair_distances, verify


def _unit(v):
    return np.asarray(v, float) / np.linalg.norm(v, axis=-1, keepdims=True)


def test_distances_are_squared_l2_of_normalised_embeddings():
    a = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    b = np.array([[5.0, 0.0], [0.0, -1.0], [1.0, -1.0]])
    np.testing.assert_allclose(pair_distances(a, b), [0.0, 4.0, 2.0])


def test_separable_pairs_score_one_and_identical_embeddings_score_half():
    rng = np.random.default_rng(0)
    centres = _unit(rng.normal(size=(50, 16)))
    a = centres[np.arange(100) % 50]
    same = np.arange(100) < 50
    b = np.where(same[:, None], a + 0.01 * rng.normal(size=a.shape), centres[(np.arange(100) + 7) % 50])
    v = verify(a, b, same)
    assert v.accuracy == 1.0 and v.accuracy_std == 0.0 and v.folds == 10
    flat = verify(np.ones((100, 4)), np.ones((100, 4)), same)
    assert flat.accuracy == pytest.approx(0.5)


def test_threshold_is_the_best_cut():
    # Sorted: + + - + + - -; cutting after the fifth pair misclassifies only the negative at 0.25.
    dist = np.array([0.1, 0.2, 0.3, 0.35, 0.9, 1.0, 0.25])
    same = np.array([True, True, True, True, False, False, False])
    thr, acc = best_threshold(dist, same)
    assert thr == pytest.approx(0.625) and acc == pytest.approx(6 / 7)


def test_known_accuracy_with_overlap_per_fold():
    # Each fold: 5 positives at 0.1..0.5, 5 negatives at 0.45..0.85: the best cut misclassifies one pair.
    pos = np.tile(np.linspace(0.1, 0.5, 5), 10)
    neg = np.tile(np.linspace(0.45, 0.85, 5), 10)
    dist = np.concatenate([pos, neg])
    same = np.concatenate([np.ones(50, bool), np.zeros(50, bool)])
    v = evaluate_pairs(dist, same)
    assert v.accuracy == pytest.approx(0.9)
    # every fold holds both kinds, so no fold is all-positive
    assert v.positives == 50 and v.negatives == 50


def test_tar_is_unavailable_without_enough_negatives():
    dist = np.r_[np.zeros(10), np.ones(MIN_NEGATIVES_FOR_TAR - 1)]
    same = np.r_[np.ones(10, bool), np.zeros(MIN_NEGATIVES_FOR_TAR - 1, bool)]
    v = evaluate_pairs(dist, same)
    assert v.tar_at_far is None and "needed" in v.tar_note


def test_tar_at_far_known_answer():
    # 2000 negatives at 1.000..2.999; FAR 1e-3 admits the 2 closest, so the threshold is the third (1.002).
    neg = 1.0 + np.arange(2000) / 1000
    pos = np.array([0.5, 1.0005, 1.0015, 1.5, 1.8])
    dist = np.r_[pos, neg]
    same = np.r_[np.ones(5, bool), np.zeros(2000, bool)]
    v = evaluate_pairs(dist, same)
    assert v.tar_at_far == pytest.approx(3 / 5)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="NaN"):
        verify(np.array([[np.nan, 1.0]] * 4), np.ones((4, 2)), np.array([1, 0, 1, 0], bool))
    with pytest.raises(ValueError, match="shape"):
        verify(np.ones((4, 2)), np.ones((3, 2)), np.ones(4, bool))


def test_pair_decisions_are_what_each_fold_scores():
    from fedsplit.verification import evaluate_pairs, pair_decisions

    rng = np.random.default_rng(3)
    same = rng.random(200) < 0.5
    dist = np.where(same, rng.normal(1.0, 0.4, 200), rng.normal(1.8, 0.4, 200))
    fold = np.arange(200) % 10
    correct = pair_decisions(dist, same, fold)
    assert correct.dtype == bool and 0.5 < correct.mean() < 1.0
    v = evaluate_pairs(dist, same, fold)
    assert v.accuracy == pytest.approx(np.mean([correct[fold == f].mean() for f in range(10)]))
