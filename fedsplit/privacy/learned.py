"""Learned inversion: a U-Net decoder the server trains on auxiliary faces to map payloads back to faces.

Threat model: the server knows the whole pipeline, so it can encode public faces of other people into
payloads itself and fit a decoder payload -> face on them (Adam, L1 on the [-1,1] scale). The same
architecture, budget and auxiliary data serve every strategy, so reconstructions are comparable.

Input planes differ by orders of magnitude per channel (DC ~1e3, high frequencies ~1): a `Normaliser`
fitted on the auxiliary inputs evens them out. `train_inversion` fits one inside the net, so `invert`
takes raw payload tensors.

Default budget: DEFAULT_STEPS=150 Adam steps of DEFAULT_BATCH=32 at width 32 (~2.5 epochs of 1,920
auxiliary faces). Measured at upsample 1 (162 planes of 14x14): 261 CPU-seconds in all, so about 2-4
minutes on two idle cores; on the shared 2-core VM under load ~12 it took 16 minutes of wall time. The
cost sits in the 56x56 and 112x112 levels, so it barely depends on the plane size or width. This budget
is a floor, not a strong attack: on hf_only it does not yet beat the mean face (12.9 vs 13.0 dB PSNR).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fedsplit.data.types import FACE_SIZE
from fedsplit.models.layout import SUPPORTED_INPUT_SIZES
from fedsplit.training import lr_at

DEFAULT_WIDTH = 32
DEFAULT_STEPS = 150
DEFAULT_BATCH = 32
DEFAULT_LR = 2e-3
# The U-Net's levels, finest first; the coarsest one is the bottleneck.
LEVELS: tuple[int, ...] = (112, 56, 28, 14, 7)
# A constant channel would divide by zero; this floor keeps it at (x - mean) instead.
_STD_FLOOR = 1e-6


class Normaliser(nn.Module):
    """Per-channel (x - mean) / std with statistics fitted on the attacker's auxiliary inputs."""

    def __init__(self, channels: int) -> None:
        """Identity until fitted: mean 0, std 1 for every channel."""
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    @torch.no_grad()
    def fit(self, x: Tensor) -> Normaliser:
        """Set mean and std per channel from a (N, C, h, w) tensor; returns self."""
        if x.dim() != 4 or x.shape[1] != self.mean.numel():
            raise ValueError(f"Normaliser.fit: expected (N, {self.mean.numel()}, h, w), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("Normaliser.fit: no samples")
        x64 = x.detach().to(torch.float64)
        self.mean.copy_(x64.mean(dim=(0, 2, 3)))
        self.std.copy_(x64.std(dim=(0, 2, 3), unbiased=False).clamp_min(_STD_FLOOR))
        return self

    def forward(self, x: Tensor) -> Tensor:
        """Normalised x."""
        if x.dim() != 4 or x.shape[1] != self.mean.numel():
            raise ValueError(f"Normaliser: expected (B, {self.mean.numel()}, h, w), got {tuple(x.shape)}")
        return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)


