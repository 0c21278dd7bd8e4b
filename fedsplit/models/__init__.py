"""Client and server networks, DuetFace interactive blocks, margin heads and cost counters."""

from __future__ import annotations

from fedsplit.models.cost import count_macs, count_params
from fedsplit.models.heads import ArcFace, CosFace, make_head
from fedsplit.models.interactive import InteractiveBlock, client_masks, normalise_per_sample
from fedsplit.models.iresnet import IResNet
from fedsplit.models.layout import SUPPORTED_INPUT_SIZES, scale_channels, stage_sizes, stride_plan
from fedsplit.models.mobilefacenet import MobileFaceNet

SERVER_DEPTHS: dict[str, int] = {"ir18": 18, "ir34": 34, "ir50": 50}
CLIENT_NAMES: tuple[str, ...] = ("mobilefacenet",)


def build_server(
    depth_name: str,
    in_channels: int,
    input_size: int,
    width: float,
    embedding: int,
    interactive: bool = False,
    mask_channels: tuple[int, ...] | None = None,
) -> IResNet:
    """Build the server IResNet named "ir18", "ir34" or "ir50"."""
    if depth_name not in SERVER_DEPTHS:
        raise ValueError(f"unknown server model {depth_name!r}; expected one of {sorted(SERVER_DEPTHS)}")
    return IResNet(
        SERVER_DEPTHS[depth_name],
        in_channels,
        input_size=input_size,
        width=width,
        embedding=embedding,
        interactive=interactive,
        mask_channels=mask_channels,
    )


def build_client(name: str, in_channels: int, input_size: int, width: float, embedding: int) -> MobileFaceNet:
    """Build the client model named "mobilefacenet"."""
    if name not in CLIENT_NAMES:
        raise ValueError(f"unknown client model {name!r}; expected one of {list(CLIENT_NAMES)}")
    return MobileFaceNet(in_channels, input_size=input_size, width=width, embedding=embedding)


__all__ = [
    "CLIENT_NAMES",
    "SERVER_DEPTHS",
    "SUPPORTED_INPUT_SIZES",
    "ArcFace",
    "CosFace",
    "IResNet",
    "InteractiveBlock",
    "MobileFaceNet",
    "build_client",
    "build_server",
    "client_masks",
    "count_macs",
    "count_params",
    "make_head",
    "normalise_per_sample",
    "scale_channels",
    "stage_sizes",
    "stride_plan",
]
