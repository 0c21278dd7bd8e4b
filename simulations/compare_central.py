"""Train every protection strategy centrally on the same data and print the comparison table.

    python simulations/compare_central.py configs/central_synthetic.yaml
    python simulations/compare_central.py configs/central_lfw.yaml --strategies rgb,duetface --set train.rounds=5

Each strategy runs as `fedsplit train CONFIG --set protection.strategy=S --set name=<name>_S` would
(same data, seed and server steps) and resumes from its checkpoint if interrupted. Writes
`<output>/<name>_compare/table.md` and `table.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fedsplit.central import train_central
from fedsplit.config import ConfigError, load_config
from fedsplit.protection import STRATEGIES

ORDER = ("rgb", "fd_all", "hf_only", "duetface")


def _row(r: dict) -> dict:
    """The table's fields of one results.json."""
    return {
        "strategy": r["strategy"],
        "accuracy": r["accuracy"],
        "accuracy_std": r["accuracy_std"],
        "tar_at_far": r["tar_at_far"],
        "server_macs": r["macs"]["server"],
        "client_macs": r["macs"]["client"],
        "server_params": r["params"]["server"],
        "payload_bytes_per_image": r["payload_bytes_per_image"],
        "raw_image_bytes": r["raw_image_bytes"],
        "wall_seconds": r["wall_seconds"],
    }


def format_table(rows: list[dict]) -> str:
    """Markdown table of the comparison."""
    lines = ["| strategy | accuracy | TAR@FAR=1e-3 | server MACs/image | client MACs/image | payload bytes/image | train time |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        tar = "n/a" if r["tar_at_far"] is None else f"{100 * r['tar_at_far']:.1f}%"
        lines.append(
            f"| {r['strategy']} | {100 * r['accuracy']:.2f}% +- {100 * r['accuracy_std']:.2f} | {tar} | "
            f"{r['server_macs'] / 1e6:.0f} M | {r['client_macs'] / 1e6:.0f} M | "
            f"{r['payload_bytes_per_image']:,} ({r['payload_bytes_per_image'] / r['raw_image_bytes']:.1f}x raw) | "
            f"{r['wall_seconds'] / 60:.1f} min |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the strategies one after another and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", help="YAML config shared by all strategies")
    parser.add_argument("--strategies", default=",".join(ORDER), help="comma-separated (default: all four)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--fresh", action="store_true", help="ignore existing checkpoints")
    args = parser.parse_args(argv)
    strategies = [s for s in args.strategies.split(",") if s]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise SystemExit(f"--strategies: unknown {unknown}; known: {', '.join(sorted(STRATEGIES))}")
    try:
        base = load_config(args.config, args.set)
        configs = [load_config(args.config, [*args.set, f"protection.strategy={s}", f"name={base.name}_{s}"])
                   for s in strategies]
    except ConfigError as err:
        raise SystemExit(str(err)) from None
    rows = []
    for cfg in configs:
        rows.append(_row(train_central(cfg, fresh=args.fresh)))
    out = Path(base.output) / f"{base.name}_compare"
    out.mkdir(parents=True, exist_ok=True)
    table = format_table(rows)
    command = " ".join(["python", "simulations/compare_central.py", *(argv if argv is not None else sys.argv[1:])])
    (out / "table.md").write_text(f"`{command}`\n\n{table}")
    (out / "table.json").write_text(json.dumps({"command": command, "config": base.to_dict(), "rows": rows}, indent=2))
    print(table)
    print(f"wrote {out / 'table.md'} and {out / 'table.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