def payload_tensor(payload: dict[str, Tensor], keys: Sequence[str], normaliser: Normaliser | None = None) -> Tensor:
    """Stack payload entries (B,C_i,h_i,w_i) as float32 at the first key's size (others resized bilinearly)."""
    if not keys:
        raise ValueError("payload_tensor: no keys given")
    missing = [k for k in keys if k not in payload]
    if missing:
        raise ValueError(f"payload_tensor: payload lacks {missing}; it has {sorted(payload)}")
    first = payload[keys[0]]
    if first.dim() != 4 or first.shape[-1] != first.shape[-2] or first.shape[-1] not in SUPPORTED_INPUT_SIZES:
        raise ValueError(f"payload_tensor: {keys[0]!r} must be (B, C, s, s) with s in {SUPPORTED_INPUT_SIZES}, "
                         f"got {tuple(first.shape)}")
    size = first.shape[-1]
    parts = []
    for key in keys:
        t = payload[key]
        if t.dim() != 4 or t.shape[0] != first.shape[0]:
            raise ValueError(f"payload_tensor: {key!r} must be (B={first.shape[0]}, C, h, w), got {tuple(t.shape)}")
        t = t.float()
        if tuple(t.shape[-2:]) != (size, size):
            # Masks are coarser than the planes (stage sizes); bilinear keeps them smooth, as the server uses them.
            t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
        parts.append(t)
    x = torch.cat(parts, dim=1)
    return x if normaliser is None else normaliser(x)


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """conv3x3(stride)-BN-ReLU-conv3x3-BN-ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


def level_channels(width: int) -> dict[int, int]:
    """Channels per U-Net level: `width` at 14x14, doubled at 7x7, halved per finer level (at least 8)."""
    if width < 8:
        raise ValueError(f"width must be at least 8, got {width}")
    return {size: max(8, width * 14 // size) if size >= 14 else 2 * width for size in LEVELS}


class InversionNet(nn.Module):
    """U-Net decoder: payload (B, C, s, s), optional extra (B, E, 112, 112) -> face (B, 3, 112, 112) in [-1, 1]."""

    def __init__(self, in_channels: int, in_size: int, extra_channels: int = 0, width: int = DEFAULT_WIDTH) -> None:
        """Encoder from s down to 7x7 (and from 112 down to s for the extra input), decoder 7 -> 112 with skips."""
        super().__init__()
        if in_size not in SUPPORTED_INPUT_SIZES:
            raise ValueError(f"in_size must be one of {SUPPORTED_INPUT_SIZES}, got {in_size}")
        if in_channels < 1 or extra_channels < 0:
            raise ValueError(f"need in_channels >= 1 and extra_channels >= 0, got {in_channels}, {extra_channels}")
        self.in_channels, self.in_size, self.extra_channels, self.width = in_channels, in_size, extra_channels, width
        ch = level_channels(width)
        self.normaliser = Normaliser(in_channels)
        self.extra_normaliser = Normaliser(extra_channels) if extra_channels else None
        self.stem = _block(in_channels, ch[in_size])
        # The extra input lives at 112: it gets its own path down to s, giving skips at the finer levels.
        finer = [s for s in LEVELS if s > in_size]
        self.extra_down = nn.ModuleList()
        self.fuse: nn.Module | None = None
        if extra_channels:
            self.extra_stem = _block(extra_channels, ch[FACE_SIZE])
            path = [FACE_SIZE, *[s for s in LEVELS if in_size <= s < FACE_SIZE]]
            self.extra_down = nn.ModuleList(_block(ch[a], ch[b], 2) for a, b in zip(path[:-1], path[1:]))
            self.fuse = nn.Sequential(nn.Conv2d(2 * ch[in_size], ch[in_size], 1, bias=False),
                                      nn.BatchNorm2d(ch[in_size]), nn.ReLU(inplace=True))
        coarser = [s for s in LEVELS if s < in_size]
        self.down = nn.ModuleList(_block(ch[2 * s], ch[s], 2) for s in coarser)
        skipped = {s for s in LEVELS[:-1] if s <= in_size} | (set(finer) if extra_channels else set())
        self.up = nn.ModuleList(
            _block(ch[s // 2] + (ch[s] if s in skipped else 0), ch[s]) for s in reversed(LEVELS[:-1])
        )
        self.skipped = tuple(sorted(skipped))
        self.head = nn.Conv2d(ch[FACE_SIZE], 3, 1)

    def forward(self, x: Tensor, extra: Tensor | None = None) -> Tensor:
        """Reconstructed faces (B, 3, 112, 112) in [-1, 1]."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.in_channels, self.in_size, self.in_size):
            raise ValueError(f"InversionNet: expected input (B, {self.in_channels}, {self.in_size}, {self.in_size}), "
                             f"got {tuple(x.shape)}")
        if (extra is None) != (self.extra_channels == 0):
            raise ValueError(f"InversionNet built with extra_channels={self.extra_channels}; "
                             f"extra input {'missing' if extra is None else 'given'}")
        skips: dict[int, Tensor] = {}
        h = self.stem(self.normaliser(x))
        if extra is not None:
            want = (x.shape[0], self.extra_channels, FACE_SIZE, FACE_SIZE)
            if tuple(extra.shape) != want:
                raise ValueError(f"InversionNet: expected extra {want}, got {tuple(extra.shape)}")
            e = self.extra_stem(self.extra_normaliser(extra.float()))
            for block in self.extra_down:
                skips[e.shape[-1]] = e
                e = block(e)
            h = self.fuse(torch.cat([h, e], dim=1))
        for block in self.down:
            skips[h.shape[-1]] = h
            h = block(h)
        for block in self.up:
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            skip = skips.get(h.shape[-1])
            h = block(h if skip is None else torch.cat([h, skip], dim=1))
        return torch.tanh(self.head(h))


