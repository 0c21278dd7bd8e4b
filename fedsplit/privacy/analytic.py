"""White-box analytic inversion: the faces that best explain the server's planes, with no learning.

The attacker knows the transform exactly (`ServerView`), so it solves, per image,

    min_x  g * ||A x - (b - offset)||^2  +  smoothness * ||grad (x - prior)||^2  +  prior_weight * ||x - prior||^2

with A the view, g = 1 / (127.5 * upsample)^2 (the view's gain on [-1,1] pixels, so one weight means
the same at every upsample factor), grad the forward differences along rows and columns (no wrap) and
`prior` a face the attacker may hold, such as the mean of public faces (None: zeros, and the
smoothness term is the plain ||grad x||^2). Smoothing the deviation from the prior rather than x is
deliberate: the mean face's own edges are real, and penalising them pulled the attack below the
prior alone (hf_only, upsample 1: 11.1 dB against 12.5 dB for the prior). The normal equations are
solved by conjugate gradients, matrix-free and batched. Two exact identities make that cheap: the
view's Gram matrix is colour_gram kron plane_gram, so rotating the colours onto colour_gram's
eigenvectors splits each image into 3 independent systems (the regularisers are rotation invariant);
and the Neumann Laplacian is diagonal in the 2-D DCT-II basis, where the Gram's diagonal is also
exact to compute, which gives a Jacobi preconditioner in that basis (used for upsample > 1).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from fedsplit.privacy.operator import ServerView

# Defaults, tuned on 4 synthetic faces with the mean of 32 other synthetic faces as the prior, on
# hf_only's planes (the informed attacker's hard case; fd_all is exact whatever the weights).
# - Tiny weights: the planes are exact up to float32 rounding, so the attacker should trust them and
#   use the regularisers only to fill the view's null space. At upsample 8, 200 steps: smoothness
#   1e-9 -> 28.4 dB, 1e-6 -> 19.8 dB, 1e-4 -> 12.5 dB (the prior alone: 11.8 dB).
# - Few steps: with weights this small the exact minimiser amplifies the float32 rounding along
#   barely measured directions, and CG semi-converges: upsample 4 gives 26.1 dB after 50 steps but
#   18.0 dB after 200 (upsample 2: 17.1 -> 15.8). Stopping early is part of the regularisation.
DEFAULT_SMOOTHNESS = 1e-9
DEFAULT_PRIOR_WEIGHT = 1e-10
DEFAULT_ITERS = 50
DEFAULT_TOL = 1e-6


def analytic_inversion(
    planes: torch.Tensor,
    channels: tuple[int, ...],
    upsample: int,
    *,
    smoothness: float = DEFAULT_SMOOTHNESS,
    prior: torch.Tensor | None = None,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
    iters: int = DEFAULT_ITERS,
    tol: float = DEFAULT_TOL,
    clamp: bool = True,
) -> torch.Tensor:
    """Faces (B,3,H,W) float32 on the [-1,1] scale that best explain planes (B, 3*n, h, w) of `channels`.

    `prior` is (3,H,W) or (B,3,H,W) on the [-1,1] scale; None is mid-grey (zeros). `clamp` clips the
    answer to [-1,1], which the attacker knows real pixels lie in. CG stops per image and colour when
    its residual falls below `tol` times its right-hand side, or after `iters` steps.
    """
    for name, value in (("smoothness", smoothness), ("prior_weight", prior_weight), ("tol", tol)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be an integer >= 1, got {iters!r}")
    if not isinstance(planes, torch.Tensor) or planes.ndim != 4:
        raise ValueError(f"planes must be a (B, 3*n, h, w) torch.Tensor, got {getattr(planes, 'shape', planes)!r}")
    if planes.shape[2] != planes.shape[3]:
        raise ValueError(f"planes must be square, got {planes.shape[2]}x{planes.shape[3]}")
    size = planes.shape[2] * 8 // upsample if upsample else 0
    view = _view(tuple(channels), upsample, size)
    target = view._check_planes(planes) - view.offset
    prior_x = _check_prior(prior, planes.shape[0], size)
    if smoothness == 0 and prior_weight == 0 and len(view.channels) < 64:
        raise ValueError("a partial view needs smoothness > 0 or prior_weight > 0: its normal equations are singular")

    gain = 1.0 / (127.5 * view.upsample) ** 2
    rhs = gain * view.adjoint(target) + smoothness * _laplacian(prior_x) + prior_weight * prior_x
    # Rotate the colours onto colour_gram's eigenvectors: the systems decouple (see the module docstring).
    lam, vecs = torch.linalg.eigh(view.colour_gram())
    rotate = lambda x: torch.einsum("co,bchw->bohw", vecs, x)  # noqa: E731 - x = V z  =>  z = V^T x
    unrotate = lambda z: torch.einsum("oc,bchw->bohw", vecs, z)  # noqa: E731
    scale = (gain * lam).view(1, 3, 1, 1)

    def system(z: torch.Tensor) -> torch.Tensor:
        return scale * view.plane_gram(z) + smoothness * _laplacian(z) + prior_weight * z

    # At upsample 1 blocks do not overlap and each block's DCT is orthonormal, so the Gram is a scaled
    # orthogonal projector: plain CG converges in a few steps, and the DCT-basis preconditioner would
    # only blow up the null space (10.2 dB against 11.9 dB plain). Upsampled views have a wide spectrum.
    precondition = _preconditioner(view, scale, smoothness, prior_weight) if view.upsample > 1 else None
    z = _conjugate_gradients(system, rotate(rhs), rotate(prior_x), precondition, iters, tol)
    x = unrotate(z)
    return (x.clamp(-1.0, 1.0) if clamp else x).float()


def gradient_penalty(images: torch.Tensor) -> torch.Tensor:
    """||grad x||^2 per image: squared forward differences along rows and columns, no wrap-around."""
    dr = images[..., 1:, :] - images[..., :-1, :]
    dc = images[..., :, 1:] - images[..., :, :-1]
    return dr.square().flatten(1).sum(1) + dc.square().flatten(1).sum(1)


@functools.lru_cache(maxsize=16)
def _view(channels: tuple[int, ...], upsample: int, size: int) -> ServerView:
    return ServerView(channels, upsample, size)


def _check_prior(prior: torch.Tensor | None, batch: int, size: int) -> torch.Tensor:
    if prior is None:
        return torch.zeros(batch, 3, size, size, dtype=torch.float64)
    if not isinstance(prior, torch.Tensor) or not prior.is_floating_point():
        raise ValueError(f"prior must be a floating-point torch.Tensor (3,H,W) or (B,3,H,W), got {type(prior).__name__}")
    p = prior.detach().to("cpu", torch.float64)
    if p.ndim == 3:
        p = p.unsqueeze(0)
    if p.ndim != 4 or tuple(p.shape[1:]) != (3, size, size) or p.shape[0] not in (1, batch):
        raise ValueError(f"prior must be (3, {size}, {size}) or ({batch}, 3, {size}, {size}), got {tuple(prior.shape)}")
    if not torch.isfinite(p).all():
        raise ValueError("prior contains NaN or infinite values")
    return p.expand(batch, -1, -1, -1).contiguous()


def _laplacian(x: torch.Tensor) -> torch.Tensor:
    """The Hessian of gradient_penalty / 2 applied to x: D^T D along each axis (Neumann ends)."""
    out = torch.zeros_like(x)
    dr = x[..., 1:, :] - x[..., :-1, :]
    out[..., 1:, :] += dr
    out[..., :-1, :] -= dr
    dc = x[..., :, 1:] - x[..., :, :-1]
    out[..., :, 1:] += dc
    out[..., :, :-1] -= dc
    return out


def _dct_basis(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix (n, n): its rows diagonalise the 1-D Neumann Laplacian."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return torch.from_numpy(d)


def _preconditioner(view: ServerView, scale: torch.Tensor, smoothness: float, prior_weight: float):
    """Inverse of the system's diagonal in the 2-D DCT-II basis (exact for the two regularisers)."""
    n = view.size
    phi = _dct_basis(n)
    lap = torch.from_numpy(2.0 - 2.0 * np.cos(np.pi * np.arange(n) / n))  # eigenvalues of D^T D
    diag_gram = torch.zeros(n, n, dtype=torch.float64)
    for p_u, r_u in view.gram_terms():
        diag_gram += torch.outer(torch.diagonal(phi @ p_u @ phi.T), torch.diagonal(phi @ r_u @ phi.T))
    diag = scale * diag_gram + smoothness * (lap[:, None] + lap[None, :]) + prior_weight  # (1, 3, n, n)
    # A partial view with no regulariser has zeros here; those directions are not reachable anyway.
    inv = torch.where(diag > 0, 1.0 / diag.clamp_min(1e-300), torch.zeros_like(diag))

    def apply(r: torch.Tensor) -> torch.Tensor:
        return phi.T @ ((phi @ r @ phi.T) * inv) @ phi

    return apply


