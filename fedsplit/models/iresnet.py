"""IResNet (ArcFace's improved ResNet): the server backbone, optionally with DuetFace interactive blocks."""

from __future__ import annotations

from torch import Tensor, nn

from fedsplit.models.interactive import InteractiveBlock
from fedsplit.models.layout import init_weights, scale_channels, stage_sizes, stride_plan

BLOCKS: dict[int, tuple[int, int, int, int]] = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3)}
BASE_CHANNELS: tuple[int, int, int, int] = (64, 128, 256, 512)
# arcface_torch's BN settings.
BN_EPS = 1e-5


class IBasicBlock(nn.Module):
    """BN-conv3x3-BN-PReLU-conv3x3(stride)-BN with a projected shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        """Build one block; the stride sits on the second conv as in arcface_torch."""
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in, eps=BN_EPS),
            nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out, eps=BN_EPS),
            nn.PReLU(c_out),
            nn.Conv2d(c_out, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out, eps=BN_EPS),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out, eps=BN_EPS)
            )

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        return self.body(x) + self.shortcut(x)


class IResNet(nn.Module):
    """IResNet-18/34/50 for any input in {14, 28, 56, 112}, always ending on a 7x7 map."""

    def __init__(
        self,
        depth: int,
        in_channels: int,
        input_size: int = 112,
        width: float = 1.0,
        embedding: int = 512,
        interactive: bool = False,
        mask_channels: tuple[int, ...] | None = None,
        dropout: float = 0.0,
    ) -> None:
        """Build the backbone; `mask_channels` (with interactive=True) selects raw-map masks."""
        super().__init__()
        if depth not in BLOCKS:
            raise ValueError(f"depth must be one of {sorted(BLOCKS)}, got {depth}")
        strides = stride_plan(input_size)
        channels = tuple(scale_channels(c, width) for c in BASE_CHANNELS)
        if mask_channels is not None:
            if not interactive:
                raise ValueError("mask_channels needs interactive=True")
            if len(mask_channels) != len(channels):
                raise ValueError(f"mask_channels needs {len(channels)} entries, got {len(mask_channels)}")
        self.depth = depth
        self.input_size = input_size
        self.embedding = embedding
        self.interactive = interactive
        self.stage_channels: tuple[int, int, int, int] = channels  # type: ignore[assignment]
        self.stage_sizes: tuple[int, int, int, int] = stage_sizes(input_size)
        stem_channels = channels[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(stem_channels, eps=BN_EPS),
            nn.PReLU(stem_channels),
        )
        stages = []
        c_in = stem_channels
        for c_out, n, stride in zip(channels, BLOCKS[depth], strides, strict=True):
            blocks = [IBasicBlock(c_in, c_out, stride)] + [IBasicBlock(c_out, c_out, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        self.interactive_blocks = (
            nn.ModuleList(
                InteractiveBlock(c, None if mask_channels is None else mask_channels[i])
                for i, c in enumerate(channels)
            )
            if interactive
            else None
        )
        last = channels[-1]
        self.output = nn.Sequential(
            nn.BatchNorm2d(last, eps=BN_EPS),
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(last * self.stage_sizes[-1] ** 2, embedding),
            nn.BatchNorm1d(embedding, eps=BN_EPS),
        )
        init_weights(self)

    def forward(self, x: Tensor, masks: list[Tensor] | list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
        """Return the (B, embedding) embedding; `masks[i]` goes to stage i's interactive block."""
        if x.dim() != 4 or tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise ValueError(f"expected (B,C,{self.input_size},{self.input_size}) input, got {tuple(x.shape)}")
        if masks is not None:
            if self.interactive_blocks is None:
                raise ValueError("masks given to a server built with interactive=False")
            if len(masks) != len(self.stages):
                raise ValueError(f"expected {len(self.stages)} masks, got {len(masks)}")
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if self.interactive_blocks is not None:
                x = self.interactive_blocks[i](x, None if masks is None else masks[i])
        return self.output(x)
