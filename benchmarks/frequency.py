"""Benchmark the frequency split against the straightforward implementation, in one process.

    python benchmarks/frequency.py [--batch 64] [--upsample 8] [--repeats 5] [--json out.json]

Every path is first checked against the straightforward one. Prints images/s of each path, the speed-up, the memory-bandwidth bound (writing the output once),
and the peak memory each call adds on top of what the process held before it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from fedsplit.frequency import _CMIX, _DC, NUM_FREQUENCIES, _empty_float32, _operators, block_dct, dct_split

_RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def straightforward_block_dct(images: torch.Tensor, upsample: int = 8) -> torch.Tensor:
    """The transform as written: upsample to full size, convert colour, cut blocks, DCT each block."""
    rgb = (images + 1) / 2
    big = F.interpolate(rgb, scale_factor=upsample, mode="bilinear", align_corners=True) * 255
    ycc = torch.einsum("oc,bchw->bohw", _RGB_TO_YCBCR, big)
    ycc += torch.tensor([0.0, 128.0, 128.0]).view(1, 3, 1, 1) - 128
    b, c, hh, ww = ycc.shape
    blocks = ycc.view(b, c, hh // 8, 8, ww // 8, 8).permute(0, 1, 2, 4, 3, 5)  # (b,c,i,j,8,8)
    d = _dct_matrix()
    coeffs = d @ blocks @ d.T  # (b,c,i,j,u,v)
    return coeffs.permute(0, 1, 4, 5, 2, 3).reshape(b, c, NUM_FREQUENCIES, hh // 8, ww // 8)


def eager_banded_block_dct(images: torch.Tensor, upsample: int = 8) -> torch.Tensor:
    """The library's banded operators applied with plain eager PyTorch ops: the floor to beat."""
    b, _, height, width = images.shape
    ops = _operators(height, width, upsample)
    ycc = torch.einsum("oc,bchw->bohw", torch.from_numpy(_CMIX), images)
    rows = ycc[:, :, torch.from_numpy(ops.rows_h), :]  # (b, 3, h, K, W)
    vert = torch.einsum("uia,bciaq->bcuiq", torch.from_numpy(ops.taps_h), rows)  # (b, 3, 8, h, W)
    taps, cols = torch.from_numpy(ops.taps_w), torch.from_numpy(ops.cols_w)  # (K, 8, w), (K, w)
    h, w = vert.shape[3], cols.shape[1]
    out = torch.empty(b, 3, 8, 8, h, w)
    for k in range(cols.shape[0]):
        term, weight = vert[..., cols[k]][:, :, :, None], taps[k].view(1, 1, 1, 8, 1, w)
        if k == 0:
            torch.mul(term, weight, out=out)
        else:
            out.addcmul_(term, weight)
    out[:, :, 0, 0] += torch.from_numpy(_DC).view(1, 3, 1, 1)
    return out.view(b, 3, NUM_FREQUENCIES, h, w)


def _dct_matrix(n: int = 8) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d.float()


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(fn: Callable[[], object], repeats: int) -> tuple[float, float | None]:
    """Median seconds per call, and the peak MiB one call adds over the RSS before it."""
    fn()  # warm-up: JIT compile or load from cache, first-touch of allocator pools
    times, peaks = [], []
    for _ in range(repeats):
        can_reset = _reset_peak_rss()
        before = _rss_kib("VmRSS")
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        if can_reset:
            peaks.append((_rss_kib("VmHWM") - before) / 1024)
        del result
    return statistics.median(times), (max(peaks) if peaks else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--upsample", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    torch.manual_seed(0)
    images = torch.rand(args.batch, 3, args.size, args.size) * 2 - 1
    plane = args.size * args.upsample // 8
    output_mib = args.batch * 3 * NUM_FREQUENCIES * plane * plane * 4 / 2**20
    start = time.perf_counter()
    block_dct(images[:1], args.upsample)
    first_call = time.perf_counter() - start

    shape = (args.batch, 3, NUM_FREQUENCIES, plane, plane)
    reused = _empty_float32(shape)

    def write_once() -> torch.Tensor:
        # The same allocation as the library's output, so the bound pays the same first-touch cost.
        return _empty_float32(shape).fill_(1.0)

    expected = straightforward_block_dct(images[:2], args.upsample)
    for name, fn in (("eager_banded", eager_banded_block_dct), ("block_dct", block_dct)):
        error = (fn(images[:2], args.upsample) - expected).abs().max().item()
        if error > 1e-2:
            raise SystemExit(f"{name} disagrees with the straightforward path by {error:.3g}")
    rows = {
        "straightforward": measure(lambda: straightforward_block_dct(images, args.upsample), args.repeats),
        "eager_banded": measure(lambda: eager_banded_block_dct(images, args.upsample), args.repeats),
        "block_dct": measure(lambda: block_dct(images, args.upsample), args.repeats),
        "dct_split": measure(lambda: dct_split(images, upsample=args.upsample), args.repeats),
        "bound_write_once": measure(write_once, args.repeats),
        "bound_warm_buffer": measure(lambda: reused.fill_(1.0), args.repeats),
    }
    base = rows["straightforward"][0]
    print(
        f"batch {args.batch} of {args.size}x{args.size}, upsample {args.upsample}: output "
        f"{output_mib:.0f} MiB (3x64 planes of {plane}x{plane} float32); torch threads "
        f"{torch.get_num_threads()}, cores {os.cpu_count()}; first call (compile or cache load) {first_call:.1f} s"
    )
    print(f"{'path':<18}{'s/batch':>9}{'images/s':>10}{'vs straightforward':>20}{'peak MiB':>10}{'peak/output':>12}")
    figures = {"batch": args.batch, "upsample": args.upsample, "size": args.size, "output_mib": output_mib, "paths": {}}
    for name, (seconds, peak) in rows.items():
        peak_txt = f"{peak:10.0f}{peak / output_mib:12.2f}" if peak is not None else f"{'n/a':>10}{'n/a':>12}"
        print(f"{name:<18}{seconds:9.3f}{args.batch / seconds:10.1f}{base / seconds:19.1f}x{peak_txt}")
        figures["paths"][name] = {
            "seconds": seconds,
            "images_per_s": args.batch / seconds,
            "speedup": base / seconds,
            "peak_mib": peak,
        }
    print(
        f"block_dct is {base / rows['block_dct'][0]:.1f}x the straightforward path (eager PyTorch on the same "
        f"banded operators: {base / rows['eager_banded'][0]:.1f}x). Bounds: writing a fresh "
        f"output once is {base / rows['bound_write_once'][0]:.1f}x, writing into memory already mapped "
        f"{base / rows['bound_warm_buffer'][0]:.1f}x."
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
