"""Does `train.device: cuda` hold up? The transform on the GPU against the CPU kernel, then a centralized run.

    python benchmarks/device_check.py [CONFIG] [--out DIR] [--set KEY=VALUE ...]

1. The frequency transform on CUDA (dense matmuls) against the CPU kernel, at upsample 1 and 8:
   the largest absolute difference of any plane, next to the planes' own scale.
2. `fedsplit train` of CONFIG (default: the built-in default, centralized duetface, 320 server steps)
   with train.device=cuda: accuracy, wall time, server steps per second and peak GPU memory.
Prints a table and writes DIR/device_check.json (DIR default runs/device_check). Needs a CUDA device.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from fedsplit.central import train_central
from fedsplit.config import load_config
from fedsplit.data.synthetic import SyntheticFaces
from fedsplit.data.types import images_to_tensor
from fedsplit.frequency import DUETFACE_CLIENT_CHANNELS, dct_split


def transform_agreement(upsample: int, faces: int = 8) -> dict:
    """Max |CUDA - CPU| over all planes of `faces` synthetic faces, and the largest plane value."""
    images = images_to_tensor(SyntheticFaces(identities=faces, images_per_identity=1, seed=0).batch(range(faces))[0])
    cpu = dct_split(images, DUETFACE_CLIENT_CHANNELS, upsample)
    gpu = dct_split(images.cuda(), DUETFACE_CLIENT_CHANNELS, upsample)
    err = max(float((g.cpu() - c).abs().max()) for g, c in zip(gpu, cpu))
    scale = max(float(c.abs().max()) for c in cpu)
    return {"upsample": upsample, "max_abs_diff": err, "max_abs_value": scale}


def main(argv: list[str] | None = None) -> int:
    """Run both checks and print/write what they measured."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", nargs="?", default=None, help="YAML config (default: the built-in default)")
    parser.add_argument("--out", default="runs/device_check")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check is for a GPU machine")
    out = Path(args.out)
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "transform": [transform_agreement(up) for up in (1, 8)]}
    cfg = load_config(args.config, [f"output={out}", "name=central_cuda", "train.device=cuda", *args.set])
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    results = train_central(cfg, fresh=True)
    wall = time.perf_counter() - t0
    report["central"] = {"strategy": results["strategy"], "accuracy": results["accuracy"],
                         "accuracy_std": results["accuracy_std"], "server_steps": results["server_steps"],
                         "warmup_steps": results["warmup_steps"], "wall_seconds": round(wall, 1),
                         "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                         "server_steps_per_second": round(results["server_steps"] / sum(
                             e["seconds"] for e in results["epochs"]), 2)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "device_check.json").write_text(json.dumps(report, indent=2))
    print(f"\ndevice: {report['device']} (torch {report['torch']})")
    print("| upsample | max abs diff CUDA vs CPU | max abs plane value |\n|---|---|---|")
    for r in report["transform"]:
        print(f"| {r['upsample']} | {r['max_abs_diff']:.2e} | {r['max_abs_value']:.1f} |")
    c = report["central"]
    print(f"central {c['strategy']} on CUDA: accuracy {100 * c['accuracy']:.2f}% +- {100 * c['accuracy_std']:.2f}, "
          f"{c['server_steps']} server steps ({c['server_steps_per_second']}/s), {c['wall_seconds']} s in all, "
          f"peak GPU memory {c['peak_gpu_memory_gib']} GiB")
    print(f"wrote {out / 'device_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
