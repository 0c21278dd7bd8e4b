"""Verification pairs: the LFW pairs.txt format, and seeded pairs for sources without one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Pair:
    """One verification pair by identity name and image number, as pairs.txt writes it."""

    name_a: str
    number_a: int
    name_b: str
    number_b: int
    same: bool
    fold: int  # 0-based


class _Indexed(Protocol):
    def index_of(self, identity: str, image_number: int) -> int: ...


def _ints(path: Path, line_no: int, fields: list[str], what: str) -> list[int]:
    """Parse positive integers or raise a ValueError naming the file, line and expectation."""
    try:
        values = [int(f) for f in fields]
    except ValueError:
        raise ValueError(f"{path}:{line_no}: expected {what}, got {' '.join(fields)!r}") from None
    if any(v < 1 for v in values):
        raise ValueError(f"{path}:{line_no}: expected {what} (positive integers), got {' '.join(fields)!r}")
    return values


def read_pairs(path: str | Path) -> list[Pair]:
    """Parse an LFW pairs.txt: header `<folds> <n>` or `<n>`, then per fold n matched and n mismatched lines."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    # Blank lines at the very end are an editor's trailing newline, not data.
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{path}:1: expected a header `<folds> <pairs per half-fold>` or `<pairs>`, got nothing")
    header = lines[0].split()
    if len(header) not in (1, 2):
        raise ValueError(
            f"{path}:1: expected a header `<folds> <pairs per half-fold>` or `<pairs>`, got {lines[0]!r}"
        )
    counts = _ints(path, 1, header, "a header of 1 or 2 integers")
    folds, n = counts if len(counts) == 2 else (1, counts[0])

    expected_lines = 1 + folds * 2 * n
    pairs = []
    # Lines first, then the count: a dropped line shows up where the layout breaks, not at the end.
    for offset, line in enumerate(lines[1:expected_lines]):
        line_no = offset + 2
        fold, within = divmod(offset, 2 * n)
        fields = line.split()
        if within < n:
            if len(fields) != 3:
                raise ValueError(
                    f"{path}:{line_no}: expected a matched pair `name i j` (fold {fold + 1}), got {line!r}"
                )
            i, j = _ints(path, line_no, fields[1:], "image numbers in `name i j`")
            pairs.append(Pair(fields[0], i, fields[0], j, True, fold))
        else:
            if len(fields) != 4:
                raise ValueError(
                    f"{path}:{line_no}: expected a mismatched pair `name1 i name2 j` (fold {fold + 1}), "
                    f"got {line!r}"
                )
            i, j = _ints(path, line_no, [fields[1], fields[3]], "image numbers in `name1 i name2 j`")
            pairs.append(Pair(fields[0], i, fields[2], j, False, fold))
    layout = f"{folds} fold(s) x ({n} matched + {n} mismatched)"
    if len(lines) < expected_lines:
        raise ValueError(
            f"{path}:{len(lines) + 1}: expected {expected_lines - 1} pair lines ({layout}), "
            f"the file ends after {len(lines) - 1}"
        )
    if len(lines) > expected_lines:
        raise ValueError(
            f"{path}:{expected_lines + 1}: expected the end of the file after {expected_lines - 1} pair lines "
            f"({layout}), got {lines[expected_lines]!r}"
        )
    return pairs


def pairs_to_indices(
    pairs: list[Pair], source: _Indexed
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Pair]]:
    """Resolve pairs via source.index_of: indices (P,2) int64, same (P,) bool, fold (P,) int64, unresolved."""
    index, same, fold, unresolved = [], [], [], []
    for pair in pairs:
        try:
            a = source.index_of(pair.name_a, pair.number_a)
            b = source.index_of(pair.name_b, pair.number_b)
        except KeyError:
            unresolved.append(pair)
            continue
        index.append((a, b))
        same.append(pair.same)
        fold.append(pair.fold)
    return (
        np.array(index, dtype=np.int64).reshape(-1, 2),
        np.array(same, dtype=bool),
        np.array(fold, dtype=np.int64),
        unresolved,
    )


