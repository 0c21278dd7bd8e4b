"""Real faces from an image-folder tree, `<root>/<identity>/<image>`, as 112x112 FaceSamples."""

from __future__ import annotations

import operator
import re
import sys
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from fedsplit.data.landmarks import CANONICAL_LANDMARKS, detect_landmarks
from fedsplit.data.types import FACE_SIZE, FaceSample

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".bmp", ".tif", ".tiff"})
# Centre-crop fraction that makes an LFW deep-funneled 250x250 image look like an aligned crop.
LFW_DEEPFUNNELED_CROP = 0.55
_LISTED_IN_WARNING = 5
_DECODE_THREADS = 4
# `<Name>_<NNNN>` (LFW) or a bare `<N>` (AT&T): the trailing number index_of looks up.
_NUMBER = re.compile(r"^(?:.*_)?(\d+)$")
_JPEG_START = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"
_PNG_START = b"\x89PNG\r\n\x1a\n"


def _natural_key(name: str) -> list[str | int]:
    """Sort key that puts 2.pgm before 10.pgm."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _decode(path: Path) -> np.ndarray | str:
    """Decode one file to BGR uint8, or return why it is unusable.

    Rule: the bytes must decode with cv2.imdecode, and a JPEG must end with its end-of-image
    marker FFD9 (trailing NUL/whitespace padding allowed) and a PNG with its IEND chunk. The
    marker checks catch truncated files that a decoder would otherwise fill with grey (cv2.imread
    does). Bytes corrupted in the middle of JPEG entropy data still decode, with artefacts, and
    are not detected.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
    if not data:
        return "empty file (0 bytes)"
    if data.startswith(_JPEG_START) and not data.rstrip(b"\x00 \t\r\n").endswith(_JPEG_END):
        return "truncated JPEG (no end-of-image marker FFD9)"
    if data.startswith(_PNG_START) and b"IEND" not in data[-16:]:
        return "truncated PNG (no IEND chunk)"
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as err:
        return f"OpenCV could not decode it: {str(err).strip().splitlines()[-1]}"
    if image is None or image.size == 0:
        return "OpenCV could not decode it (corrupt or not an image)"
    return image


