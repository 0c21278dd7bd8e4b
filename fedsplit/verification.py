"""Face verification protocol: squared L2 distances of normalised embeddings, 10-fold accuracy, TAR@FAR."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# TAR at FAR=1e-3 needs enough negatives that one false accept is below the target rate.
MIN_NEGATIVES_FOR_TAR = 1000


@dataclass(frozen=True)
class Verification:
    """What one verification run measured."""

    accuracy: float  # mean over folds of held-out-fold accuracy
    accuracy_std: float  # std over folds
    threshold: float  # mean chosen squared-L2 threshold (same if distance < threshold)
    tar_at_far: float | None  # None when there are fewer than MIN_NEGATIVES_FOR_TAR negatives
    far: float
    tar_note: str  # why tar_at_far is None, or how it was computed
    pairs: int
    positives: int
    negatives: int
    folds: int

    def to_dict(self) -> dict:
        """Plain data for JSON."""
        return asdict(self)


def normalise(emb: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    emb = np.asarray(emb, dtype=np.float64)
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.maximum(norm, 1e-12)


def pair_distances(emb_a: np.ndarray, emb_b: np.ndarray) -> np.ndarray:
    """Squared L2 distance between the normalised rows of emb_a and emb_b (0 to 4)."""
    if emb_a.shape != emb_b.shape or emb_a.ndim != 2:
        raise ValueError(f"embeddings must be two (P, D) arrays of one shape, got {emb_a.shape} and {emb_b.shape}")
    if not (np.isfinite(emb_a).all() and np.isfinite(emb_b).all()):
        raise ValueError("embeddings contain NaN or inf")
    return ((normalise(emb_a) - normalise(emb_b)) ** 2).sum(axis=1)


def best_threshold(dist: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold (midpoint between sorted distances) with the highest accuracy, and that accuracy."""
    order = np.argsort(dist, kind="stable")
    d, s = dist[order], same[order]
    # Threshold after the first i sorted pairs accepts exactly those: correct = positives among them
    # plus negatives after them. Only positions between distinct distances are valid cut points.
    pos_before = np.concatenate([[0], np.cumsum(s)])
    neg_after = (~s).sum() - np.concatenate([[0], np.cumsum(~s)])
    correct = pos_before + neg_after
    valid = np.ones(len(d) + 1, bool)
    valid[1:-1] = d[1:] > d[:-1]
    i = int(np.argmax(np.where(valid, correct, -1)))
    if i == 0:
        thr = d[0] - 1e-6 if len(d) else 0.0
    elif i == len(d):
        thr = d[-1] + 1e-6
    else:
        thr = 0.5 * (d[i - 1] + d[i])
    return float(thr), float(correct[i] / max(len(d), 1))


def tar_at_far(dist: np.ndarray, same: np.ndarray, far: float = 1e-3) -> tuple[float | None, str]:
    """True accept rate at the largest threshold whose false accept rate is <= far, or None with a reason."""
    neg = np.sort(dist[~same])
    pos = dist[same]
    if len(neg) < MIN_NEGATIVES_FOR_TAR:
        return None, f"{len(neg)} negative pairs, at least {MIN_NEGATIVES_FOR_TAR} needed for FAR={far:g}"
    if len(pos) == 0:
        return None, "no positive pairs"
    allowed = int(np.floor(far * len(neg)))  # false accepts allowed
    # Accept distance < thr: admitting `allowed` negatives means thr = neg[allowed] (exclusive).
    thr = neg[allowed] if allowed < len(neg) else np.inf
    return float((pos < thr).mean()), f"threshold {thr:.4f} admits {allowed} of {len(neg)} negatives"


def _checked(dist: np.ndarray, same: np.ndarray, fold: np.ndarray | None,
             folds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dist = np.asarray(dist, dtype=np.float64).reshape(-1)
    same = np.asarray(same, dtype=bool).reshape(-1)
    if dist.shape != same.shape:
        raise ValueError(f"distances {dist.shape} and labels {same.shape} differ in length")
    if len(dist) < 2:
        raise ValueError(f"need at least 2 pairs, got {len(dist)}")
    if not np.isfinite(dist).all():
        raise ValueError("distances contain NaN or inf")
    if fold is None:
        # Contiguous runs of positives and of negatives, so every fold holds both kinds in the
        # data's proportion (a pairs file often lists all matched pairs first).
        fold = np.empty(len(dist), np.int64)
        for kind in (True, False):
            where = np.flatnonzero(same == kind)
            k = max(min(folds, len(where)), 1)
            fold[where] = np.arange(len(where)) * k // max(len(where), 1)
    fold = np.asarray(fold).reshape(-1)
    if fold.shape != dist.shape:
        raise ValueError(f"fold ids {fold.shape} and distances {dist.shape} differ in length")
    return dist, same, fold


def _held_out_thresholds(dist: np.ndarray, same: np.ndarray, fold: np.ndarray) -> dict[int, float]:
    """Each fold's threshold, chosen on the other folds (on itself when there is one fold)."""
    thrs = {}
    for f in np.unique(fold):
        test = fold == f
        thrs[int(f)] = best_threshold(dist, same)[0] if test.all() else best_threshold(dist[~test], same[~test])[0]
    return thrs


def pair_decisions(dist: np.ndarray, same: np.ndarray, fold: np.ndarray | None = None,
                   folds: int = 10) -> np.ndarray:
    """Whether the k-fold protocol judged each pair right: the decisions evaluate_pairs averages per fold."""
    dist, same, fold = _checked(dist, same, fold, folds)
    thrs = _held_out_thresholds(dist, same, fold)
    return (dist < np.array([thrs[int(f)] for f in fold])) == same


def evaluate_pairs(dist: np.ndarray, same: np.ndarray, fold: np.ndarray | None = None, folds: int = 10,
                   far: float = 1e-3) -> Verification:
    """k-fold verification: pick the threshold on the other folds, score the held-out fold."""
    dist, same, fold = _checked(dist, same, fold, folds)
    thrs = _held_out_thresholds(dist, same, fold)
    accs = [float(((dist[fold == f] < thr) == same[fold == f]).mean()) for f, thr in thrs.items()]
    tar, note = tar_at_far(dist, same, far)
    return Verification(
        accuracy=float(np.mean(accs)), accuracy_std=float(np.std(accs)), threshold=float(np.mean(list(thrs.values()))),
        tar_at_far=tar, far=far, tar_note=note, pairs=len(dist), positives=int(same.sum()),
        negatives=int((~same).sum()), folds=len(accs),
    )


def verify(emb_a: np.ndarray, emb_b: np.ndarray, same: np.ndarray, fold: np.ndarray | None = None,
           far: float = 1e-3) -> Verification:
    """Verification of pairs (emb_a[i], emb_b[i]) with ground truth same[i]."""
    return evaluate_pairs(pair_distances(np.asarray(emb_a), np.asarray(emb_b)), same, fold, far=far)
