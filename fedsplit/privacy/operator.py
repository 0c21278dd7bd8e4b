"""The server's view of a face as an affine map of its pixels: planes = linear(x) + offset.

Everything dct_split does is linear in the [-1,1] pixels except one constant (the -0.5 of Y after
"x255, to YCbCr, minus 128"), which lands on the DC plane. Per colour the chain is the per-axis
operator pair of `fedsplit.frequency` (dense_h (8,h,H), dense_w (8,w,W)); the colours mix through
one 3x3 matrix first. This module applies that map, its exact adjoint and its normal operator
without ever forming a matrix, in float64 so that an attack is limited by the view, not by rounding.
"""

from __future__ import annotations

import numpy as np
import torch

from fedsplit.frequency import _CMIX, _DC, NUM_FREQUENCIES, _check_channels, _check_upsample, _operators


class ServerView:
    """The planes of `channels` (per colour, as dct_split orders them) of size x size faces."""

    def __init__(self, channels: tuple[int, ...], upsample: int, size: int = 112) -> None:
        """Build the per-axis operators for one channel set, upsample factor and face size."""
        self.channels = tuple(sorted(_check_channels(channels, "channels")))
        if not self.channels:
            raise ValueError("channels must name at least one frequency 0..63")
        self.upsample = _check_upsample(upsample)
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
            raise ValueError(f"size must be an integer >= 2, got {size!r}")
        if (size * self.upsample) % 8:
            raise ValueError(f"size {size} x upsample {self.upsample} must divide by 8 (whole 8x8 blocks)")
        self.size = int(size)
        self.plane_size = self.size * self.upsample // 8
        ops = _operators(self.size, self.size, self.upsample)
        # The float32 operators are the ones the CPU kernel applies, so they are the server's truth.
        self.dense_h = torch.from_numpy(ops.dense_h.astype(np.float64))  # (8, h, H)
        self.dense_w = torch.from_numpy(ops.dense_w.astype(np.float64))  # (8, w, W)
        self.cmix = torch.from_numpy(_CMIX.astype(np.float64))  # (3, 3): [-1,1] RGB -> YCbCr less offset
        self._u = torch.tensor([k // 8 for k in self.channels])
        self._v = torch.tensor([k % 8 for k in self.channels])
        self._gram_terms = self._build_gram_terms()

    @property
    def num_planes(self) -> int:
        """Planes per image: 3 colours x len(channels)."""
        return 3 * len(self.channels)

    @property
    def offset(self) -> torch.Tensor:
        """forward(0): the constant (1, 3*n, h, w) float64 that makes the view affine, not linear."""
        out = torch.zeros(1, 3, len(self.channels), self.plane_size, self.plane_size, dtype=torch.float64)
        if 0 in self.channels:
            out[:, :, self.channels.index(0)] = torch.from_numpy(_DC.astype(np.float64)).view(1, 3, 1, 1)
        return out.flatten(1, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The planes the server receives, (B, 3*n, h, w) float64, from images (B,3,H,W) in [-1,1]."""
        return self.linear(images) + self.offset

    def linear(self, images: torch.Tensor) -> torch.Tensor:
        """forward less its offset: exactly linear in the images (no range check, any real values)."""
        x = self._check_images(images)
        ycc = torch.einsum("oc,bchw->bohw", self.cmix, x)
        rows = torch.einsum("uir,bcrq->bcuiq", self.dense_h, ycc)  # (B, 3, 8, h, W)
        # Only the wanted (u, v) pairs: gather u's rows and v's columns per channel.
        picked = rows[:, :, self._u]  # (B, 3, n, h, W)
        out = torch.einsum("bcniq,njq->bcnij", picked, self.dense_w[self._v])
        return out.flatten(1, 2)

    def adjoint(self, planes: torch.Tensor) -> torch.Tensor:
        """The exact adjoint of `linear`: (B, 3*n, h, w) -> images (B, 3, H, W) float64."""
        y = self._check_planes(planes).unflatten(1, (3, len(self.channels)))
        cols = torch.einsum("bcnij,njq->bcniq", y, self.dense_w[self._v])  # (B, 3, n, h, W)
        # Channels sharing a vertical frequency u share its row operator: sum them before applying it.
        by_u = cols.new_zeros(cols.shape[0], 3, 8, *cols.shape[3:])
        by_u.index_add_(2, self._u, cols)
        ycc = torch.einsum("bcuiq,uir->bcrq", by_u, self.dense_h)
        return torch.einsum("oc,bohw->bchw", self.cmix, ycc)

    def gram(self, images: torch.Tensor) -> torch.Tensor:
        """adjoint(linear(x)) without building the planes: colour mix, plane_gram, colour mix back."""
        x = self._check_images(images)
        ycc = torch.einsum("oc,bchw->bohw", self.cmix, x)
        return torch.einsum("oc,bohw->bchw", self.cmix, self.plane_gram(ycc))

    def plane_gram(self, planes: torch.Tensor) -> torch.Tensor:
        """The Gram matrix of one colour's view on (..., H, W) float64 images: sum over u of P_u X R_u.

        Per colour the view's Gram matrix is the sum over kept (u, v) of (Dh_u^T Dh_u) kron
        (Dw_v^T Dw_v); grouping the kept v of each u leaves at most 8 pairs of HxH matmuls, whatever
        the upsample factor, which is what makes an iterative attack cheap.
        """
        out = torch.zeros_like(planes)
        for p_u, r_u in self._gram_terms:
            out += p_u @ planes @ r_u
        return out

    def colour_gram(self) -> torch.Tensor:
        """cmix^T cmix (3, 3): how the colours weigh in the view, gram = colour_gram kron plane_gram."""
        return self.cmix.T @ self.cmix

    def gram_terms(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The (P_u, R_u) pairs, (H, H) and (W, W) symmetric, whose sum of P_u X R_u is plane_gram."""
        return list(self._gram_terms)

    def _build_gram_terms(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # Fewest matmul pairs wins: group the kept (u, v) by row u or by column v (rows with the same
        # set of columns share one term), either for the kept set itself or as "everything minus the
        # complement" (the full view's Gram is one pair, S_h X S_w, because each block's DCT is orthonormal).
        kept = {(k // 8, k % 8) for k in self.channels}
        missing = {(u, v) for u in range(8) for v in range(8)} - kept
        options = [(1, kept, False), (1, kept, True)]
        options += [(-1, missing, False), (-1, missing, True)] if missing else [(-1, set(), False)]
        best: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        for sign, pairs, by_column in options:
            terms = self._grouped_terms(pairs, by_column, sign)
            if sign < 0:
                full_h = sum(self.dense_h[u].T @ self.dense_h[u] for u in range(8))
                full_w = sum(self.dense_w[v].T @ self.dense_w[v] for v in range(8))
                terms = [(full_h, full_w)] + terms
            if best is None or len(terms) < len(best):
                best = terms
        return best

    def _grouped_terms(self, pairs: set[tuple[int, int]], by_column: bool, sign: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """sign * sum over pairs of P_u X Q_v as few (left, right) matmul pairs as grouping allows."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for outer in range(8):
            inner = tuple(sorted(b if not by_column else a for a, b in pairs if (a if not by_column else b) == outer))
            if inner:
                groups.setdefault(inner, []).append(outer)
        gh = lambda u: self.dense_h[u].T @ self.dense_h[u]  # noqa: E731 - P_u
        gw = lambda v: self.dense_w[v].T @ self.dense_w[v]  # noqa: E731 - Q_v
        terms = []
        for inner, outers in groups.items():
            if by_column:  # inner are rows u, outers are columns v
                terms.append((sign * sum(gh(u) for u in inner), sum(gw(v) for v in outers)))
            else:
                terms.append((sign * sum(gh(u) for u in outers), sum(gw(v) for v in inner)))
        return terms

    def _check_images(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            raise ValueError(f"images must be a floating-point torch.Tensor, got {type(images).__name__}")
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, self.size, self.size):
            raise ValueError(f"images must be (B, 3, {self.size}, {self.size}), got {tuple(images.shape)}")
        return images.detach().to("cpu", torch.float64)

    def _check_planes(self, planes: torch.Tensor) -> torch.Tensor:
        if not isinstance(planes, torch.Tensor) or not planes.is_floating_point():
            raise ValueError(f"planes must be a floating-point torch.Tensor, got {type(planes).__name__}")
        want = (self.num_planes, self.plane_size, self.plane_size)
        if planes.ndim != 4 or tuple(planes.shape[1:]) != want:
            raise ValueError(f"planes must be (B, {', '.join(map(str, want))}) for {len(self.channels)} channels "
                             f"per colour at upsample {self.upsample}, got {tuple(planes.shape)}")
        if not torch.isfinite(planes).all():
            raise ValueError("planes contain NaN or infinite values")
        return planes.detach().to("cpu", torch.float64)


ALL_CHANNELS: tuple[int, ...] = tuple(range(NUM_FREQUENCIES))

__all__ = ["ALL_CHANNELS", "ServerView"]
