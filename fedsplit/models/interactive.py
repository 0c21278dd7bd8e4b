"""DuetFace feature masks: built from client maps and overlaid on server maps by an interactive block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def normalise_per_sample(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Min-max scale each sample of `x` (over all dims but 0) to [0, 1]; a constant sample gives zeros."""
    flat = x.flatten(1)
    low = flat.amin(dim=1).view(-1, *([1] * (x.dim() - 1)))
    high = flat.amax(dim=1).view(-1, *([1] * (x.dim() - 1)))
    # Clamping the range (not adding eps) keeps the maximum at exactly 1 while a flat sample gives 0/eps = 0.
    return (x - low) / (high - low).clamp_min(eps)


def _resize(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Bilinearly resize a (B,C,h,w) map to `size`, skipping the no-op case."""
    target = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == target:
        return x
    return F.interpolate(x, size=target, mode="bilinear", align_corners=False)


def _mask_from_saliency(saliency: Tensor, roi: Tensor, size: tuple[int, int]) -> Tensor:
    """Turn a (B,1,h,w) saliency map and a ROI into a (B,1,*size) mask in [0, 1]."""
    saliency = normalise_per_sample(_resize(saliency, size))
    roi = _resize(roi.to(device=saliency.device, dtype=saliency.dtype), size)
    return normalise_per_sample(saliency * roi)


def client_masks(maps: list[Tensor], roi: Tensor, sizes: tuple[int, ...]) -> list[Tensor]:
    """Compute the paper's feature masks (B,1,s,s) in [0, 1] from client maps and a (B,1,H,W) ROI."""
    if len(maps) != len(sizes):
        raise ValueError(f"got {len(maps)} maps but {len(sizes)} sizes")
    if roi.dim() != 4 or roi.shape[1] != 1:
        raise ValueError(f"roi must be (B,1,H,W), got {tuple(roi.shape)}")
    return [
        _mask_from_saliency(m.mean(dim=1, keepdim=True), roi, (s, s)) for m, s in zip(maps, sizes, strict=True)
    ]


class InteractiveBlock(nn.Module):
    """Overlay a client feature mask on server features: sigmoid(f) * (1 + weight * mask)."""

    def __init__(self, channels: int, mask_channels: int | None = None) -> None:
        """Create the block; `mask_channels` selects the variant that projects raw client maps itself."""
        super().__init__()
        self.channels = channels
        self.mask_channels = mask_channels
        # Starting at 0 makes the block a pure sigmoid, so masks enter training gradually.
        self.weight = nn.Parameter(torch.zeros(1))
        self.project = nn.Conv2d(mask_channels, channels, 1) if mask_channels is not None else None

    def forward(self, f: Tensor, mask: Tensor | tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Gate `f` with its sigmoid, scaled up where the mask is high."""
        gated = torch.sigmoid(f)
        if mask is None:
            return gated
        m = self._build_mask(f, mask)
        return gated * (1 + self.weight * m)

    def _build_mask(self, f: Tensor, mask: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        """Validate a ready mask, or build one from (raw_map, roi) in the projecting variant."""
        size = (f.shape[-2], f.shape[-1])
        if self.project is None:
            if not isinstance(mask, Tensor) or mask.dim() != 4 or tuple(mask.shape[-2:]) != size:
                shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
                raise ValueError(f"mask must be a (B,1,{size[0]},{size[1]}) tensor, got {shape}")
            return mask
        if not isinstance(mask, (tuple, list)) or len(mask) != 2:
            raise ValueError("this block has mask_channels set: mask must be a (raw_map, roi) pair")
        raw, roi = mask
        if raw.dim() != 4 or raw.shape[1] != self.mask_channels:
            raise ValueError(f"raw map must be (B,{self.mask_channels},h,w), got {tuple(raw.shape)}")
        projected = _resize(self.project(raw), size)
        return _mask_from_saliency(projected.mean(dim=1, keepdim=True), roi, size)
