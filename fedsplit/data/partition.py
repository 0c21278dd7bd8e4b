"""Split samples across federated clients by identity, and hold identities out for evaluation."""

from __future__ import annotations

import numpy as np

SCHEMES = ("iid", "dirichlet", "quantity")
# quantity: each kept identity keeps at least this many images (or all it has), so it can still form a pair.
_MIN_IMAGES_PER_IDENTITY = 2


def _check_labels(labels: np.ndarray) -> np.ndarray:
    """Labels as a 1-D integer array, or a ValueError saying what they were."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    return labels


def holdout_identities(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Choose `count` distinct identity labels uniformly at random (seeded), sorted, as int64."""
    ids = np.unique(_check_labels(labels))
    if not 0 <= count <= len(ids):
        raise ValueError(f"count must be between 0 and the {len(ids)} identities, got {count}")
    chosen = np.random.default_rng(seed).choice(ids, size=count, replace=False)
    return np.sort(chosen).astype(np.int64)


def _client_identity_counts(
    n_ids: int, clients: int, scheme: str, alpha: float, rng: np.random.Generator
) -> np.ndarray:
    """How many identities each client gets: equal shares, or Dirichlet(alpha) shares with a floor of one."""
    if scheme == "dirichlet":
        share = rng.dirichlet(np.full(clients, alpha))
        # One identity each first, so no client is empty; the rest follow the Dirichlet shares.
        return 1 + rng.multinomial(n_ids - clients, share)
    return np.full(clients, n_ids // clients) + (np.arange(clients) < n_ids % clients)


def partition(
    labels: np.ndarray,
    clients: int,
    scheme: str = "iid",
    alpha: float = 0.5,
    seed: int = 0,
    exclude: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Sorted sample indices per client; each identity not in `exclude` lives on exactly one client.

    iid: identities shuffled and dealt in equal shares (sizes differ by at most one identity).
    dirichlet: client identity counts from Dirichlet(alpha) shares, each client >= 1 identity;
    smaller alpha is more unbalanced. quantity: identities dealt as iid, then client c keeps a
    fraction f_c of each of its identities' images (at least 2, or all if fewer), with f drawn
    from Dirichlet(alpha) and rescaled so the largest is 1. Which images are kept is seeded too.
    """
    labels = _check_labels(labels)
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if not isinstance(clients, (int, np.integer)) or clients < 1:
        raise ValueError(f"clients must be an integer >= 1, got {clients!r}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    excluded = np.unique(np.asarray(exclude if exclude is not None else [], dtype=np.int64))
    ids = np.setdiff1d(np.unique(labels), excluded)
    if clients > len(ids):
        raise ValueError(
            f"clients={clients} is more than the {len(ids)} identities left to share out "
            f"({len(excluded)} excluded)"
        )

    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(ids)
    counts = _client_identity_counts(len(ids), clients, scheme, alpha, rng)
    owned = np.split(shuffled, np.cumsum(counts)[:-1])

    if scheme != "quantity":
        return [np.flatnonzero(np.isin(labels, mine)) for mine in owned]

    fraction = rng.dirichlet(np.full(clients, alpha))
    fraction = fraction / fraction.max()
    # Sample indices grouped by identity, so each identity's images are one slice.
    order = np.argsort(labels, kind="stable")
    all_ids, start, size = np.unique(labels[order], return_index=True, return_counts=True)
    out = []
    for client, mine in enumerate(owned):
        kept = []
        for slot in np.searchsorted(all_ids, np.sort(mine)):
            images = order[start[slot] : start[slot] + size[slot]]
            keep = max(min(_MIN_IMAGES_PER_IDENTITY, len(images)), int(round(fraction[client] * len(images))))
            kept.append(rng.choice(images, size=keep, replace=False))
        out.append(np.sort(np.concatenate(kept)))
    return out
