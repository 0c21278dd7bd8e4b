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


def _load(args: argparse.Namespace):  # noqa: ANN202 - returns fedsplit.config.Config (imported lazily)
    """The config named on the command line with its --set overrides; a bad one stops before any work."""
    from fedsplit.config import ConfigError, load_config

    try:
        return load_config(args.config, args.set)
    except ConfigError as err:
        raise SystemExit(f"fedsplit {args.command}: {err}") from None


def _train(args: argparse.Namespace) -> int:
    from fedsplit.central import train_central

    cfg = _load(args)
    train_central(cfg, fresh=args.fresh)
    print(f"wrote {cfg.run_dir() / 'results.json'} and {cfg.run_dir() / 'report.md'}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from fedsplit.federated import run_federated

    cfg = _load(args)
    run_federated(cfg)
    print(f"wrote {cfg.run_dir()}/")
    return 0


def _privacy(args: argparse.Namespace) -> int:
    from fedsplit.privacy.suite import run_privacy

    cfg = _load(args)
    run_privacy(cfg)
    return 0


def _config_arguments(parser: argparse.ArgumentParser, example: str) -> None:
    """The positional CONFIG and the repeatable --set of the commands that take a run config."""
    parser.add_argument("config", nargs="?", default=None, help="YAML config (default: built-in defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config key, e.g. --set {example} (repeatable)")


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

    train = sub.add_parser(
        "train",
        help="train one protection strategy centrally and report verification accuracy",
        description="Centralized reference run: pre-train the client model (when the strategy uses one), freeze "
        "it, train the server backbone on the strategy's payloads for the same number of server steps as the "
        "federated run (train.rounds x clients_per_round x batches_per_client), evaluate verification on held-out "
        "identities, and write runs/<name>/results.json and report.md. Resumes from runs/<name>/checkpoint.pt "
        "when it was written by the same config. Keys: configs/README.md.",
    )
    _config_arguments(train, "protection.strategy=rgb")
    train.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    train.set_defaults(run=_train)

    run = sub.add_parser(
        "run",
        help="run the federated split-learning simulation (Flower apps on Ray)",
        description="Simulate partition.clients clients as Flower ClientApps in Ray actors: federated warm-up of "
        "the client model (FedAvg), then split rounds in which sampled clients upload payload batches and the "
        "server trains its backbone; evaluation on held-out identities from their payloads. Writes "
        "runs/<name>/ (config.json, metrics.jsonl, results.json). Keys: configs/README.md.",
    )
    _config_arguments(run, "partition.clients=16")
    run.set_defaults(run=_run)

    privacy = sub.add_parser(
        "privacy",
        help="attack every protection strategy as an honest-but-curious server would, and score what it recovers",
        description="Make the held-out (victim) faces' payloads as their clients would (per-client noise included) "
        "for each strategy in privacy.strategies at each factor in privacy.upsample, attack them (look: the inverse "
        "transform of what arrived; analytic: regularised least squares over the known linear view; learned: a "
        "U-Net the attacker trains on its auxiliary faces; masks: the same from duetface's masks alone) and score "
        "the recoveries by PSNR, SSIM and an attacker face recogniser. Writes runs/<name>/privacy/privacy.json, report.md "
        "and grid_*.png. Keys: configs/README.md (privacy section).",
    )
    _config_arguments(privacy, "privacy.upsample=[1,8]")
    privacy.set_defaults(run=_privacy)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `fedsplit` console command."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
