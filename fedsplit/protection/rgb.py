"""`rgb`: no protection. The server receives the face itself (the ArcFace baseline)."""

from __future__ import annotations

import torch

from fedsplit.data.types import FACE_SIZE
from fedsplit.models import build_server
from fedsplit.protection.base import ClientNet, Field, ServerNet, Strategy, register


@register
class RGB(Strategy):
    """The image as uint8 RGB, exactly the bytes of the raw face."""

    name = "rgb"
    description = "server receives the raw image (no protection)"

    def spec(self) -> dict[str, Field]:
        """One uint8 image per sample."""
        return {"image": Field((3, FACE_SIZE, FACE_SIZE), torch.uint8, "image")}

    def encode(self, images: torch.Tensor, landmarks: torch.Tensor, client: ClientNet | None) -> dict[str, torch.Tensor]:
        """[-1,1] floats back to the bytes a camera would give."""
        return {"image": images.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)}

    def server_net(self, client_map_channels: tuple[int, ...] = ()) -> ServerNet:
        """IResNet on 3 channels at 112x112."""
        m = self.model
        backbone = build_server(m.server, 3, FACE_SIZE, m.server_width, m.embedding)
        return ServerNet(backbone, "image", 3, normalise=False)
