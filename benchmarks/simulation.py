"""Benchmark the federated simulation at several client counts: time per round, memory, overhead.

    python benchmarks/simulation.py [--clients 8,32,100] [--rounds 3] [--set key=value ...] [--json out.json]

For each client count it runs `fedsplit run` on the built-in synthetic faces (default config, with
`partition.clients` set, one warm-up round and a few split rounds) and prints:
- wall seconds per split round (mean over rounds after the first, which also starts actors),
- peak resident memory of the driver process (server, Ray driver) and of the largest Ray actor
  (a ClientAppActor; sampled from /proc every 0.2 s, each process's own high-water mark),
- the share of split-round time spent outside model compute: 1 - (server step time + client encode
  time / concurrent actors) / round time. Client encode time is measured per client; dividing by
  the number of actors assumes they ran in parallel, so this share is a lower bound on the overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

from fedsplit.config import load_config
from fedsplit.federated import run_federated


def _actor_pids() -> list[str]:
    """Process ids of the running Ray ClientAppActors."""
    pids = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and b"ClientAppActor" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(pid)
        except OSError:  # the process ended between listing and reading
            continue
    return pids


def _actor_peaks(stop: threading.Event, peaks: dict[int, int], ignore: set[str]) -> None:
    """Record each new Ray ClientAppActor process's peak RSS (VmHWM, KiB) until stop is set."""
    while not stop.is_set():
        for pid in _actor_pids():
            if pid in ignore:  # still shutting down from the previous run
                continue
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks[int(pid)] = max(peaks.get(int(pid), 0), int(line.split()[1]))
            except OSError:  # the process ended between listing and reading
                continue
        stop.wait(0.2)


def bench(clients: int, rounds: int, overrides: list[str], out_dir: Path) -> dict:
    """One simulation run; returns its figures."""
    # One warm-up round: warm-up cost does not depend on the client count, split rounds are the subject.
    cfg = load_config(None, ["train.warmup_rounds=1", *overrides, f"partition.clients={clients}", f"train.rounds={rounds}",
                             f"name=bench_{clients}", f"output={out_dir}", f"train.eval_every={rounds}"])
    peaks: dict[int, int] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_actor_peaks, args=(stop, peaks, set(_actor_pids())), daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        results = run_federated(cfg, log=lambda s: None)
    finally:
        stop.set()
        sampler.join()
    wall = time.perf_counter() - start
    split = [r for r in results["rounds"] if r["phase"] == "split"]
    steady = split[1:] or split
    # Ray runs as many actors as its CPUs hold clients (client_cpus each).
    actors = max(1, int((os.cpu_count() or 1) // cfg.simulation.client_cpus))
    per_round = sum(r["seconds"] for r in steady) / len(steady)
    compute = sum(r["server_compute_seconds"] + r["client_compute_seconds"] / actors for r in steady) / len(steady)
    return {
        "clients": clients, "rounds": rounds, "actors": actors, "actor_processes_seen": len(peaks),
        "wall_seconds": round(wall, 1),
        "seconds_per_round": round(per_round, 2),
        "first_round_seconds": split[0]["seconds"] if split else None,
        "driver_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "actor_peak_mib": round(max(peaks.values(), default=0) / 1024, 1),
        "outside_compute_share": round(max(0.0, 1.0 - compute / per_round), 3) if per_round else None,
        "uplink_mb_per_round": round(sum(r["uplink"] for r in steady) / len(steady) / 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the client counts one after another and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="8,32,100", help="comma-separated client counts")
    parser.add_argument("--rounds", type=int, default=3, help="split rounds per run (default 3)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--out", type=Path, default=Path("/tmp/fedsplit_bench"), help="run folders")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    rows = []
    header = (f"{'clients':>7} {'actors':>6} {'s/round':>8} {'1st round s':>11} {'driver MiB':>10} "
              f"{'actor MiB':>9} {'outside compute':>15} {'MB up/round':>11}")
    print(header, flush=True)
    for n in [int(c) for c in args.clients.split(",") if c]:
        r = bench(n, args.rounds, args.set, args.out)
        rows.append(r)
        share = "-" if r["outside_compute_share"] is None else f"{100 * r['outside_compute_share']:.0f}%"
        print(f"{r['clients']:>7} {r['actors']:>6} {r['seconds_per_round']:>8.2f} {r['first_round_seconds']:>11.2f} "
              f"{r['driver_peak_mib']:>10.0f} {r['actor_peak_mib']:>9.0f} {share:>15} {r['uplink_mb_per_round']:>11.1f}",
              flush=True)
    print("driver MiB is this process's high-water mark so far (it only grows across rows)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
