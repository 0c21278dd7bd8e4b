"""MobileFaceNet (Chen et al., 2018): the small client model that runs on the low-frequency planes."""

from __future__ import annotations

from torch import Tensor, nn

from fedsplit.models.layout import init_weights, scale_channels, stride_plan


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """Conv without bias, BN and an optional PReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2 if kernel > 1 else 0, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if act:
        layers.append(nn.PReLU(c_out))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """Inverted residual: 1x1 expand, 3x3 depthwise, linear 1x1 project; residual when shapes allow."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int) -> None:
        """Build one bottleneck whose hidden width is `c_in * expansion`."""
        super().__init__()
        hidden = c_in * expansion
        self.body = nn.Sequential(
            _conv_bn(c_in, hidden, 1),
            _conv_bn(hidden, hidden, 3, stride, groups=hidden),
            _conv_bn(hidden, c_out, 1, act=False),
        )
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        out = self.body(x)
        return x + out if self.residual else out


def _stage(c_in: int, c_out: int, blocks: int, stride: int, expansion: int) -> nn.Sequential:
    """A run of bottlenecks where only the first may change shape."""
    layers = [Bottleneck(c_in, c_out, stride, expansion)]
    layers += [Bottleneck(c_out, c_out, 1, expansion) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class MobileFaceNet(nn.Module):
    """MobileFaceNet with a configurable input, exposing four intermediate maps for DuetFace masks."""

    def __init__(self, in_channels: int, input_size: int = 112, width: float = 1.0, embedding: int = 128) -> None:
        """Build the network; `input_size` in {14, 28, 56, 112} always ends on a 7x7 map."""
        super().__init__()
        s1, s2, s3, s4 = stride_plan(input_size)
        c64, c128, c512 = (scale_channels(c, width) for c in (64, 128, 512))
        self.input_size = input_size
        self.embedding = embedding
        self.stem = nn.Sequential(_conv_bn(in_channels, c64, 3, s1), _conv_bn(c64, c64, 3, groups=c64))
        # Paper table: (t=2, c=64, n=5, s=2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1).
        # The stride-1 runs are folded into the stage that downsamples before them, so each of the four
        # returned maps is the last one at its resolution.
        self.stage1 = _stage(c64, c64, 5, s2, 2)
        self.stage2 = nn.Sequential(_stage(c64, c128, 1, s3, 4), _stage(c128, c128, 6, 1, 2))
        self.stage3 = nn.Sequential(_stage(c128, c128, 1, s4, 4), _stage(c128, c128, 2, 1, 2))
        self.head = nn.Sequential(
            _conv_bn(c128, c512, 1),
            # Global depthwise conv: a learned, position-aware pooling of the whole 7x7 map.
            nn.Conv2d(c512, c512, 7, groups=c512, bias=False),
            nn.BatchNorm2d(c512),
            nn.Flatten(),
            nn.Linear(c512, embedding, bias=False),
            nn.BatchNorm1d(embedding),
        )
        self.map_channels: tuple[int, int, int, int] = (c64, c64, c128, c128)
        init_weights(self)

    def forward_maps(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Return the embedding and the four intermediate maps (sizes equal IResNet.stage_sizes)."""
        if x.dim() != 4 or tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise ValueError(f"expected (B,C,{self.input_size},{self.input_size}) input, got {tuple(x.shape)}")
        m1 = self.stem(x)
        m2 = self.stage1(m1)
        m3 = self.stage2(m2)
        m4 = self.stage3(m3)
        return self.head(m4), [m1, m2, m3, m4]

    def forward(self, x: Tensor) -> Tensor:
        """Return the (B, embedding) face embedding."""
        return self.forward_maps(x)[0]
