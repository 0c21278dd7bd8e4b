"""Benchmark the built-in synthetic face generator on one core, and optionally save a contact sheet.

    python benchmarks/synthetic.py [--images 2000] [--identities 200] [--repeats 3] [--min-rate 500]
                                   [--grid out.png] [--highpass out_hp.png] [--landmarks]

Prints images/s on one pinned core for three access patterns: a shuffled pass over a fresh
SyntheticFaces data set (each identity is built on its first image, then served from the
per-process cache), the same pass again (all identities cached), and every image of a new
identity (no cache hits, the worst case). Exits 1 if the best worst-case pass is slower
than --min-rate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable

# Thread pools are sized at import time, so one thread must be requested before numpy/torch load.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from fedsplit.data.synthetic import SyntheticFaces, render_face  # noqa: E402


def _one_core() -> str:
    """Pin this process to a single CPU and single-threaded libraries; return a description."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


def _rate(render: Callable[[], None], count: int) -> float:
    """Images per second of one call of `render`, which renders `count` images."""
    start = time.perf_counter()
    render()
    return count / (time.perf_counter() - start)


def _grid(path: str, seed: int, identities: int, images: int, high_pass: str | None, landmarks: bool) -> None:
    """Save identities (rows) x images faces as one PNG, optionally with landmarks and a high-pass copy."""
    rows = []
    for i in range(identities):
        row = []
        for j in range(images):
            s = render_face(seed, i, j)
            im = s.image.copy()
            if landmarks:
                for x, y in s.landmarks:
                    cv2.circle(im, (int(round(x)), int(round(y))), 1, (0, 255, 0), -1)
            row.append(im)
        rows.append(np.concatenate(row, axis=1))
    sheet = np.concatenate(rows, axis=0)
    cv2.imwrite(path, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"grid: {identities} identities (rows) x {images} images -> {path}")
    if high_pass:
        f = sheet.astype(np.float32)
        detail = f - cv2.GaussianBlur(f, (0, 0), 1.5)
        cv2.imwrite(high_pass, cv2.cvtColor(np.clip(128 + 3 * detail, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
        print(f"high-pass grid (image minus Gaussian blur, x3) -> {high_pass}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the process exit code."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000, help="images per timed pass")
    ap.add_argument("--identities", type=int, default=200, help="identities in the timed data set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats of each pattern")
    ap.add_argument("--min-rate", type=float, default=500.0, help="fail if the best data-set pass is slower")
    ap.add_argument("--grid", help="save a PNG grid of faces (rows are identities)")
    ap.add_argument("--grid-identities", type=int, default=8)
    ap.add_argument("--grid-images", type=int, default=6)
    ap.add_argument("--highpass", help="also save the grid's high-pass (fine detail) version here")
    ap.add_argument("--landmarks", action="store_true", help="draw the 68 landmarks on the grid")
    args = ap.parse_args(argv)
    if min(args.images, args.identities, args.repeats) < 1:
        ap.error("--images, --identities and --repeats must be >= 1")

    print(_one_core())
    per = max(1, args.images // args.identities)
    render_face(args.seed, 0, 0)  # imports, noise banks and first-call set-up are not the generator's rate
    first, cached, cold = [], [], []
    cold_n = max(1, min(args.images, 500))
    for r in range(args.repeats):
        # A new seed per repeat: its identities are not in the per-process cache yet.
        faces = SyntheticFaces(identities=args.identities, images_per_identity=per, seed=args.seed + 1 + r)
        order = np.random.default_rng(r).permutation(len(faces))

        def data_set_pass() -> None:
            for i in order:
                faces[int(i)]

        first.append(_rate(data_set_pass, len(faces)))
        cached.append(_rate(data_set_pass, len(faces)))
        base = 1_000_000 + r * cold_n  # identities no earlier pass has touched

        def cold_pass() -> None:
            for k in range(cold_n):
                render_face(args.seed, base + k, 0)

        cold.append(_rate(cold_pass, cold_n))

    def show(name: str, rates: list[float]) -> None:
        print(f"{name:<52s} best {max(rates):6.0f}  median {statistics.median(rates):6.0f} images/s")

    print(f"{args.repeats} repeats; other load on the machine only slows a run down, so best is the rate")
    show(f"data set, shuffled, first pass ({args.identities} ids x {per})", first)
    show("data set, shuffled, identities cached", cached)
    show("every image a new identity (no cache)", cold)
    if args.grid:
        _grid(args.grid, args.seed, args.grid_identities, args.grid_images, args.highpass, args.landmarks)
    # The floor applies to the worst case: with 10,000 identities nearly every read is a new identity.
    ok = max(cold) >= args.min_rate
    verdict = "PASS" if ok else "FAIL"
    print(f"{verdict}: worst-case rate {max(cold):.0f} images/s vs floor {args.min_rate:.0f} on one core")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
