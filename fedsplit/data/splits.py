"""Training and evaluation faces of a run, from its config: who trains, who is held out, which pairs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedsplit.config import Config
from fedsplit.data.folders import FolderFaces
from fedsplit.data.pairs import make_pairs, pairs_to_indices, read_pairs
from fedsplit.data.partition import holdout_identities
from fedsplit.data.synthetic import SyntheticFaces

DEFAULT_SYNTHETIC_PAIRS = 600


@dataclass
class FaceSplits:
    """All faces a run uses, in memory, with the training / evaluation division.

    `images`, `landmarks` and `labels` (source identity labels) cover every face used. Training
    faces are `train` (indices into those arrays) with contiguous class ids `train_classes`.
    Evaluation faces belong to identities on no training list; `pairs` index into the arrays.
    """

    images: np.ndarray  # (N, 112, 112, 3) uint8
    landmarks: np.ndarray  # (N, 68, 2) float32
    labels: np.ndarray  # (N,) int64 source identity labels
    train: np.ndarray  # (T,) indices of training faces
    train_classes: np.ndarray  # (T,) int64 in [0, num_classes)
    num_classes: int
    pairs: np.ndarray  # (P, 2) indices of evaluation faces
    same: np.ndarray  # (P,) bool
    fold: np.ndarray | None  # (P,) fold ids from a pairs file, or None for stratified contiguous folds
    description: str

    @property
    def eval_faces(self) -> np.ndarray:
        """Indices of the faces that occur in some evaluation pair."""
        return np.unique(self.pairs)


def _classes(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Contiguous class ids 0..C-1 for the given identity labels."""
    ids, inverse = np.unique(labels, return_inverse=True)
    return inverse.astype(np.int64), len(ids)


def build_splits(cfg: Config, progress: bool = False) -> FaceSplits:
    """Load the configured source and divide it; held-out identities never appear in `train`."""
    d = cfg.data
    if d.source == "synthetic":
        seed = cfg.seed if d.data_seed is None else d.data_seed
        source = SyntheticFaces(d.identities, d.images_per_identity, seed=seed)
        images, labels, landmarks = source.batch(np.arange(len(source)))
        held = holdout_identities(labels, d.eval_identities, seed=cfg.seed)
        train = np.flatnonzero(~np.isin(labels, held))
        eval_idx = np.flatnonzero(np.isin(labels, held))
        n_pairs = d.eval_pairs if isinstance(d.eval_pairs, int) else DEFAULT_SYNTHETIC_PAIRS
        local, same, _ = make_pairs(labels[eval_idx], n_pairs, seed=cfg.seed)
        pairs, fold = eval_idx[local], None
        desc = (f"synthetic: {d.identities - d.eval_identities} training identities x {d.images_per_identity} images, "
                f"{d.eval_identities} held-out identities, {len(pairs)} pairs")
    else:
        source = FolderFaces(d.root, crop=d.crop, progress=progress)
        labels = source.labels
        if d.eval_pairs is not None:
            parsed = read_pairs(d.eval_pairs)
            pairs, same, fold, unresolved = pairs_to_indices(parsed, source)
            if unresolved:
                names = ", ".join(f"{p.name_a}/{p.number_a}~{p.name_b}/{p.number_b}" for p in unresolved[:3])
                raise ValueError(f"data.eval_pairs: {len(unresolved)} pairs name images not in {d.root} ({names}, ...)")
            held = np.unique(labels[pairs])
            fold = fold if len(np.unique(fold)) >= 10 else None
        else:
            # No pairs file: hold out a fifth of the identities and pair their images.
            held = holdout_identities(labels, max(2, len(np.unique(labels)) // 5), seed=cfg.seed)
            eval_idx = np.flatnonzero(np.isin(labels, held))
            local, same, _ = make_pairs(labels[eval_idx], DEFAULT_SYNTHETIC_PAIRS, seed=cfg.seed)
            pairs, fold = eval_idx[local], None
        train = np.flatnonzero(~np.isin(labels, held))
        # Decode once, keep only what the run uses (training faces and pair faces).
        used = np.union1d(train, np.unique(pairs))
        images, _, landmarks = source.batch(used)
        remap = np.full(len(labels), -1, np.int64)
        remap[used] = np.arange(len(used))
        labels, train, pairs = labels[used], remap[train], remap[pairs]
        desc = (f"folder {d.root}: {len(np.unique(labels[train]))} training identities, {len(train)} images; "
                f"{len(held)} held-out identities, {len(pairs)} pairs")
    if len(train) == 0:
        raise ValueError("no training faces left after holding out the evaluation identities")
    classes, n = _classes(labels[train])
    return FaceSplits(images=images, landmarks=landmarks.astype(np.float32), labels=labels, train=train,
                      train_classes=classes, num_classes=n, pairs=pairs, same=np.asarray(same, bool), fold=fold,
                      description=desc)


@dataclass
class ClientShard:
    """What one simulated client holds: its training faces (with private local class ids) and held-out faces."""

    client: int
    train: np.ndarray  # indices into FaceSplits arrays
    local_classes: np.ndarray  # (len(train),) int64 in [0, num_local_classes)
    num_local_classes: int
    eval_faces: np.ndarray  # indices of held-out faces this client holds


def client_shards(splits: FaceSplits, clients: int, scheme: str, alpha: float, seed: int) -> list[ClientShard]:
    """Share training identities out by the partition scheme; deal held-out identities round-robin.

    Every identity, training or held out, lives on exactly one client. Local class ids are private to
    the client (0..k-1 over its own identities).
    """
    from fedsplit.data.partition import partition

    parts = partition(splits.labels[splits.train], clients, scheme=scheme, alpha=alpha, seed=seed)
    eval_faces = splits.eval_faces
    held = np.unique(splits.labels[eval_faces])
    owner = dict(zip(np.random.default_rng(seed + 1).permutation(held).tolist(),
                     (np.arange(len(held)) % clients).tolist()))
    shards = []
    for c, part in enumerate(parts):
        train = splits.train[part]
        local, n = _classes(splits.labels[train])
        mine = np.array([owner[int(lab)] == c for lab in splits.labels[eval_faces]], bool)
        shards.append(ClientShard(client=c, train=train, local_classes=local, num_local_classes=n,
                                  eval_faces=eval_faces[mine]))
    return shards
