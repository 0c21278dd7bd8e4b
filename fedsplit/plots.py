"""PNG plots: a federated run's accuracy and bytes over rounds and bytes per client, and gap intervals over seeds."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on the machines this runs on
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def plot_rounds(results: dict, path: Path) -> Path:
    """Held-out accuracy and loss per split round, and megabytes per round by direction, in one figure."""
    rounds = results["rounds"]
    split = [r for r in rounds if r["phase"] == "split"]
    fig, (acc_ax, bytes_ax) = plt.subplots(1, 2, figsize=(11, 4))
    evaluated = [r for r in split if r["accuracy"] is not None]
    acc_ax.plot([r["round"] for r in evaluated], [100 * r["accuracy"] for r in evaluated], "o-", label="accuracy")
    acc_ax.axhline(50, color="grey", lw=0.8, ls="--", label="chance")
    acc_ax.set(xlabel="split round", ylabel="held-out verification accuracy (%)",
               title=f"{results['strategy']}: accuracy over rounds")
    loss_ax = acc_ax.twinx()
    loss_ax.plot([r["round"] for r in split], [r["loss"] for r in split], color="tab:red", alpha=0.6, label="loss")
    loss_ax.set_ylabel("server training loss", color="tab:red")
    acc_ax.legend(loc="lower right")
    labels = [f"{'w' if r['phase'] == 'warmup' else 's'}{r['round']}" for r in rounds]
    _up_down_bars(bytes_ax, labels, [r["uplink"] for r in rounds], [r["downlink"] for r in rounds],
                  "round (w: warm-up, s: split)", "bytes per round, measured")
    return _save(fig, path)


def plot_clients(results: dict, path: Path) -> Path:
    """Megabytes each client sent and received over the whole run."""
    per_client = results["bytes"]["per_client"]
    names = list(per_client)
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(names) + 2), 3.5))
    _up_down_bars(ax, names, [per_client[n]["uplink"] for n in names], [per_client[n]["downlink"] for n in names],
                  "client (partition id)", "bytes per client, measured")
    return _save(fig, path)


def plot_gap_intervals(curves: dict[str, list[dict]], tolerance: float, path: Path) -> Path:
    """Each labelled gap's mean and 95% interval (paired_gap dicts, by seed count) against the +-tolerance band."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.axhspan(-100 * tolerance, 100 * tolerance, color="grey", alpha=0.15, label=f"+-{100 * tolerance:g} points")
    ax.axhline(0, color="grey", lw=0.8)
    for i, (label, gaps) in enumerate(curves.items()):
        n = [g["n"] + 0.08 * i for g in gaps]  # a small shift keeps the intervals apart
        line, = ax.plot(n, [100 * g["mean"] for g in gaps], "o-", ms=3, label=label)
        ax.fill_between(n, [100 * g["ci95"][0] for g in gaps], [100 * g["ci95"][1] for g in gaps],
                        color=line.get_color(), alpha=0.15)
    # Two or three seeds give intervals tens of points wide; scale to the rest so the band stays readable.
    later = [100 * v for gaps in curves.values() for g in gaps if g["n"] >= 4 for v in g["ci95"]]
    if later:
        ax.set_ylim(min(*later, -100 * tolerance) - 2, max(*later, 100 * tolerance) + 2)
    ax.set(xlabel="seeds so far (in seed order)", ylabel="accuracy gap, points (mean, 95% CI)",
           title="Federated minus centralized as seeds accumulate")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return _save(fig, path)


def _up_down_bars(ax: plt.Axes, labels: list[str], up: list[int], down: list[int], xlabel: str, title: str) -> None:
    """Side-by-side uplink and downlink bars in MB."""
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], [b / 1e6 for b in up], width=0.4, label="uplink")
    ax.bar([i + 0.2 for i in x], [b / 1e6 for b in down], width=0.4, label="downlink")
    ax.set_xticks(list(x), labels, rotation=90 if len(labels) > 20 else 0, fontsize=8)
    ax.set(xlabel=xlabel, ylabel="MB", title=title)
    ax.legend()


def _save(fig: plt.Figure, path: Path) -> Path:
    """Write the figure as PNG and free it."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
