"""The naive look: the plain inverse transform of exactly the planes the server received."""

from __future__ import annotations

import torch

from fedsplit.frequency import inverse_dct


def look(planes: torch.Tensor, channels: tuple[int, ...], upsample: int) -> torch.Tensor:
    """Images (B,3,H,W) on the [-1,1] scale from inverse_dct of `channels`, missing planes zero; not clamped."""
    return inverse_dct(planes, tuple(channels), upsample)


__all__ = ["look"]
