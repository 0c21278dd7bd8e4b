"""The `fedsplit` command: one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fedsplit.frequency import UPSAMPLE_FACTORS


def _inspect(args: argparse.Namespace) -> int:
    from fedsplit.data.sources import one_per_identity, open_faces
    from fedsplit.data.types import stack_samples
    from fedsplit.views import format_bytes_table, write_views

    if args.n < 1:
        raise SystemExit(f"fedsplit inspect: --n must be at least 1, got {args.n}")
    source = open_faces(args.data, identities=args.n, images_per_identity=1, seed=args.seed, crop=args.crop)
    samples = [source[int(i)] for i in one_per_identity(source.labels, args.n)]
    images, _, landmarks = stack_samples(samples)
    record = write_views(args.out, images, landmarks, [s.landmark_source for s in samples], upsample=args.upsample)
    print(f"{len(images)} faces from {args.data}, upsample {args.upsample}: "
          f"client keeps {len(record['client_channels'])} of 64 frequencies per colour, "
          f"server receives {len(record['server_channels'])}")
    print(format_bytes_table(record["bytes_per_image"]))
    print(f"landmarks from: {', '.join(f'{k} {v}' for k, v in record['landmark_sources'].items())}")
    print(f"wrote {record['grid']} and {args.out / 'views.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with a help text for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="fedsplit",
        description="Simulate DuetFace federated split learning for face recognition.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    inspect = sub.add_parser(
        "inspect",
        help="picture what the client keeps and what the server receives of a few faces",
        description="Split a few faces into client (low-frequency) and server (high-frequency) DCT planes, "
        "write a PNG grid (original, client view, contrast-stretched server view, facial ROI) and print the "
        "bytes per image each side holds.",
    )
    inspect.add_argument("--data", default="synthetic", help="'synthetic' (built-in) or a folder <root>/<identity>/<image>")
    inspect.add_argument("--n", type=int, default=8, help="number of faces, one per identity (default 8)")
    inspect.add_argument("--upsample", type=int, default=8, choices=UPSAMPLE_FACTORS, help="upsampling before the DCT (default 8)")
    inspect.add_argument("--out", type=Path, default=Path("runs/inspect"), help="output folder (default runs/inspect)")
    inspect.add_argument("--seed", type=int, default=0, help="synthetic data seed (default 0)")
    inspect.add_argument("--crop", type=float, default=None, help="centre-crop fraction for folder images (see FolderFaces)")
    inspect.set_defaults(run=_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `fedsplit` console command."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
