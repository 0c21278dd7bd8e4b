"""How much of a face the white-box analytic attack recovers from what the server receives.

    python benchmarks/analytic_inversion.py [--faces 16] [--aux 32] [--upsample 1,2,4,8] [--threads 1]

For hf_only's server channels (the complement of the default client set 0,1,2,3,4,5,8,9,16,24; duetface
sends the same planes plus masks, which this attack ignores) and for fd_all (all 64 per colour), at
each upsample factor: mean PSNR / SSIM of `look` (the plain inverse transform of the received planes)
and of `analytic_inversion` (default weights, prior = mean of --aux synthetic faces of other
identities), and seconds per image of the attack. The prior alone is printed as a floor.
"""

from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__":
    # Thread pools are sized at import time; a busy shared machine runs CG far faster on one thread.
    _threads = next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--threads"), "1")
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)

import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fedsplit.data.synthetic import SyntheticFaces  # noqa: E402
from fedsplit.data.types import images_to_tensor  # noqa: E402
from fedsplit.frequency import DUETFACE_CLIENT_CHANNELS, block_dct, dct_split, server_channels  # noqa: E402
from fedsplit.privacy.analytic import analytic_inversion  # noqa: E402
from fedsplit.privacy.look import look  # noqa: E402
from fedsplit.privacy.metrics import psnr, ssim  # noqa: E402
from fedsplit.privacy.operator import ALL_CHANNELS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Print the table; exit 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=16)
    parser.add_argument("--aux", type=int, default=32, help="public faces of other identities for the prior")
    parser.add_argument("--upsample", default="1,2,4,8")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    victims = images_to_tensor(SyntheticFaces(identities=args.faces, images_per_identity=1, seed=11)
                               .batch(np.arange(args.faces))[0])
    # Disjoint identities: the attacker's public faces are of other people.
    aux = images_to_tensor(SyntheticFaces(identities=args.aux, images_per_identity=1, seed=11,
                                          first_identity=100_000).batch(np.arange(args.aux))[0])
    prior = aux.mean(0)
    floor = prior.expand_as(victims)
    print(f"{args.faces} synthetic faces, prior = mean of {args.aux} others "
          f"(prior alone: PSNR {psnr(floor, victims).mean():.2f} dB, SSIM {ssim(floor, victims).mean():.3f}); "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'view':8} {'up':>2} {'planes':>6}  {'look PSNR':>9} {'look SSIM':>9}  "
          f"{'attack PSNR':>11} {'attack SSIM':>11} {'s/image':>8}")
    views = (("hf_only", server_channels(DUETFACE_CLIENT_CHANNELS)), ("fd_all", ALL_CHANNELS))
    for up in (int(u) for u in args.upsample.split(",")):
        for name, channels in views:
            # Exactly what the strategies send: the float32 kernel's planes, not the attacker's model of them.
            if name == "fd_all":
                planes = block_dct(victims, up).flatten(1, 2)
            else:
                planes = dct_split(victims, DUETFACE_CLIENT_CHANNELS, up)[1]
            seen = look(planes, channels, up)
            start = time.perf_counter()
            recovered = analytic_inversion(planes, channels, up, prior=prior)
            per_image = (time.perf_counter() - start) / args.faces
            print(f"{name:8} {up:>2} {planes.shape[1]:>6}  {psnr(seen, victims).mean():>9.2f} "
                  f"{ssim(seen, victims).mean():>9.3f}  {psnr(recovered, victims).mean():>11.2f} "
                  f"{ssim(recovered, victims).mean():>11.3f} {per_image:>8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
