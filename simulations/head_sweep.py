"""Centralized training over a grid of head scales and margins, several seeds each: which head learns.

    python simulations/head_sweep.py                                   # default config, s 8,16,32,64 x m 0.1,0.35, seeds 0,1
    python simulations/head_sweep.py --scales 8,16 --margins 0.1 --seeds 0,1,2,3,4,5 --set train.device=cuda

Every cell runs `fedsplit train --set model.head_scale=S --set model.head_margin=M --set seed=N` (one head
setting for the client model's warm-up and for the server). A finished run of the same config is reused,
so separate processes can share a grid. Per cell the table gives the server's verification accuracy
(mean +- sd over seeds), the frozen client model's accuracy on its own embeddings, and the server's
training loss in its first and last round next to the loss of a uniform guess (log(1 + (C-1) e^(s m)),
cosface only): a last loss near that guess means the server learned nothing. Writes
`<output>/<name>_head_sweep/table.md` and `table.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from fedsplit.central import train_central
from fedsplit.config import Config, ConfigError, load_config, same_config


def cell_name(base: str, scale: float, margin: float, seed: int) -> str:
    """Run folder of one cell and seed, e.g. default_s8_m0.1_s0."""
    return f"{base}_s{scale:g}_m{margin:g}_s{seed}"


def _finished(cfg: Config) -> dict | None:
    path = cfg.run_dir() / "results.json"
    if path.exists():
        results = json.loads(path.read_text())
        if same_config(results.get("config") or {}, cfg):
            return results
    return None


def uniform_loss(classes: int, scale: float, margin: float, head: str) -> float | None:
    """Cross-entropy of a head whose cosines are all equal: where a server that learned nothing sits."""
    return math.log1p((classes - 1) * math.exp(scale * margin)) if head == "cosface" else None


def summarise(runs: list[dict]) -> dict:
    """One cell's row from its seeds' results.json."""
    acc = [r["accuracy"] for r in runs]
    client = [r["client_model_accuracy"] for r in runs if r.get("client_model_accuracy") is not None]
    m = runs[0]["config"]["model"]
    classes = runs[0]["config"]["data"]["identities"] - runs[0]["config"]["data"]["eval_identities"]
    return {
        "head_scale": m["head_scale"], "head_margin": m["head_margin"], "seeds": [r["config"]["seed"] for r in runs],
        "accuracy_mean": statistics.fmean(acc), "accuracy_sd": statistics.stdev(acc) if len(acc) > 1 else 0.0,
        "client_model_accuracy_mean": statistics.fmean(client) if client else None,
        "first_loss": statistics.fmean(r["epochs"][0]["loss"] for r in runs),
        "last_loss": statistics.fmean(r["epochs"][-1]["loss"] for r in runs),
        "uniform_loss": uniform_loss(classes, m["head_scale"], m["head_margin"], m["head"])
        if runs[0]["config"]["data"]["source"] == "synthetic" else None,
    }


def format_table(rows: list[dict]) -> str:
    """Markdown: one line per (scale, margin)."""
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f}%"
    lines = ["| head scale | head margin | seeds | accuracy (mean +- sd) | client model alone | server loss first -> last "
             "| uniform guess |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        guess = "-" if r["uniform_loss"] is None else f"{r['uniform_loss']:.2f}"
        lines.append(f"| {r['head_scale']:g} | {r['head_margin']:g} | {len(r['seeds'])} | {pct(r['accuracy_mean'])} "
                     f"+- {100 * r['accuracy_sd']:.2f} | {pct(r['client_model_accuracy_mean'])} | "
                     f"{r['first_loss']:.2f} -> {r['last_loss']:.2f} | {guess} |")
    return "\n".join(lines) + "\n"


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v]
    except ValueError:
        raise SystemExit(f"{flag}: expected comma-separated numbers, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    """Train every missing cell and seed, then write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", nargs="?", default=None, help="YAML config (default: the built-in default)")
    parser.add_argument("--scales", default="8,16,32,64", help="comma-separated head scales s")
    parser.add_argument("--margins", default="0.1,0.35", help="comma-separated head margins m")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args(argv)
    scales, margins = _floats(args.scales, "--scales"), _floats(args.margins, "--margins")
    seeds = [int(v) for v in _floats(args.seeds, "--seeds")]
    try:
        base = load_config(args.config, args.set)
        grid = {(s, m): [load_config(args.config, [*args.set, f"model.head_scale={s}", f"model.head_margin={m}",
                                                   f"seed={seed}", f"name={cell_name(base.name, s, m, seed)}"])
                         for seed in seeds] for s in scales for m in margins}
    except ConfigError as err:
        raise SystemExit(str(err)) from None
    rows = []
    for i, ((s, m), cfgs) in enumerate(grid.items(), 1):
        runs = []
        for cfg in cfgs:
            print(f"== cell {i}/{len(grid)}: s={s:g} m={m:g} seed {cfg.seed}", flush=True)
            runs.append(_finished(cfg) or train_central(cfg))
        rows.append(summarise(runs))
    table = format_table(rows)
    out = Path(base.output) / f"{base.name}_head_sweep"
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", "simulations/head_sweep.py", *(argv if argv is not None else sys.argv[1:])])
    (out / "table.md").write_text(f"`{command}`\n\n{table}")
    (out / "table.json").write_text(json.dumps({"command": command, "rows": rows}, indent=2))
    print(table)
    print(f"wrote {out / 'table.md'} and {out / 'table.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
