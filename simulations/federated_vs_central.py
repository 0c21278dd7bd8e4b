"""Federated vs centralized training of one strategy, over several seeds, at equal server steps.

    python simulations/federated_vs_central.py                      # the default config, duetface, seeds 0,1,2
    python simulations/federated_vs_central.py configs/lfw.yaml --seeds 0 --strategies duetface,hf_only
    python simulations/federated_vs_central.py --seeds 6,7 --modes fed,central_mixed   # more seeds, two modes

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
Each gap is judged over the seeds: the mean of the per-seed differences with its 95% Student's t
interval is "within" the tolerance (--tolerance, 3 points) only if the whole interval is, "not within"
if the whole interval is outside, and undecided otherwise; an undecided gap says about how many seeds
would settle it were its mean and sd to hold (`seeds_to_decide_estimated`, an estimate).
A run whose results.json already holds the same config is reused, so separate processes can share
the work; `--table-only` runs nothing and tabulates what has finished. Writes
`<output>/<name>_fed_vs_central/table.md`, `table.json` (with `gaps`) and `gap_over_seeds.png` (each gap's
interval as seeds accumulate).
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
from fedsplit.data.splits import FaceSplits, build_splits
from fedsplit.federated import run_federated
from fedsplit.plots import plot_gap_intervals
from fedsplit.protection import STRATEGIES, make_strategy
from fedsplit.training import CLIENT_MODEL, evaluate_client_model, load_client_model

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


def client_model_accuracy(cfg: Config, splits: FaceSplits) -> float | None:
    """A finished run's frozen client model verifying the held-out pairs by its own embeddings; None without one.

    Computed here, outside the run: the federated server never holds faces, and this is a diagnostic of
    the warm-up (federated averaging vs one central model), not something a deployment could measure.
    """
    path = cfg.run_dir() / CLIENT_MODEL
    if not path.exists():
        return None
    strategy = make_strategy(cfg.protection, cfg.model)
    client = load_client_model(path, cfg)
    return evaluate_client_model(strategy, client, splits.images, splits.landmarks, splits.pairs, splits.same,
                                 splits.fold, flip=cfg.train.flip_tta).accuracy


def _run(cfg: Config, mode: str) -> dict:
    done = _finished(cfg, mode)
    if done is not None:
        print(f"[{cfg.name}] reusing {cfg.run_dir() / 'results.json'}")
        return done
    return run_federated(cfg) if mode == "federated" else train_central(cfg)


GAPS = ("central mixed", "central by_client", "central, fed client")
# Student's t, two-sided 95% (0.975 quantile), by degrees of freedom; the normal 1.96 past 30.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def paired_gap(diffs: list[float], tolerance: float) -> dict:
    """Mean of per-seed differences with its 95% t-interval, and whether the interval lies within
    +-tolerance (True), wholly outside it (False) or across its edge (None: more seeds needed).

    no_worse_than_tolerance asks the one-sided question, whether federation costs more than the tolerance:
    True if the interval lies above -tolerance, False if wholly below it, None if it crosses it (the lower
    end of a two-sided 95% interval is a one-sided 97.5% bound, so "shown" is the stricter reading).
    """
    n = len(diffs)
    mean = statistics.fmean(diffs) if diffs else None
    if n < 2:
        return {"n": n, "mean": mean, "sd": None, "ci95": None, "within_tolerance": None,
                "no_worse_than_tolerance": None, "tolerance": tolerance}
    sd = statistics.stdev(diffs)
    half = _t975(n - 1) * sd / math.sqrt(n)
    lo, hi = mean - half, mean + half
    within = True if -tolerance <= lo and hi <= tolerance else False if lo > tolerance or hi < -tolerance else None
    no_worse = True if lo >= -tolerance else False if hi < -tolerance else None
    return {"n": n, "mean": mean, "sd": sd, "ci95": [lo, hi], "within_tolerance": within,
            "no_worse_than_tolerance": no_worse, "tolerance": tolerance,
            "seeds_to_decide_estimated": seeds_to_decide(mean, sd, tolerance) if within is None else n}


def _t975(df: int) -> float:
    return _T975[df - 1] if df <= len(_T975) else 1.96


def seeds_to_decide(mean: float, sd: float, tolerance: float, most: int = 10_000) -> int | None:
    """Estimated seeds for the interval to clear the tolerance's edge if this mean and sd held; None past `most`.

    The interval settles once its half-width t * sd / sqrt(n) is below the distance from |mean| to the
    edge; a mean on the edge never settles. An estimate: the next seeds move both mean and sd.
    """
    room = abs(abs(mean) - tolerance)
    if room == 0.0:
        return None
    if sd == 0.0:
        return 2
    # Past 31 seeds t is the normal 1.96, so the bound is closed-form; below that, count up.
    for n in range(2, 32):
        if _t975(n - 1) * sd / math.sqrt(n) < room:
            return n
    n = max(32, math.floor((1.96 * sd / room) ** 2) + 1)
    return n if n <= most else None


def verdict(gap: dict) -> str:
    """One line a person reads: the mean gap, its interval and what it says about the tolerance."""
    tol = 100 * gap["tolerance"]
    if gap["ci95"] is None:
        return f"{gap['n']} seed(s): too few for an interval"
    lo, hi = (100 * v for v in gap["ci95"])
    what = {True: f"within +-{tol:g} points", False: f"not within +-{tol:g} points",
            None: f"undecided at +-{tol:g} points (the interval crosses its edge; more seeds would tell)"}
    line = (f"{100 * gap['mean']:+.2f} points, 95% CI [{lo:+.2f}, {hi:+.2f}] over {gap['n']} seeds: "
            f"{what[gap['within_tolerance']]}")
    if gap["within_tolerance"] is None:
        need = gap.get("seeds_to_decide_estimated")
        line += (f"; about {need} seeds in all would settle it if this mean and sd held (estimated)" if need
                 else "; the mean sits on the edge, so no number of seeds is estimated to settle it")
    worse = {True: f"shown (the interval lies above -{tol:g})", False: f"not shown (the interval lies below -{tol:g})",
             None: f"undecided (the interval crosses -{tol:g})"}
    return line + f". Federated at most {tol:g} points below: {worse[gap['no_worse_than_tolerance']]}"


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.2f} +- {100 * sd:.2f}"


def gaps_of(rows: list[dict], tolerance: float) -> dict[str, dict[str, dict]]:
    """Per strategy and centralized form: paired_gap of federated minus it over the seeds that have both."""
    out: dict[str, dict[str, dict]] = {}
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        mine = [r["accuracy"] for r in rows if r["strategy"] == strategy]
        diffs = {m: [a["federated"] - a[m] for a in mine if m in a and "federated" in a] for m in GAPS}
        out[strategy] = {m: paired_gap(d, tolerance) for m, d in diffs.items() if d}
    return out


def format_table(rows: list[dict], tolerance: float = 0.03) -> str:
    """Per-seed accuracies, mean +- sample standard deviation over seeds, and the gaps' 95% intervals."""
    judged = gaps_of(rows, tolerance)
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
        gaps = [f"{100 * g['mean']:.2f} +- {100 * (g['sd'] or 0.0):.2f}" if (g := judged[strategy].get(m)) else "-"
                for m in GAPS]
        lines.append(f"| **{strategy} mean +- sd** | {len(mine)} seeds | " + " | ".join(cols + gaps) + " |")
        alone = [_mean_sd([r["client_model_accuracy"][m] for r in mine if m in r.get("client_model_accuracy", {})])
                 for m in MODES]
        if any(c != "-" for c in alone):
            lines.append(f"| {strategy}: client model alone | mean +- sd | " + " | ".join(alone + ["-"] * len(GAPS)) + " |")
    notes = [f"- {strategy}, federated - {m}: {verdict(g)}"
             for strategy, by_mode in judged.items() for m, g in by_mode.items()]
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def running_gaps(rows: list[dict], strategy: str, mode: str, tolerance: float) -> list[dict]:
    """paired_gap over the first 2, 3, ... seeds (in seed order) that have both runs: how the interval narrows."""
    diffs = [r["accuracy"]["federated"] - r["accuracy"][mode]
             for r in sorted(rows, key=lambda r: r["seed"])
             if r["strategy"] == strategy and "federated" in r["accuracy"] and mode in r["accuracy"]]
    return [paired_gap(diffs[:n], tolerance) for n in range(2, len(diffs) + 1)]


