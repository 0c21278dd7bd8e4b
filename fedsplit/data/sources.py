"""Open a face source by name: the built-in synthetic faces or a folder of real ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedsplit.data.folders import FolderFaces
from fedsplit.data.synthetic import SyntheticFaces

FaceSource = SyntheticFaces | FolderFaces


def open_faces(
    data: str = "synthetic",
    identities: int = 200,
    images_per_identity: int = 12,
    seed: int = 0,
    crop: float | None = None,
    progress: bool = False,
) -> FaceSource:
    """'synthetic' gives generated faces (the sizes apply); anything else is a <root>/<identity>/<image> folder."""
    if data == "synthetic":
        return SyntheticFaces(identities=identities, images_per_identity=images_per_identity, seed=seed)
    root = Path(data)
    if not root.is_dir():
        raise ValueError(f"data must be 'synthetic' or a folder of <identity>/<image> files; {root} is not a folder")
    return FolderFaces(root, progress=progress) if crop is None else FolderFaces(root, crop=crop, progress=progress)


def one_per_identity(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of the first image of n identities spread evenly over the source."""
    identities, first = np.unique(labels, return_index=True)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    chosen = np.linspace(0, len(identities) - 1, num=min(n, len(identities))).round().astype(int)
    return np.sort(first[np.unique(chosen)])