def _draw_unique(
    rng: np.random.Generator,
    needed: int,
    possible: int,
    draw: Callable[[int], np.ndarray],
    enumerate_all: Callable[[], np.ndarray],
) -> np.ndarray:
    """`needed` distinct (i<j) pairs: enumerate a small or nearly used-up pool, else draw and drop repeats."""
    if needed == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if possible <= max(2 * needed, 100_000):
        pool = enumerate_all()
        return pool[rng.choice(len(pool), size=needed, replace=False)]
    seen: set[tuple[int, int]] = set()
    out: list[tuple[int, int]] = []
    # The pool is over twice what is needed, so at least half of all draws are new pairs.
    while len(out) < needed:
        for a, b in draw(2 * (needed - len(out)) + 16).tolist():
            if (a, b) not in seen:
                seen.add((a, b))
                out.append((a, b))
                if len(out) == needed:
                    break
    return np.array(out, dtype=np.int64)


def make_pairs(
    labels: np.ndarray, n_pairs: int, seed: int, folds: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded verification pairs over labels: indices (P,2) int64, same (P,) bool, fold (P,) int64.

    Half matched, half mismatched, no duplicate or self pair, and laid out like LFW: fold f holds
    n matched then n mismatched pairs, n = n_pairs / (2 * folds).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if folds < 1:
        raise ValueError(f"folds must be >= 1, got {folds}")
    if n_pairs < 1 or n_pairs % (2 * folds):
        raise ValueError(f"n_pairs must be a positive multiple of 2 * folds = {2 * folds}, got {n_pairs}")
    per_half = n_pairs // (2 * folds)
    n_matched = n_mismatched = n_pairs // 2

    rng = np.random.default_rng(seed)
    ids, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    matched_possible = int((counts * (counts - 1) // 2).sum())
    total_possible = len(labels) * (len(labels) - 1) // 2
    mismatched_possible = total_possible - matched_possible
    if matched_possible < n_matched:
        raise ValueError(
            f"labels give only {matched_possible} distinct matched pairs ({int((counts >= 2).sum())} "
            f"identities with 2+ images), n_pairs={n_pairs} needs {n_matched}"
        )
    if mismatched_possible < n_mismatched:
        raise ValueError(
            f"labels give only {mismatched_possible} distinct mismatched pairs ({len(ids)} identities), "
            f"n_pairs={n_pairs} needs {n_mismatched}"
        )

    # Sample indices grouped by identity: identity k owns by_id[start[k] : start[k] + counts[k]].
    by_id = np.argsort(inverse, kind="stable")
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    weights = counts * (counts - 1) / 2.0

    def all_matched() -> np.ndarray:
        groups = [by_id[start[k] : start[k] + counts[k]] for k in range(len(ids))]
        return np.concatenate([g[np.stack(np.triu_indices(len(g), 1), 1)] for g in groups])

    def draw_matched(k: int) -> np.ndarray:
        # Identity in proportion to its pair count, then two distinct images: uniform over pairs.
        who = rng.choice(len(ids), size=k, p=weights / weights.sum())
        first = rng.integers(0, counts[who])
        second = (first + rng.integers(1, counts[who])) % counts[who]
        pair = np.stack([by_id[start[who] + first], by_id[start[who] + second]], 1)
        return np.sort(pair, axis=1).astype(np.int64)

    def all_mismatched() -> np.ndarray:
        # Identity by identity, so memory follows the mismatched count, not len(labels)**2.
        blocks = []
        for k in range(len(ids)):
            mine, later = by_id[start[k] : start[k] + counts[k]], by_id[start[k] + counts[k] :]
            blocks.append(np.stack(np.meshgrid(mine, later, indexing="ij"), -1).reshape(-1, 2))
        return np.sort(np.concatenate(blocks), axis=1).astype(np.int64)

    def draw_mismatched(k: int) -> np.ndarray:
        # Uniform over ordered index pairs, rejecting same-identity ones: uniform over mismatched pairs.
        ab = rng.integers(0, len(labels), size=(k, 2))
        ab = ab[inverse[ab[:, 0]] != inverse[ab[:, 1]]]
        return np.sort(ab, axis=1).astype(np.int64)

    matched = _draw_unique(rng, n_matched, matched_possible, draw_matched, all_matched)
    mismatched = _draw_unique(rng, n_mismatched, mismatched_possible, draw_mismatched, all_mismatched)

    # LFW layout: fold f = matched[f*n:(f+1)*n] followed by mismatched[f*n:(f+1)*n].
    halves = [(matched[f * per_half : (f + 1) * per_half], mismatched[f * per_half : (f + 1) * per_half])
              for f in range(folds)]
    index = np.concatenate([block for fold_halves in halves for block in fold_halves])
    same = np.tile(np.repeat([True, False], per_half), folds)
    fold = np.repeat(np.arange(folds, dtype=np.int64), 2 * per_half)
    return index, same, fold
