"""Shared layout rules of the client and server networks: channel scaling and stride plans."""

from __future__ import annotations

import math

from torch import nn

# DCT planes are 14*up for up in {1,2,4,8}; every network here ends on a 7x7 map.
SUPPORTED_INPUT_SIZES: tuple[int, ...] = (14, 28, 56, 112)
FINAL_SIZE = 7
STRIDE_STEPS = 4


def scale_channels(channels: int, width: float) -> int:
    """Scale a channel count by `width`, rounded to a multiple of 8 and at least 8."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return max(8, int(round(channels * width / 8.0)) * 8)


def stride_plan(input_size: int) -> tuple[int, int, int, int]:
    """Strides of the four downsampling positions so that `input_size` ends at 7x7."""
    if input_size not in SUPPORTED_INPUT_SIZES:
        raise ValueError(f"input_size must be one of {SUPPORTED_INPUT_SIZES}, got {input_size}")
    downs = int(math.log2(input_size // FINAL_SIZE))
    # The earliest positions give up their stride: small inputs are already coarse.
    keep = STRIDE_STEPS - downs
    return tuple(1 if i < keep else 2 for i in range(STRIDE_STEPS))  # type: ignore[return-value]


def stage_sizes(input_size: int) -> tuple[int, int, int, int]:
    """Spatial side of the map after each of the four downsampling positions."""
    sizes = []
    side = input_size
    for stride in stride_plan(input_size):
        side //= stride
        sizes.append(side)
    return tuple(sizes)  # type: ignore[return-value]


def init_weights(model: nn.Module) -> None:
    """Kaiming init for convs, a small normal for linear layers (zero bias), identity BatchNorm."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
