"""The protection-strategy interface: what a client computes from a face, sends, and what the server runs on it.

Where tensors go: images (B,3,112,112) in [-1,1] and landmarks (B,68,2) are made by the data layer on
the client. `Strategy.encode` turns them into the payload, a dict of tensors whose keys, per-sample
shapes and dtypes are declared by `Strategy.spec` (that dict is everything that leaves the client,
labels aside). The server calls `ServerNet.forward(payload)`, which returns embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from fedsplit.config import ModelConfig, ProtectionConfig
from fedsplit.data.types import FACE_SIZE
from fedsplit.frequency import NUM_FREQUENCIES, dct_split, server_channels
from fedsplit.models import build_client, build_server

STRATEGIES: dict[str, type["Strategy"]] = {}


def register(cls: type["Strategy"]) -> type["Strategy"]:
    """Class decorator: make a strategy available under its `name`."""
    if cls.name in STRATEGIES:
        raise ValueError(f"protection strategy {cls.name!r} is defined twice")
    STRATEGIES[cls.name] = cls
    return cls


@dataclass(frozen=True)
class Field:
    """One payload entry: per-sample shape, dtype, and the part it is counted under in byte reports."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    part: str  # e.g. 'image', 'server_channels', 'masks', 'feature_maps', 'roi'

    def bytes_per_sample(self) -> int:
        """Bytes of one sample of this entry as it would travel (raw tensor data)."""
        n = 1
        for s in self.shape:
            n *= s
        return n * torch.empty(0, dtype=self.dtype).element_size()


def plane_size(upsample: int) -> int:
    """Side of a frequency plane: 112 pixels, upsampled, in 8x8 blocks."""
    return FACE_SIZE * upsample // 8


