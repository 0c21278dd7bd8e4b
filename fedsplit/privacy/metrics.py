"""How close a recovered face is to the original: PSNR and SSIM per image, on the [-1,1] scale."""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

# Faces live on [-1, 1]: the peak-to-peak range both metrics are defined against.
DATA_RANGE = 2.0


def psnr(recovered: torch.Tensor | np.ndarray, original: torch.Tensor | np.ndarray) -> np.ndarray:
    """PSNR in dB per image of (B,3,H,W) batches on [-1,1], data range 2; recovered is clamped to [-1,1] first.

    Identical images give +inf (zero error), not a cap.
    """
    rec, ori = _pair(recovered, original)
    with np.errstate(divide="ignore"):  # identical images: 10*log10(4/0) is +inf, on purpose
        return np.array([peak_signal_noise_ratio(o, r, data_range=DATA_RANGE) for r, o in zip(rec, ori)])


def ssim(recovered: torch.Tensor | np.ndarray, original: torch.Tensor | np.ndarray) -> np.ndarray:
    """SSIM per image of (B,3,H,W) batches on [-1,1], data range 2; recovered is clamped to [-1,1] first.

    Wang et al. (2004) settings: 11x11 Gaussian window of sigma 1.5, population covariances, the
    mean over the three colour channels.
    """
    rec, ori = _pair(recovered, original)
    return np.array([
        structural_similarity(o, r, data_range=DATA_RANGE, channel_axis=0, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for r, o in zip(rec, ori)
    ])


def _pair(recovered: torch.Tensor | np.ndarray, original: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rec = _as_batch(recovered, "recovered")
    ori = _as_batch(original, "original")
    if rec.shape != ori.shape:
        raise ValueError(f"recovered {rec.shape} and original {ori.shape} must have the same shape")
    # A recovery may overshoot; the attacker knows pixels lie in [-1,1], so out-of-range values are not credited.
    return np.clip(rec, -1.0, 1.0), ori


def _as_batch(images: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if not isinstance(images, np.ndarray):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array (B,3,H,W), got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3 or min(images.shape[2:]) < 7:
        raise ValueError(f"{name} must be a batch (B,3,H,W) with H, W >= 7, got shape {images.shape}")
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"{name} must be floating point on the [-1,1] scale, got dtype {images.dtype}")
    if not np.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return images.astype(np.float64)


__all__ = ["DATA_RANGE", "psnr", "ssim"]
