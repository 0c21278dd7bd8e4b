"""What `fedsplit privacy` shows a person: the strategy x attack table and grids of recovered faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

_LABEL_HEIGHT = 18


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "-"
    if np.isinf(value):
        return "inf"
    return f"{scale * value:.{digits}f}{suffix}"


def format_table(rows: list[dict]) -> str:
    """Markdown table: one line per (strategy, upsample, attack, client), with PSNR, SSIM and identification."""
    lines = ["| strategy | upsample | attack | client (noise sigma) | PSNR dB | SSIM | top-1 identified | other-photo top-1 "
             "| (recovered, original) verification | chance |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        client = "all" if r.get("client") is None else f"{r['client']} ({r.get('noise_sigma', 0):g})"
        lines.append(
            f"| {r['strategy']} | {r['upsample'] if r['upsample'] is not None else '-'} | {r['attack']} | {client} | "
            f"{_fmt(r['psnr'], digits=2)} | {_fmt(r['ssim'], digits=3)} | "
            f"{_fmt(r['identification_top1'], 100, 1, '%')} | {_fmt(r.get('identification_top1_other'), 100, 1, '%')} | "
            f"{_fmt(r.get('pair_verification'), 100, 1, '%')} | {_fmt(r['chance'], 100, 1, '%')} |")
    return "\n".join(lines) + "\n"


def format_costs(costs: list[dict]) -> str:
    """Markdown table: each client's noise, its accuracy in `fedsplit run`, and what the strongest attack got."""
    c0 = costs[0]
    up = "" if c0["upsample"] is None else f" at upsample {c0['upsample']}"
    lines = [f"What each client's setting cost ({c0['strategy']}{up}; accuracy over the pairs that hold its faces, "
             "from `fedsplit run`; attack: the one that identified most of its victims):", "",
             "| client | noise sigma | accuracy (pairs) | strongest attack | top-1 identified | PSNR dB | victims | chance |",
             "|---|---|---|---|---|---|---|---|"]
    for c in costs:
        acc = "-" if c["accuracy"] is None else f"{100 * c['accuracy']:.1f}% ({c['pairs']})"
        lines.append(f"| {c['client']} | {c['noise_sigma']:g} | {acc} | {c['strongest_attack'] or '-'} | "
                     f"{_fmt(c['identification_top1'], 100, 1, '%')} | {_fmt(c['psnr'], digits=2)} | {c['victims']} | "
                     f"{_fmt(c['chance'], 100, 1, '%')} |")
    return "\n".join(lines) + "\n"


def _to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """(B,3,H,W) on the [-1,1] scale -> (B,H,W,3) uint8 RGB, clipped (recoveries overshoot)."""
    x = images.detach().cpu().float().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, np.float32)
    return np.clip((x.transpose(0, 2, 3, 1) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def save_grid(path: Path, columns: dict[str, torch.Tensor | np.ndarray], faces: int = 8) -> Path:
    """A PNG with one row per face and one labelled column per entry (original first, then recoveries)."""
    if not columns:
        raise ValueError("save_grid: no columns to draw")
    tiles = {name: _to_uint8(images[:faces]) for name, images in columns.items()}
    n = min(len(t) for t in tiles.values())
    size = next(iter(tiles.values())).shape[1]
    width = len(tiles) * size
    canvas = np.full((_LABEL_HEIGHT + n * size, width, 3), 255, np.uint8)
    for c, (name, t) in enumerate(tiles.items()):
        cv2.putText(canvas, name[:16], (c * size + 2, _LABEL_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    (0, 0, 0), 1, cv2.LINE_AA)
        for r in range(n):
            canvas[_LABEL_HEIGHT + r * size:_LABEL_HEIGHT + (r + 1) * size, c * size:(c + 1) * size] = t[r]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
