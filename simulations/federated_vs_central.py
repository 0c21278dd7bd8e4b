"""Federated vs centralized training of one strategy, over several seeds, at equal server steps.

    python simulations/federated_vs_central.py                      # the default config, duetface, seeds 0,1,2
    python simulations/federated_vs_central.py configs/lfw.yaml --seeds 0 --strategies duetface,hf_only

For every strategy and seed it runs these trainings on the same data and the same number of server
optimiser steps:
  federated          `fedsplit run`   (Flower + Ray, client model warmed up with FedAvg)
  central by_client  `fedsplit train --set train.central_batches=by_client`: every warm-up and server
                     batch is drawn from one sampled client's faces, exactly as the federated clients
                     draw them; one client model and one head, no averaging
  central mixed      `fedsplit train`: every batch is drawn from all training faces
  central, fed client  `fedsplit train --set train.client_model=<the federated run>`: central mixed,
                     but with the federated run's frozen client model instead of a central warm-up
                     (strategies with a client model only)
so the gap federated - central mixed splits into batch composition (by_client - mixed) and what
federation does to the client model's warm-up (FedAvg of clients with private heads vs one model with
one head: federated - central by_client): with the same client and by_client batches a central run
retraces the federated one exactly (tests/test_federated.py).
A run whose results.json already holds the same config is reused, so separate processes can share
the work. Writes `<output>/<name>_fed_vs_central/table.md` and `table.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from fedsplit.central import train_central
from fedsplit.config import Config, ConfigError, load_config, same_config
from fedsplit.federated import run_federated
from fedsplit.protection import STRATEGIES
from fedsplit.training import CLIENT_MODEL

MODES = ("federated", "central by_client", "central mixed", "central, fed client")
_TAGS = {"federated": "fed", "central by_client": "central_by_client", "central mixed": "central_mixed",
         "central, fed client": "central_fed_client"}


def _overrides(base: list[str], name: str, strategy: str, seed: int, mode: str, output: str) -> list[str]:
    sets = [*base, f"protection.strategy={strategy}", f"seed={seed}", f"name={name}_{strategy}_s{seed}_{_TAGS[mode]}"]
    if mode == "central by_client":
        sets.append("train.central_batches=by_client")
    if mode == "central, fed client":
        sets.append(f"train.client_model={Path(output) / f'{name}_{strategy}_s{seed}_fed'}")
    return sets


def _finished(cfg: Config, mode: str) -> dict | None:
    """The results of an earlier run of exactly this config (a federated one with its client model)."""
    path = cfg.run_dir() / "results.json"
    if path.exists():
        results = json.loads(path.read_text())
        # A run writes client_model.pt when its client freezes, results.json at its end: a client model
        # newer than the results is from a later run that did not finish.
        model = cfg.run_dir() / CLIENT_MODEL
        has_client = mode == "federated" and results.get("params", {}).get("client", 0) > 0  # read by the 4th
        if same_config(results.get("config") or {}, cfg) and (
                not has_client or (model.exists() and model.stat().st_mtime <= path.stat().st_mtime)):
            return results
    return None


def _run(cfg: Config, mode: str) -> dict:
    done = _finished(cfg, mode)
    if done is not None:
        print(f"[{cfg.name}] reusing {cfg.run_dir() / 'results.json'}")
        return done
    return run_federated(cfg) if mode == "federated" else train_central(cfg)


GAPS = ("central mixed", "central by_client", "central, fed client")


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.2f} +- {100 * sd:.2f}"


def format_table(rows: list[dict]) -> str:
    """Per-seed accuracies, then mean +- sample standard deviation over seeds, per strategy."""
    lines = ["| strategy | seed | " + " | ".join(MODES) + " | " + " | ".join(f"federated - {m}" for m in GAPS) + " |",
             "|---|---|" + "---|" * (len(MODES) + len(GAPS))]
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        mine = [r for r in rows if r["strategy"] == strategy]
        for r in mine:
            acc = r["accuracy"]
            cells = [f"{100 * acc[m]:.2f}%" if m in acc else "-" for m in MODES]
            cells += [f"{100 * (acc['federated'] - acc[m]):+.2f}" if m in acc else "-" for m in GAPS]
            lines.append(f"| {strategy} | {r['seed']} | " + " | ".join(cells) + " |")
        cols = [_mean_sd([r["accuracy"][m] for r in mine if m in r["accuracy"]]) for m in MODES]
        gaps = [_mean_sd([r["accuracy"]["federated"] - r["accuracy"][m] for r in mine if m in r["accuracy"]])
                for m in GAPS]
        lines.append(f"| **{strategy} mean +- sd** | {len(mine)} seeds | " + " | ".join(cols + gaps) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run every (strategy, seed, mode) that has no results yet, then write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", nargs="?", default=None, help="YAML config (default: the built-in default)")
    parser.add_argument("--strategies", default="duetface", help="comma-separated (default: duetface)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        raise SystemExit(f"--seeds: expected comma-separated integers, got {args.seeds!r}") from None
    strategies = [s for s in args.strategies.split(",") if s]
    try:
        base = load_config(args.config, args.set)
        plan = [(s, seed, m, load_config(args.config, _overrides(args.set, base.name, s, seed, m, base.output)))
                for s in strategies for seed in seeds for m in MODES
                if m != "central, fed client" or getattr(STRATEGIES.get(s), "uses_client_model", False)]
    except ConfigError as err:
        raise SystemExit(str(err)) from None
    rows: dict[tuple[str, int], dict] = {}
    for i, (strategy, seed, mode, cfg) in enumerate(plan, 1):
        print(f"== {i}/{len(plan)}: {strategy}, seed {seed}, {mode}", flush=True)
        results = _run(cfg, mode)
        row = rows.setdefault((strategy, seed), {"strategy": strategy, "seed": seed, "accuracy": {}, "runs": {}})
        row["accuracy"][mode] = results["accuracy"]
        row["runs"][mode] = str(cfg.run_dir())
    table = format_table(list(rows.values()))
    out = Path(base.output) / f"{base.name}_fed_vs_central"
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", "simulations/federated_vs_central.py", *(argv if argv is not None else sys.argv[1:])])
    (out / "table.md").write_text(f"`{command}`\n\n{table}")
    (out / "table.json").write_text(json.dumps({"command": command, "rows": list(rows.values())}, indent=2))
    print(table)
    print(f"wrote {out / 'table.md'} and {out / 'table.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