def plot_running_gap(rows: list[dict], tolerance: float, path: Path) -> Path | None:
    """Each gap's mean and 95% interval as seeds accumulate, against the +-tolerance band; None if too few."""
    curves = {f"{s}: federated - {m}": g for s in dict.fromkeys(r["strategy"] for r in rows) for m in GAPS
              if (g := running_gaps(rows, s, m, tolerance))}
    return plot_gap_intervals(curves, tolerance, path) if curves else None


def main(argv: list[str] | None = None) -> int:
    """Run every (strategy, seed, mode) that has no results yet, then write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", nargs="?", default=None, help="YAML config (default: the built-in default)")
    parser.add_argument("--strategies", default="duetface", help="comma-separated (default: duetface)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--modes", default=",".join(_TAGS.values()),
                        help=f"comma-separated subset of {','.join(_TAGS.values())} (default: all; fed always runs)")
    parser.add_argument("--tolerance", type=float, default=3.0, help="accuracy points the gap is judged against")
    parser.add_argument("--table-only", action="store_true",
                        help="run nothing: build the table from the finished runs (others are listed and left out)")
    args = parser.parse_args(argv)
    tags = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := [m for m in tags if m not in _TAGS.values()]:
        raise SystemExit(f"--modes: unknown {', '.join(map(repr, unknown))}; choose from {','.join(_TAGS.values())}")
    modes = [m for m in MODES if m == "federated" or _TAGS[m] in tags]  # every gap needs the federated run
    if not args.tolerance > 0:
        raise SystemExit(f"--tolerance: expected a positive number of points, got {args.tolerance}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        raise SystemExit(f"--seeds: expected comma-separated integers, got {args.seeds!r}") from None
    strategies = [s for s in args.strategies.split(",") if s]
    try:
        base = load_config(args.config, args.set)
        plan = [(s, seed, m, load_config(args.config, _overrides(args.set, base.name, s, seed, m, base.output)))
                for s in strategies for seed in seeds for m in modes
                if m != "central, fed client" or getattr(STRATEGIES.get(s), "uses_client_model", False)]
    except ConfigError as err:
        raise SystemExit(str(err)) from None
    rows: dict[tuple[str, int], dict] = {}
    splits_of: dict[int, FaceSplits] = {}
    missing = []
    for i, (strategy, seed, mode, cfg) in enumerate(plan, 1):
        if args.table_only:
            if (results := _finished(cfg, mode)) is None:
                missing.append(f"{strategy} seed {seed} {mode}")
                continue
        else:
            print(f"== {i}/{len(plan)}: {strategy}, seed {seed}, {mode}", flush=True)
            results = _run(cfg, mode)
        row = rows.setdefault((strategy, seed), {"strategy": strategy, "seed": seed, "accuracy": {}, "runs": {},
                                                 "client_model_accuracy": {}})
        row["accuracy"][mode] = results["accuracy"]
        row["runs"][mode] = str(cfg.run_dir())
        if results.get("client_model_accuracy") is not None:  # fedsplit train measured it already
            row["client_model_accuracy"][mode] = results["client_model_accuracy"]
        elif (cfg.run_dir() / CLIENT_MODEL).exists():  # the same faces for every mode of a seed: build them once
            if splits_of.get(seed) is None:
                splits_of[seed] = build_splits(cfg)
            row["client_model_accuracy"][mode] = client_model_accuracy(cfg, splits_of[seed])
    if missing:
        print(f"left out, not finished ({len(missing)}): {'; '.join(missing)}")
    if not rows:
        raise SystemExit("no finished runs to tabulate")
    done, tolerance = list(rows.values()), args.tolerance / 100
    table = format_table(done, tolerance)
    out = Path(base.output) / f"{base.name}_fed_vs_central"
    out.mkdir(parents=True, exist_ok=True)
    plot = plot_running_gap(done, tolerance, out / "gap_over_seeds.png")
    command = " ".join(["python", "simulations/federated_vs_central.py", *(argv if argv is not None else sys.argv[1:])])
    (out / "table.md").write_text(f"`{command}`\n\n{table}")
    (out / "table.json").write_text(json.dumps({"command": command, "rows": done,
                                                "gaps": gaps_of(done, tolerance)}, indent=2))
    print(table)
    print(f"wrote {out / 'table.md'} and {out / 'table.json'}" + (f" and {plot}" if plot else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