class ClientNet(nn.Module):
    """The client model on the client's frequency planes, behind a per-channel input normalisation."""

    def __init__(self, protection: ProtectionConfig, model: ModelConfig) -> None:
        """Build the configured client model for 3 * len(client_channels) planes."""
        super().__init__()
        channels = 3 * len(protection.client_channels)
        # DCT planes differ by orders of magnitude (DC ~1e3, high frequencies ~1): BN evens them out.
        self.norm = nn.BatchNorm2d(channels)
        self.body = build_client(model.client, channels, plane_size(protection.upsample), model.client_width,
                                 model.client_embedding)

    @property
    def map_channels(self) -> tuple[int, ...]:
        """Channels of the four intermediate maps that feed the masks."""
        return tuple(self.body.map_channels)

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        """Embedding of the client planes."""
        return self.body(self.norm(planes))

    def forward_maps(self, planes: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Embedding and the four intermediate maps."""
        return self.body.forward_maps(self.norm(planes))


class ServerNet(nn.Module):
    """The server backbone on one payload: reads `input_key`, optional masks, returns embeddings."""

    def __init__(self, backbone: nn.Module, input_key: str, in_channels: int, normalise: bool,
                 mask_keys: tuple[str, ...] = (), roi_key: str | None = None) -> None:
        """Wrap a backbone; normalise adds a per-channel BatchNorm for frequency planes."""
        super().__init__()
        self.input_key = input_key
        self.mask_keys = mask_keys
        self.roi_key = roi_key
        self.norm = nn.BatchNorm2d(in_channels) if normalise else nn.Identity()
        self.backbone = backbone

    def forward(self, payload: dict[str, torch.Tensor]) -> torch.Tensor:
        """Embeddings (B, embedding) of a payload."""
        x = payload[self.input_key]
        if x.dtype == torch.uint8:  # an image as it travels: bytes back to [-1, 1]
            x = x.float().div_(127.5).sub_(1.0)
        x = self.norm(x)
        if not self.mask_keys:
            return self.backbone(x)
        masks = [payload[k] for k in self.mask_keys]
        if self.roi_key is not None:
            masks = [(m, payload[self.roi_key]) for m in masks]
        return self.backbone(x, masks)


class Strategy:
    """Base of the protection strategies; one subclass per file in fedsplit/protection/."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    uses_client_model: ClassVar[bool] = False  # True: the payload depends on the (frozen) client model

    def __init__(self, protection: ProtectionConfig, model: ModelConfig) -> None:
        """Keep the settings; strategies derive their shapes from them."""
        self.protection = protection
        self.model = model
        self.client_channels = tuple(protection.client_channels)
        self.server_channels = server_channels(self.client_channels)
        self.upsample = protection.upsample
        self.size = plane_size(protection.upsample)

    # --- client side -------------------------------------------------------------------------
    def spec(self) -> dict[str, Field]:
        """Every payload key with its per-sample shape and dtype: the whole of what leaves a client."""
        raise NotImplementedError

    def encode(self, images: torch.Tensor, landmarks: torch.Tensor, client: ClientNet | None) -> dict[str, torch.Tensor]:
        """The payload of a batch of images (B,3,112,112) in [-1,1] with landmarks (B,68,2)."""
        raise NotImplementedError

    # --- server side -------------------------------------------------------------------------
    def server_net(self, client_map_channels: tuple[int, ...] = ()) -> ServerNet:
        """A fresh server model that consumes this strategy's payloads."""
        raise NotImplementedError

    # --- shared helpers ----------------------------------------------------------------------
    def client_planes(self, images: torch.Tensor) -> torch.Tensor:
        """The client's own frequency planes (B, 3*len(client_channels), s, s): the client model's input."""
        return dct_split(images, self.client_channels, self.upsample)[0]

    def _frequency_server(self, in_channels: int, interactive: bool = False,
                          mask_channels: tuple[int, ...] | None = None) -> nn.Module:
        m = self.model
        return build_server(m.server, in_channels, self.size, m.server_width, m.embedding,
                            interactive=interactive, mask_channels=mask_channels)

    def payload_bytes_per_sample(self) -> int:
        """Bytes one sample's payload weighs, from the spec (labels not included)."""
        return sum(f.bytes_per_sample() for f in self.spec().values())

    def check(self, payload: dict[str, torch.Tensor], where: str = "payload") -> int:
        """Validate a payload against the spec (keys, shapes, dtypes, finite); return its batch size."""
        spec = self.spec()
        if not isinstance(payload, dict):
            raise ValueError(f"{where}: expected a dict of tensors, got {type(payload).__name__}")
        missing, extra = sorted(set(spec) - set(payload)), sorted(set(payload) - set(spec))
        if missing or extra:
            raise ValueError(f"{where}: keys do not match strategy {self.name!r} (missing {missing}, unexpected {extra})")
        batch = None
        for key, field in spec.items():
            t = payload[key]
            if not isinstance(t, torch.Tensor):
                raise ValueError(f"{where}[{key!r}]: expected a tensor, got {type(t).__name__}")
            if t.dtype != field.dtype or tuple(t.shape[1:]) != field.shape:
                raise ValueError(f"{where}[{key!r}]: expected {field.dtype} (B, {', '.join(map(str, field.shape))}), "
                                 f"got {t.dtype} {tuple(t.shape)}")
            if batch is None:
                batch = t.shape[0]
            elif t.shape[0] != batch:
                raise ValueError(f"{where}[{key!r}]: batch {t.shape[0]} differs from {batch} in the other entries")
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ValueError(f"{where}[{key!r}]: contains NaN or inf")
        return int(batch or 0)


def channels_in(channels: tuple[int, ...]) -> int:
    """Number of planes for a per-colour channel set."""
    return 3 * len(channels)


__all__ = ["STRATEGIES", "ClientNet", "Field", "NUM_FREQUENCIES", "ServerNet", "Strategy", "channels_in",
           "plane_size", "register"]


# Payload parts that client noise perturbs: the face's own content. Masks, maps and the ROI are the
# client model's output, not the face, and stay as they are.
NOISY_PARTS = ("image", "all_channels", "server_channels")


def add_noise(strategy: Strategy, payload: dict[str, torch.Tensor], sigma: torch.Tensor | float,
              generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """The payload with N(0, sigma^2) added to its face content, sigma per sample (or one for all).

    Units are those of the payload: grey levels (0-255) for images, and the same for DCT planes, whose
    orthonormal transform keeps a pixel-level noise level. uint8 images are rounded and clipped back.
    """
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    if not bool(torch.isfinite(sigma).all()) or bool((sigma < 0).any()):
        raise ValueError(f"noise sigma must be finite and >= 0, got {sigma.tolist()}")
    if not bool((sigma > 0).any()):
        return payload
    out = dict(payload)
    for key, field in strategy.spec().items():
        if field.part not in NOISY_PARTS:
            continue
        t = payload[key]
        s = (sigma.expand(t.shape[0]) if sigma.ndim == 0 else sigma).to(t.device).view(-1, *([1] * (t.ndim - 1)))
        noise = torch.randn(t.shape, generator=generator, dtype=torch.float64).to(t.device) * s
        if t.dtype == torch.uint8:
            out[key] = (t.double() + noise).round().clamp(0, 255).to(torch.uint8)
        else:
            out[key] = (t.double() + noise).to(t.dtype)
    return out
