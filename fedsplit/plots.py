"""PNG plots of a federated run: accuracy and bytes over rounds, and bytes per client."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on the machines this runs on
import matplotlib.pyplot as plt  # noqa: E402


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
    x = range(len(rounds))
    bytes_ax.bar([i - 0.2 for i in x], [r["uplink"] / 1e6 for r in rounds], width=0.4, label="uplink")
    bytes_ax.bar([i + 0.2 for i in x], [r["downlink"] / 1e6 for r in rounds], width=0.4, label="downlink")
    bytes_ax.set_xticks(list(x), labels, rotation=90 if len(rounds) > 20 else 0, fontsize=8)
    bytes_ax.set(xlabel="round (w: warm-up, s: split)", ylabel="MB", title="bytes per round, measured")
    bytes_ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_clients(results: dict, path: Path) -> Path:
    """Megabytes each client sent and received over the whole run."""
    per_client = results["bytes"]["per_client"]
    names = list(per_client)
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(names) + 2), 3.5))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [per_client[n]["uplink"] / 1e6 for n in names], width=0.4, label="uplink")
    ax.bar([i + 0.2 for i in x], [per_client[n]["downlink"] / 1e6 for n in names], width=0.4, label="downlink")
    ax.set_xticks(list(x), names, fontsize=8)
    ax.set(xlabel="client (partition id)", ylabel="MB", title="bytes per client, measured")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
