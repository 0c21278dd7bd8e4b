"""Margin-based classification heads (ArcFace, CosFace) whose logits feed a cross-entropy loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Keeps sqrt(1 - cos^2) differentiable where cos = +-1 exactly; below float32's smallest non-zero
# 1 - cos^2 (about 1.2e-7), so it only ever acts at exactly +-1.
_SIN_FLOOR = 1e-12


class _CosineHead(nn.Module):
    """Shared part: class-centre weights and the cosine between embeddings and centres."""

    def __init__(self, embedding: int, classes: int, s: float, m: float) -> None:
        """Create a (classes, embedding) weight with the usual small normal init."""
        super().__init__()
        self.s = s
        self.m = m
        self.weight = nn.Parameter(torch.empty(classes, embedding))
        nn.init.normal_(self.weight, std=0.01)

    def cosine(self, emb: Tensor) -> Tensor:
        """Cosines (B, classes) in float32; a zero embedding gives cosines of 0 instead of NaN."""
        cos = F.linear(F.normalize(emb, dim=1), F.normalize(self.weight, dim=1))
        # float32 even under autocast: the margin maths needs its tiny sine floor to stay non-zero.
        return cos.float().clamp(-1.0, 1.0)

    def margin(self, cos: Tensor) -> Tensor:
        """Target-class logit before scaling."""
        raise NotImplementedError

    def forward(self, emb: Tensor, labels: Tensor | None = None) -> Tensor:
        """Scaled logits (B, classes); the target class gets the margin unless labels is None."""
        cos = self.cosine(emb)
        if labels is None:
            return self.s * cos
        target = F.one_hot(labels.long(), cos.shape[1]).to(torch.bool)
        return self.s * torch.where(target, self.margin(cos), cos)


class ArcFace(_CosineHead):
    """Additive angular margin: cos(theta + m) on the target class (Deng et al., 2019)."""

    def __init__(self, embedding: int, classes: int, s: float = 64.0, m: float = 0.5) -> None:
        """Create the head with scale `s` and angular margin `m` (radians)."""
        super().__init__(embedding, classes, s, m)
        self.cos_m = math.cos(m)
        self.sin_m = math.sin(m)
        # Past theta = pi - m, cos(theta + m) would rise again; switch to a linear penalty instead.
        self.threshold = math.cos(math.pi - m)
        self.fallback = math.sin(math.pi - m) * m

    def margin(self, cos: Tensor) -> Tensor:
        """cos(theta + m), or cos - m*sin(m) where theta + m would pass pi."""
        sin = (1.0 - cos * cos).clamp_min(_SIN_FLOOR).sqrt()
        phi = cos * self.cos_m - sin * self.sin_m
        return torch.where(cos > self.threshold, phi, cos - self.fallback)


class CosFace(_CosineHead):
    """Additive cosine margin: cos(theta) - m on the target class (Wang et al., 2018)."""

    def __init__(self, embedding: int, classes: int, s: float = 64.0, m: float = 0.35) -> None:
        """Create the head with scale `s` and cosine margin `m`."""
        super().__init__(embedding, classes, s, m)

    def margin(self, cos: Tensor) -> Tensor:
        """cos(theta) - m."""
        return cos - self.m


HEADS: dict[str, type[_CosineHead]] = {"arcface": ArcFace, "cosface": CosFace}


def make_head(name: str, embedding: int, classes: int, s: float | None = None, m: float | None = None) -> nn.Module:
    """Build the head called `name` ("arcface" or "cosface"); a None scale or margin keeps the head's own."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; expected one of {sorted(HEADS)}")
    given = {k: v for k, v in (("s", s), ("m", m)) if v is not None}
    return HEADS[name](embedding, classes, **given)