def _crop_resize(bgr: np.ndarray, crop: float) -> np.ndarray:
    """Centre square of side crop x shorter side, resized to 112x112 RGB with INTER_AREA."""
    h, w = bgr.shape[:2]
    side = max(1, int(round(crop * min(h, w))))
    top, left = (h - side) // 2, (w - side) // 2
    square = bgr[top : top + side, left : left + side]
    # INTER_AREA is the right filter for shrinking; for the rare upscale it falls back to bilinear.
    face = cv2.resize(square, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(face, cv2.COLOR_BGR2RGB)


class FolderFaces:
    """Faces from `<root>/<identity>/<image>`, decoded and cropped to 112x112 RGB at construction.

    Identities are the sorted names of root's subfolders (hidden ones, starting with ".", are
    ignored, and so are files directly under root); an identity's label is its position in
    that list and does not depend on which of its files decode. Image files (.jpg .jpeg .png
    .pgm .ppm .bmp .tif .tiff, any case) that cannot be used are skipped, listed in `skipped`
    with the reason, and named in a single warning. Every image is decoded up front so
    `len`, `labels` and `paths` already exclude them; landmarks are detected lazily and cached.

    crop: centre-square side as a fraction of the shorter image side, in (0, 1]. For LFW
    deep-funneled (250x250) use LFW_DEEPFUNNELED_CROP = 0.55: the cascade-measured eye distance
    is then ~34 px of 112 (ArcFace template: 35) and the chin sits near the bottom edge, as in
    an aligned crop; 0.6 leaves the face slightly small (~31 px), 1.0 shows the black borders.
    AT&T faces (92x112) already fill the frame: keep crop=1.0.
    """

    def __init__(
        self, root: str | Path, crop: float = 1.0, detect: bool = True, progress: bool = False
    ) -> None:
        self.root = Path(root)
        if not isinstance(crop, (int, float)) or not 0.0 < crop <= 1.0:
            raise ValueError(f"crop must be in (0, 1], got {crop!r}")
        if not self.root.is_dir():
            raise ValueError(f"face folder root {self.root} does not exist or is not a directory")
        self.crop = float(crop)
        self.detect = detect
        folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise ValueError(f"face folder root {self.root} has no identity subfolders")
        self.identity_names: list[str] = [p.name for p in folders]

        candidates: list[tuple[Path, int]] = []
        for label, folder in enumerate(folders):
            files = [
                f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()
            ]
            candidates += [(f, label) for f in sorted(files, key=lambda f: _natural_key(f.name))]

        decoded = self._decode_each([path for path, _ in candidates], progress)
        self.skipped: list[tuple[Path, str]] = []
        self.paths: list[Path] = []
        kept_labels = []
        # Filled in place: stacking a list would briefly hold every image twice (LFW: 2 x 145 MB).
        images = np.empty((len(candidates), FACE_SIZE, FACE_SIZE, 3), dtype=np.uint8)
        for (path, label), result in zip(candidates, decoded):
            if isinstance(result, str):
                self.skipped.append((path, result))
            else:
                images[len(self.paths)] = result
                self.paths.append(path)
                kept_labels.append(label)
        self.labels: np.ndarray = np.array(kept_labels, dtype=np.int64)
        self._images = images[: len(self.paths)]
        self._images.setflags(write=False)
        self._landmarks = np.repeat(CANONICAL_LANDMARKS[None], len(self.paths), axis=0)
        # None marks "not detected yet"; without detection every sample is the template.
        self._sources: list[str | None] = [None if detect else "template"] * len(self.paths)

        self._index: dict[tuple[str, int], int] = {}
        for i, path in enumerate(self.paths):
            self._index.setdefault(self._key(path), i)
        self._skip_reason = {self._key(path): reason for path, reason in self.skipped}
        if self.skipped:
            listed = ", ".join(
                f"{p.relative_to(self.root)} ({why})" for p, why in self.skipped[:_LISTED_IN_WARNING]
            )
            more = len(self.skipped) - _LISTED_IN_WARNING
            warnings.warn(
                f"FolderFaces skipped {len(self.skipped)} unusable image file(s) under {self.root}: "
                f"{listed}" + (f", and {more} more (see .skipped)" if more > 0 else ""),
                stacklevel=2,
            )

    def _decode_each(self, paths: list[Path], progress: bool) -> Iterator[np.ndarray | str]:
        """Decode and crop the files in order, in a small thread pool (OpenCV releases the GIL)."""
        crop = self.crop

        def load(path: Path) -> np.ndarray | str:
            result = _decode(path)
            return result if isinstance(result, str) else _crop_resize(result, crop)

        # OpenCV logs its own line per undecodable file; the single skip warning replaces those.
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            with ThreadPoolExecutor(max_workers=_DECODE_THREADS) as pool:
                for done, result in enumerate(pool.map(load, paths), start=1):
                    yield result
                    if progress and (done % 500 == 0 or done == len(paths)):
                        print(f"FolderFaces {self.root}: decoded {done}/{len(paths)}", file=sys.stderr)
        finally:
            cv2.utils.logging.setLogLevel(level)

    @staticmethod
    def _key(path: Path) -> tuple[str, int]:
        """(identity folder, trailing image number of the stem); -1 when the stem has none."""
        match = _NUMBER.match(path.stem)
        return path.parent.name, int(match.group(1)) if match else -1

    def __len__(self) -> int:
        """Number of readable images."""
        return len(self.paths)

    def _check(self, index: int) -> int:
        """Normalise one index (negative allowed) or raise IndexError."""
        i = operator.index(index)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} faces under {self.root}")
        return i % len(self)

    def _ensure_landmarks(self, indices: np.ndarray) -> None:
        """Run detection once for any of these samples not seen yet."""
        for i in indices.tolist():
            if self._sources[i] is None:
                self._landmarks[i], self._sources[i] = detect_landmarks(self._images[i])

    def __getitem__(self, index: int) -> FaceSample:
        """The index-th readable face with its label and landmarks."""
        i = self._check(index)
        self._ensure_landmarks(np.array([i]))
        return FaceSample(
            image=self._images[i].copy(),
            label=int(self.labels[i]),
            landmarks=self._landmarks[i].copy(),
            landmark_source=self._sources[i],
        )

    def batch(self, indices: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Images (n,112,112,3) uint8, labels (n,) int64 and landmarks (n,68,2) float32 for indices."""
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"indices must be a 1-D integer sequence, got {idx.dtype} {idx.shape}")
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"indices out of range for {len(self)} faces under {self.root}")
        idx = idx % max(len(self), 1)
        self._ensure_landmarks(np.unique(idx))
        landmarks = self._landmarks[idx].astype(np.float32)
        return self._images[idx], self.labels[idx], landmarks

    @property
    def landmark_sources(self) -> list[str]:
        """Per-sample landmark source ("cascade" or "template"); detects any sample not seen yet."""
        self._ensure_landmarks(np.arange(len(self)))
        return list(self._sources)  # type: ignore[arg-type]

    def index_of(self, identity: str, image_number: int) -> int:
        """Index of `<identity>/<identity>_<NNNN>.<ext>` (or `<identity>/<N>.<ext>`); KeyError if absent."""
        key = (identity, int(image_number))
        if key in self._index:
            return self._index[key]
        name = f"{identity}/{identity}_{int(image_number):04d}.*"
        if key in self._skip_reason:
            raise KeyError(f"{name} under {self.root} was skipped: {self._skip_reason[key]}")
        raise KeyError(f"no image {name} under {self.root}")