def _check_pairs(inputs: Tensor, targets: Tensor, extra: Tensor | None) -> None:
    """Refuse mismatched training data with a message naming the culprit."""
    if inputs.dim() != 4 or inputs.shape[-1] != inputs.shape[-2]:
        raise ValueError(f"inputs must be (N, C, s, s), got {tuple(inputs.shape)}")
    if tuple(targets.shape[1:]) != (3, FACE_SIZE, FACE_SIZE) or targets.shape[0] != inputs.shape[0]:
        raise ValueError(f"targets must be ({inputs.shape[0]}, 3, {FACE_SIZE}, {FACE_SIZE}), "
                         f"got {tuple(targets.shape)}")
    if not targets.is_floating_point() or targets.min() < -1.0 - 1e-6 or targets.max() > 1.0 + 1e-6:
        raise ValueError("targets must be float faces on the [-1, 1] scale")
    if extra is not None and (extra.dim() != 4 or extra.shape[0] != inputs.shape[0]
                              or tuple(extra.shape[-2:]) != (FACE_SIZE, FACE_SIZE)):
        raise ValueError(f"extra must be ({inputs.shape[0]}, E, {FACE_SIZE}, {FACE_SIZE}), got {tuple(extra.shape)}")
    for name, t in (("inputs", inputs), ("targets", targets), ("extra", extra)):
        if t is not None and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contain NaN or inf")


def train_inversion(inputs: Tensor, targets: Tensor, *, extra: Tensor | None = None, steps: int = DEFAULT_STEPS,
                    batch_size: int = DEFAULT_BATCH, lr: float = DEFAULT_LR, seed: int = 0, width: int = DEFAULT_WIDTH,
                    log_every: int = 50, log: Callable[[str], None] = print) -> InversionNet:
    """Fit an InversionNet on (payload tensor, face) pairs: Adam, L1, cosine lr, seeded; returns it in eval mode."""
    _check_pairs(inputs, targets, extra)
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    n = inputs.shape[0]
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = InversionNet(inputs.shape[1], inputs.shape[-1], 0 if extra is None else extra.shape[1], width)
    net.normaliser.fit(inputs)
    if extra is not None:
        net.extra_normaliser.fit(extra)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    order, pos = rng.permutation(n), 0
    start, running, counted = time.perf_counter(), 0.0, 0
    for step in range(steps):
        # Epoch-wise permutations: every auxiliary face is seen once before any is seen twice.
        if pos + batch_size > n:
            order, pos = rng.permutation(n), 0
        idx = torch.from_numpy(order[pos : pos + batch_size])
        pos += batch_size
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, "cosine")
        out = net(inputs[idx], None if extra is None else extra[idx])
        loss = F.l1_loss(out, targets[idx])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"inversion L1 loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running, counted = running + loss.item(), counted + 1
        if (step + 1) % log_every == 0 or step + 1 == steps:
            log(f"inversion step {step + 1}/{steps}: L1 {running / counted:.4f} ({time.perf_counter() - start:.0f} s)")
            running, counted = 0.0, 0
    return net.eval()


@torch.no_grad()
def invert(net: InversionNet, inputs: Tensor, extra: Tensor | None = None, batch_size: int = 64) -> Tensor:
    """Reconstructed faces (N, 3, 112, 112) in [-1, 1] from payload tensors, in eval mode."""
    if extra is not None and extra.shape[0] != inputs.shape[0]:
        raise ValueError(f"extra has {extra.shape[0]} samples, inputs {inputs.shape[0]}")
    was_training = net.training
    net.eval()
    try:
        out = [net(inputs[i : i + batch_size], None if extra is None else extra[i : i + batch_size])
               for i in range(0, inputs.shape[0], batch_size)]
    finally:
        net.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 3, FACE_SIZE, FACE_SIZE)


__all__ = ["DEFAULT_BATCH", "DEFAULT_LR", "DEFAULT_STEPS", "DEFAULT_WIDTH", "InversionNet", "Normaliser", "invert",
           "level_channels", "payload_tensor", "train_inversion"]
