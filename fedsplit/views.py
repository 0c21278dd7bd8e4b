"""What each side of a DuetFace deployment sees of a face: a picture grid and a byte count."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from fedsplit.data.roi import roi_masks
from fedsplit.data.types import images_to_tensor
from fedsplit.frequency import DUETFACE_CLIENT_CHANNELS, dct_split, inverse_dct, server_channels

COLUMNS = ("original", "client keeps", "server receives (stretched)", "facial ROI")
_CELL = 224  # 2x the face, so a person can judge the server's view


@dataclass(frozen=True)
class SideBytes:
    """Bytes per image of what one side holds, measured from the tensors themselves."""

    side: str
    holds: str
    shape: tuple[int, ...]
    dtype: str
    bytes_per_image: int


def side_bytes(
    images: np.ndarray, client: torch.Tensor, server: torch.Tensor
) -> list[SideBytes]:
    """Measure per-image bytes of the raw face, the client's planes and the server's planes."""
    rows = [
        ("client", "raw face (never leaves the client)", torch.from_numpy(images[:1])),
        ("client", f"client planes ({client.shape[1]} channels)", client[:1]),
        ("server", f"server planes ({server.shape[1]} channels)", server[:1]),
    ]
    return [
        SideBytes(side, holds, tuple(t.shape[1:]), str(t.dtype).replace("torch.", ""), t.element_size() * t.numel())
        for side, holds, t in rows
    ]


def stretch(images: torch.Tensor, low: float = 0.01, high: float = 0.99) -> torch.Tensor:
    """Map each image's [low, high] quantile range to [-1, 1], so faint structure becomes visible."""
    flat = images.flatten(1)
    lo = torch.quantile(flat, low, dim=1).view(-1, 1, 1, 1)
    hi = torch.quantile(flat, high, dim=1).view(-1, 1, 1, 1)
    return ((images - lo) / (hi - lo).clamp_min(1e-6) * 2 - 1).clamp(-1, 1)


def render_grid(
    images: np.ndarray,
    landmarks: np.ndarray,
    upsample: int = 8,
    client_channels: tuple[int, ...] = DUETFACE_CLIENT_CHANNELS,
) -> tuple[np.ndarray, list[SideBytes]]:
    """Grid (RGB uint8) with one row per face and COLUMNS as columns, plus the bytes each side holds."""
    x = images_to_tensor(images)
    client, server = dct_split(x, client_channels, upsample)
    ks = tuple(sorted(client_channels))
    client_view = inverse_dct(client, ks, upsample).clamp(-1, 1)
    server_view = stretch(inverse_dct(server, server_channels(ks), upsample))
    roi = roi_masks(landmarks, size=images.shape[1])
    roi_view = x * (0.25 + 0.75 * roi)  # dim what lies outside the region the masks are cut to

    def to_uint8(t: torch.Tensor) -> np.ndarray:
        return ((t.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()

    panels = [images, to_uint8(client_view), to_uint8(server_view), to_uint8(roi_view)]
    for face, points in zip(panels[3], landmarks):
        for px, py in points:
            cv2.circle(face, (int(round(px)), int(round(py))), 1, (255, 215, 0), -1, cv2.LINE_AA)
    rows = [
        np.concatenate([cv2.resize(p[i], (_CELL, _CELL), interpolation=cv2.INTER_NEAREST) for p in panels], axis=1)
        for i in range(len(images))
    ]
    return np.concatenate([_header(len(panels)), *rows], axis=0), side_bytes(images, client, server)


def _header(n: int) -> np.ndarray:
    strip = np.full((28, _CELL * n, 3), 255, np.uint8)
    for i, title in enumerate(COLUMNS[:n]):
        cv2.putText(strip, title, (i * _CELL + 6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def write_views(
    out_dir: Path,
    images: np.ndarray,
    landmarks: np.ndarray,
    landmark_sources: list[str],
    upsample: int = 8,
    client_channels: tuple[int, ...] = DUETFACE_CLIENT_CHANNELS,
) -> dict:
    """Write views.png and views.json into out_dir; return the JSON record."""
    out_dir.mkdir(parents=True, exist_ok=True)
    grid, sides = render_grid(images, landmarks, upsample, client_channels)
    png = out_dir / "views.png"
    if not cv2.imwrite(str(png), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {png}")
    record = {
        "grid": str(png),
        "faces": len(images),
        "upsample": upsample,
        "client_channels": list(sorted(client_channels)),
        "server_channels": list(server_channels(tuple(client_channels))),
        "bytes_per_image": [asdict(s) for s in sides],
        "landmark_sources": dict(Counter(landmark_sources)),
    }
    (out_dir / "views.json").write_text(json.dumps(record, indent=2))
    return record


def format_bytes_table(sides: list[dict]) -> str:
    """A table of what each side holds per image, with the ratio to the raw face."""
    raw = sides[0]["bytes_per_image"]
    lines = [f"{'side':<8}{'holds':<38}{'tensor':<26}{'bytes/image':>13}{'x raw face':>11}"]
    for s in sides:
        tensor = f"{s['dtype']} {'x'.join(map(str, s['shape']))}"
        lines.append(f"{s['side']:<8}{s['holds']:<38}{tensor:<26}{s['bytes_per_image']:>13,}{s['bytes_per_image'] / raw:>10.1f}x")
    return "\n".join(lines)
