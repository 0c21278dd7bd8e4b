"""`fd_all`: the server receives all 192 frequency planes (ArcFace-FD): a different basis, no protection."""

from __future__ import annotations

import torch

from fedsplit.frequency import NUM_FREQUENCIES, block_dct
from fedsplit.protection.base import ClientNet, Field, ServerNet, Strategy, register


@register
class FDAll(Strategy):
    """Every DCT plane of every colour, colour first then ascending k."""

    name = "fd_all"
    description = "server receives all 192 DCT planes (ArcFace-FD)"

    def spec(self) -> dict[str, Field]:
        """192 float32 planes per sample."""
        return {"planes": Field((3 * NUM_FREQUENCIES, self.size, self.size), torch.float32, "all_channels")}

    def encode(self, images: torch.Tensor, landmarks: torch.Tensor, client: ClientNet | None) -> dict[str, torch.Tensor]:
        """block_dct flattened to (B, 192, s, s)."""
        coeffs = block_dct(images, self.upsample)
        return {"planes": coeffs.reshape(coeffs.shape[0], 3 * NUM_FREQUENCIES, self.size, self.size)}

    def server_net(self, client_map_channels: tuple[int, ...] = ()) -> ServerNet:
        """IResNet on 192 planes."""
        c = 3 * NUM_FREQUENCIES
        return ServerNet(self._frequency_server(c), "planes", c, normalise=True)
