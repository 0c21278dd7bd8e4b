"""`duetface`: high-frequency planes plus feature masks from the frozen client model (Mi et al., 2022).

mask_source 'paper' (default): per server stage one (1, h, w) mask in [0,1], the client's
intermediate map averaged over channels, cut to the facial ROI and normalised; the server overlays it
as sigmoid(F) * (1 + w * M). mask_source 'feature_maps' (the official code): the client sends its raw
intermediate maps and the ROI, and the server learns a 1x1 projection before making the mask; many
times more bytes.
"""

from __future__ import annotations

import torch

from fedsplit.data.roi import roi_masks
from fedsplit.data.types import FACE_SIZE
from fedsplit.frequency import dct_split
from fedsplit.models import client_masks, stage_sizes
from fedsplit.protection.base import ClientNet, Field, ServerNet, Strategy, register

_STAGES = 4


@register
class DuetFace(Strategy):
    """Server planes and masks; nothing of the client planes or pixels."""

    name = "duetface"
    description = "server receives high-frequency DCT planes and ROI-cropped feature masks"
    uses_client_model = True

    def __init__(self, protection, model) -> None:  # noqa: ANN001 - config dataclasses
        """Fix the mask sizes: those of the server stages for this plane size."""
        super().__init__(protection, model)
        self.sizes = stage_sizes(self.size)
        self._map_shapes: tuple[tuple[int, int, int], ...] | None = None

    def _raw_map_shapes(self) -> tuple[tuple[int, int, int], ...]:
        # The client model's maps have the server stage sizes (same stride rule) and its map channels.
        if self._map_shapes is None:
            client = ClientNet(self.protection, self.model)
            self._map_shapes = tuple((c, s, s) for c, s in zip(client.map_channels, self.sizes))
        return self._map_shapes

    def spec(self) -> dict[str, Field]:
        """server_channels plus mask_0..3 (paper) or map_0..3 and roi (feature_maps)."""
        spec = {"server_channels": Field((3 * len(self.server_channels), self.size, self.size), torch.float32,
                                         "server_channels")}
        if self.protection.mask_source == "paper":
            for i, s in enumerate(self.sizes):
                spec[f"mask_{i}"] = Field((1, s, s), torch.float32, "masks")
        else:
            for i, shape in enumerate(self._raw_map_shapes()):
                spec[f"map_{i}"] = Field(shape, torch.float32, "feature_maps")
            spec["roi"] = Field((1, FACE_SIZE, FACE_SIZE), torch.float32, "roi")
        return spec

    @torch.no_grad()
    def encode(self, images: torch.Tensor, landmarks: torch.Tensor, client: ClientNet | None) -> dict[str, torch.Tensor]:
        """Split, run the frozen client model on the client planes, and build the masks."""
        if client is None:
            raise ValueError("duetface needs the client model to make its masks")
        client_planes, server_planes = dct_split(images, self.client_channels, self.upsample)
        was_training = client.training
        client.eval()  # frozen: running statistics, not the batch's
        _, maps = client.forward_maps(client_planes)
        client.train(was_training)
        roi = roi_masks(landmarks.to(images.device), size=FACE_SIZE)
        payload = {"server_channels": server_planes}
        if self.protection.mask_source == "paper":
            for i, m in enumerate(client_masks(maps, roi, self.sizes)):
                payload[f"mask_{i}"] = m.contiguous()
        else:
            for i, m in enumerate(maps):
                payload[f"map_{i}"] = m.contiguous()
            payload["roi"] = roi
        return payload

    def server_net(self, client_map_channels: tuple[int, ...] = ()) -> ServerNet:
        """IResNet with an interactive block at the end of each stage."""
        c = 3 * len(self.server_channels)
        if self.protection.mask_source == "paper":
            backbone = self._frequency_server(c, interactive=True)
            return ServerNet(backbone, "server_channels", c, normalise=True,
                             mask_keys=tuple(f"mask_{i}" for i in range(_STAGES)))
        channels = tuple(shape[0] for shape in self._raw_map_shapes())
        backbone = self._frequency_server(c, interactive=True, mask_channels=channels)
        return ServerNet(backbone, "server_channels", c, normalise=True,
                         mask_keys=tuple(f"map_{i}" for i in range(_STAGES)), roi_key="roi")
