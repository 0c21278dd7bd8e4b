"""Benchmark what numba's thread pool did to one-thread runs sharing the cores: client warm-up steps per second.

    python benchmarks/threads.py [--steps 30] [--processes 2] [--json out.json]

Each of `--processes` concurrent processes sets torch to one thread (as `OMP_NUM_THREADS=1` runs and
client actors with `simulation.client_cpus: 1` do), runs the DCT split once, then times `--steps`
client warm-up steps (the default config's client model, batch 32, upsample 1). Two settings side by
side, both measured now:
- `numba's count` re-creates what happened before `fedsplit.frequency` restored torch's thread count:
  the first launch of numba's OpenMP pool left torch on every core (NUMBA_NUM_THREADS);
- `kept at 1`: today's behaviour.
Prints seconds per step (the slowest process's mean) and the torch threads each process ran with.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

_WORKER = """
import json, sys, time, numba, torch
from fedsplit.config import load_config
from fedsplit.frequency import dct_split
from fedsplit.protection import ClientNet, make_strategy
from fedsplit.training import ClientWarmup
torch.set_num_threads(1)
torch.manual_seed(0)
dct_split(torch.zeros(2, 3, 112, 112), upsample=1)
if sys.argv[1] == "numba":
    torch.set_num_threads(numba.config.NUMBA_NUM_THREADS)
cfg = load_config(None, [])
strategy = make_strategy(cfg.protection, cfg.model)
warm = ClientWarmup(strategy, ClientNet(cfg.protection, cfg.model), 20, cfg, int(sys.argv[2]))
x, y = torch.rand(32, 3, 112, 112) * 2 - 1, torch.randint(0, 20, (32,))
warm.step(x, y)  # first step allocates; not timed
t0 = time.perf_counter()
for _ in range(int(sys.argv[2])):
    warm.step(x, y)
print(json.dumps({"seconds_per_step": (time.perf_counter() - t0) / int(sys.argv[2]),
                  "torch_threads": torch.get_num_threads()}))
"""


def measure(mode: str, steps: int, processes: int) -> dict:
    """Run `processes` workers at once in one mode; the slowest one's seconds per step."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("NUMBA_NUM_THREADS", None)  # numba's own default: every core, as users get it
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, mode, str(steps)], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(processes)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a {mode} worker failed (exit codes {[p.returncode for p in procs]})")
    return {"seconds_per_step": max(o["seconds_per_step"] for o in outs),
            "torch_threads": sorted({o["torch_threads"] for o in outs})}


def main() -> None:
    """Measure both settings and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    rows = {}
    for mode, label in (("numba", "numba's count"), ("kept", "kept at 1")):
        start = time.time()
        rows[label] = measure(mode, args.steps, args.processes)
        print(f"measured {label} in {time.time() - start:.0f} s", file=sys.stderr)
    base = rows["numba's count"]["seconds_per_step"]
    print(f"{args.processes} concurrent one-thread processes on {os.cpu_count()} cores, {args.steps} client "
          f"warm-up steps each (batch 32)")
    print(f"{'torch threads after the DCT':<30}{'threads':>8}{'s/step':>9}{'speed-up':>10}")
    for label, r in rows.items():
        threads = ",".join(map(str, r["torch_threads"]))
        print(f"{label:<30}{threads:>8}{r['seconds_per_step']:9.3f}{base / r['seconds_per_step']:9.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"processes": args.processes, "steps": args.steps, "cores": os.cpu_count(), "rows": rows}, f,
                      indent=2)


if __name__ == "__main__":
    main()
