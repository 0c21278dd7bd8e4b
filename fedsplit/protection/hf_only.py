"""`hf_only`: the server receives only the high-frequency planes, no masks."""

from __future__ import annotations

import torch

from fedsplit.frequency import dct_split
from fedsplit.protection.base import ClientNet, Field, ServerNet, Strategy, register


@register
class HFOnly(Strategy):
    """The 162 server planes (by default) and nothing else."""

    name = "hf_only"
    description = "server receives the high-frequency DCT planes only"

    def spec(self) -> dict[str, Field]:
        """3 * len(server_channels) float32 planes per sample."""
        return {"server_channels": Field((3 * len(self.server_channels), self.size, self.size), torch.float32,
                                         "server_channels")}

    def encode(self, images: torch.Tensor, landmarks: torch.Tensor, client: ClientNet | None) -> dict[str, torch.Tensor]:
        """The server half of the split; the client half is not computed into the payload."""
        return {"server_channels": dct_split(images, self.client_channels, self.upsample)[1]}

    def server_net(self, client_map_channels: tuple[int, ...] = ()) -> ServerNet:
        """IResNet on the server planes."""
        c = 3 * len(self.server_channels)
        return ServerNet(self._frequency_server(c), "server_channels", c, normalise=True)
