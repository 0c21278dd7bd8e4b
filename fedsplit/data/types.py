"""The one record every face source yields, and the conversion to model input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

FACE_SIZE = 112
# iBUG-68 ordering: 0-16 jaw, 17-26 brows, 27-35 nose, 36-47 eyes, 48-67 mouth.
NUM_LANDMARKS = 68
LANDMARK_SOURCES = ("synthetic", "cascade", "template")


@dataclass(frozen=True)
class FaceSample:
    """One 112x112 RGB face with its identity label and 68 landmarks in pixel (x, y)."""

    image: np.ndarray  # (112, 112, 3) uint8, RGB
    label: int  # index into the source's identity list
    landmarks: np.ndarray  # (68, 2) float32, x then y, pixels of `image`
    landmark_source: str  # one of LANDMARK_SOURCES


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """Turn uint8 RGB images (N, H, W, 3) into float32 (N, 3, H, W) in [-1, 1]."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"images must be uint8 (N, H, W, 3), got {images.dtype} {tuple(images.shape)}"
        )
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1.0)


def stack_samples(samples: list[FaceSample]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack samples into images (N,112,112,3) uint8, labels (N,) int64 and landmarks (N,68,2)."""
    images = np.empty((len(samples), FACE_SIZE, FACE_SIZE, 3), np.uint8)
    landmarks = np.empty((len(samples), NUM_LANDMARKS, 2), np.float32)
    for k, sample in enumerate(samples):  # filled in place: np.stack refuses an empty batch
        images[k], landmarks[k] = sample.image, sample.landmarks
    return images, np.array([s.label for s in samples], dtype=np.int64), landmarks