def _conjugate_gradients(system, rhs: torch.Tensor, x0: torch.Tensor, precondition, iters: int, tol: float) -> torch.Tensor:  # noqa: E501
    """Preconditioned CG on every (image, colour) system at once, each with its own step sizes."""
    dot = lambda a, b: (a * b).sum(dim=(-2, -1), keepdim=True)  # noqa: E731 - one scalar per system
    x = x0.clone()
    r = rhs - system(x)
    precondition = precondition or (lambda v: v)
    z = precondition(r)
    p = z.clone()
    rz = dot(r, z)
    limit = tol * dot(rhs, rhs).sqrt()
    for _ in range(iters):
        active = dot(r, r).sqrt() > limit
        if not active.any():
            break
        ap = system(p)
        pap = dot(p, ap)
        alpha = torch.where(active & (pap > 0), rz / pap.where(pap > 0, torch.ones_like(pap)), torch.zeros_like(pap))
        x += alpha * p
        r -= alpha * ap
        z = precondition(r)
        rz_next = dot(r, z)
        beta = torch.where(active & (rz > 0), rz_next / rz.where(rz > 0, torch.ones_like(rz)), torch.zeros_like(rz))
        p = z + beta * p
        rz = rz_next
    return x


__all__ = ["DEFAULT_ITERS", "DEFAULT_PRIOR_WEIGHT", "DEFAULT_SMOOTHNESS", "DEFAULT_TOL", "analytic_inversion",
           "gradient_penalty"]
