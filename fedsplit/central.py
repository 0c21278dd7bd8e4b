"""`fedsplit train`: one protection strategy trained centrally, the reference for federated runs.

The same data, strategy code and server steps as a federated run, without clients: the client
model is pre-trained on all training identities, frozen, and then every server step encodes a
batch of training faces with the strategy and steps the server on the payload.
"""

from __future__ import annotations

import json
import time
from typing import Callable

import numpy as np
import torch

from fedsplit.config import Config, same_config
from fedsplit.batches import WARMUP_STREAM, ClientBatches, MixedBatches
from fedsplit.data.splits import build_splits, client_shards
from fedsplit.data.types import FACE_SIZE
from fedsplit.protection import ClientNet, make_strategy
from fedsplit.training import (ClientWarmup, ServerTrainer, evaluate, evaluate_client_model, freeze, load_client_model,
                               model_costs, resolve_device, save_client_model)

CHECKPOINT = "checkpoint.pt"
RAW_IMAGE_BYTES = FACE_SIZE * FACE_SIZE * 3  # one uint8 RGB face


def _fmt_acc(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def train_central(cfg: Config, fresh: bool = False, log: Callable[[str], None] = print) -> dict:
    """Train cfg's strategy centrally; write runs/<name>/results.json and report.md; return the results."""
    if cfg.protection.noise_sigma:
        raise ValueError("protection.noise_sigma: client noise is a setting of federated clients; fedsplit train "
                         "has none (use fedsplit run, or fedsplit privacy for what it hides)")
    start = time.perf_counter()
    out = cfg.run_dir()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    strategy = make_strategy(cfg.protection, cfg.model)
    splits = build_splits(cfg, progress=False)
    t = cfg.train
    log(f"[{cfg.name}] {strategy.name}: {strategy.description} (on {resolve_device(t.device)})")
    log(f"[{cfg.name}] data {splits.description}")

    given = t.client_model is not None  # a finished run's frozen client: no warm-up here
    if given:
        client = load_client_model(t.client_model, cfg).to(resolve_device(t.device))
        save_client_model(client, cfg, out)  # each run folder holds the client model its results came from
        log(f"[{cfg.name}] client model from {t.client_model} (frozen, no warm-up)")
    else:
        client = ClientNet(cfg.protection, cfg.model).to(resolve_device(t.device)) if strategy.uses_client_model else None
    trainer = ServerTrainer(strategy, cfg, splits.num_classes, client.map_channels if client else ())
    warm_steps = t.warmup_rounds * t.clients_per_round * t.warmup_local_steps if client and not given else 0
    warm = ClientWarmup(strategy, client, splits.num_classes, cfg, warm_steps) if warm_steps else None
    if t.central_batches == "by_client":
        # Both phases draw what the federated clients draw: each warm-up round's sampled clients give
        # warmup_local_steps batches of their own faces (one shared head here, no averaging).
        p = cfg.partition
        shards = client_shards(splits, p.clients, p.scheme, p.alpha, cfg.seed)
        warm_batches = ClientBatches(splits, shards, t.clients_per_round, t.warmup_local_steps, t.batch_size,
                                     cfg.seed, stream=WARMUP_STREAM)
        server_batches = ClientBatches(splits, shards, t.clients_per_round, t.batches_per_client, t.batch_size,
                                       cfg.seed)
    else:  # one seeded pass over all training faces, which the server's batches continue after the warm-up
        warm_batches = server_batches = MixedBatches(splits, t.batch_size, cfg.seed)
    steps_per_round = t.clients_per_round * t.batches_per_client
    state = {"warmup_done": 0, "round": 0, "epochs": [], "warmup": []}

    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists() and not fresh:
        ckpt = torch.load(ckpt_path, weights_only=False, map_location="cpu")
        if not same_config(ckpt["config"], cfg):
            raise ValueError(f"{ckpt_path} was written by a different config; pass --fresh to start over "
                             f"or choose another name")
        trainer.load_state_dict(ckpt["server"])
        if warm is not None:
            client.load_state_dict(ckpt["client"])
            warm.head.load_state_dict(ckpt["warm_head"])
            warm.opt.load_state_dict(ckpt["warm_opt"])
            warm.steps = ckpt["state"]["warmup_done"]
        if "warm_batches" in ckpt:  # absent from checkpoints of earlier versions
            warm_batches.restore(ckpt["warm_batches"])
        server_batches.restore(ckpt["server_batches"])
        torch.set_rng_state(ckpt["torch_rng"])
        state = ckpt["state"]
        log(f"[{cfg.name}] resumed from {ckpt_path}: warm-up step {state['warmup_done']}/{warm_steps}, "
            f"round {state['round']}/{t.rounds}")

    def save() -> None:
        ckpt = {"config": cfg.to_dict(), "server": trainer.state_dict(),
                "warm_batches": warm_batches.state(), "server_batches": server_batches.state(),
                "torch_rng": torch.get_rng_state(), "state": state}
        if warm is not None:
            ckpt.update(client=client.state_dict(), warm_head=warm.head.state_dict(), warm_opt=warm.opt.state_dict())
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(ckpt, tmp)
        tmp.replace(ckpt_path)  # atomic: an interrupted save never corrupts the last good checkpoint

    # 1. Client model warm-up, then frozen.
    if warm is not None:
        per_round = t.clients_per_round * t.warmup_local_steps
        while state["warmup_done"] < warm_steps:
            losses = [warm.step(x, y) for x, _, y in warm_batches.round(len(state["warmup"]) + 1, per_round)]
            state["warmup_done"] += per_round
            state["warmup"].append({"round": len(state["warmup"]) + 1, "loss": float(np.mean(losses))})
            log(f"[{cfg.name}] warm-up {len(state['warmup'])}/{t.warmup_rounds}  client loss {np.mean(losses):.3f}")
            save()
    if client is not None and not given:
        # Frozen with or without a warm-up, as a federated run's: in train mode its BatchNorm would
        # follow each batch and make the payloads depend on what else is in it.
        freeze(client)
        save_client_model(client, cfg, out)

    # 2. Server training, evaluated every eval_every rounds and after the last.
    verification = None
    while state["round"] < t.rounds:
        r0 = time.perf_counter()
        losses = []
        r = state["round"] + 1
        for x, lm, y in server_batches.round(r, steps_per_round):
            losses.append(trainer.step(strategy.encode(x.to(trainer.device), lm, client), y))
        state["round"] = r
        record = {"epoch": r, "round": r, "loss": float(np.mean(losses)), "lr": trainer.lr(),
                  "server_steps": trainer.steps, "accuracy": None, "seconds": None}
        if r % t.eval_every == 0 or r == t.rounds:
            verification = evaluate(strategy, client, trainer, splits.images, splits.landmarks, splits.pairs,
                                    splits.same, splits.fold, flip=t.flip_tta)
            record["accuracy"] = verification.accuracy
        record["seconds"] = round(time.perf_counter() - r0, 3)
        state["epochs"].append(record)
        log(f"[{cfg.name}] round {r}/{t.rounds}  loss {record['loss']:.3f}  "
            f"accuracy {_fmt_acc(record['accuracy'])}  ({record['seconds']:.1f} s)")
        save()

    if verification is None:  # resumed after the last round: evaluate the final model again
        verification = evaluate(strategy, client, trainer, splits.images, splits.landmarks, splits.pairs,
                                splits.same, splits.fold, flip=t.flip_tta)
    params, macs = model_costs(strategy, client, trainer)
    client_verification = None if client is None else evaluate_client_model(
        strategy, client, splits.images, splits.landmarks, splits.pairs, splits.same, splits.fold, flip=t.flip_tta)
    results = {
        "mode": "centralized",
        "central_batches": t.central_batches,
        "strategy": strategy.name,
        "accuracy": verification.accuracy,
        "accuracy_std": verification.accuracy_std,
        "tar_at_far": verification.tar_at_far,
        "far": verification.far,
        "tar_note": verification.tar_note,
        "verification": verification.to_dict(),
        # The frozen client model verifying on its own embeddings (a diagnostic of its warm-up; it never
        # leaves the client, and the server's accuracy above is what the strategy achieves).
        "client_model_accuracy": None if client_verification is None else client_verification.accuracy,
        "params": params,
        "macs": macs,
        "payload_bytes_per_image": strategy.payload_bytes_per_sample(),
        "payload_spec": {k: {"shape": list(f.shape), "dtype": str(f.dtype).replace("torch.", ""), "part": f.part}
                         for k, f in strategy.spec().items()},
        "raw_image_bytes": RAW_IMAGE_BYTES,
        "server_steps": trainer.steps,
        "warmup_steps": warm_steps,
        "client_model": t.client_model,
        "data": splits.description,
        "epochs": state["epochs"],
        "warmup": state["warmup"],
        "wall_seconds": round(time.perf_counter() - start, 2),
        "torch_threads": torch.get_num_threads(),  # float sums, and so the accuracy, depend on it
        "config": cfg.to_dict(),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    report = format_report(results)
    (out / "report.md").write_text(report)
    log(report)
    return results


def format_report(results: dict) -> str:
    """A short human report of one centralized run."""
    v = results["verification"]
    tar = "unavailable" if results["tar_at_far"] is None else f"{100 * results['tar_at_far']:.2f}%"
    lines = [
        f"# {results['config']['name']}: {results['strategy']} (centralized, {results['central_batches']} batches)",
        "",
        f"data: {results['data']}",
        "",
        "| metric | value |",
        "|---|---|",
        f"| verification accuracy | {100 * results['accuracy']:.2f}% +- {100 * results['accuracy_std']:.2f} "
        f"({v['folds']} folds, {v['pairs']} pairs) |",
        f"| TAR @ FAR={results['far']:g} | {tar} ({results['tar_note']}) |",
        f"| server params / MACs per image | {results['params']['server'] / 1e6:.2f} M / "
        f"{results['macs']['server'] / 1e6:.1f} M |",
        f"| client params / MACs per image | {results['params']['client'] / 1e6:.2f} M / "
        f"{results['macs']['client'] / 1e6:.1f} M |",
        f"| payload per image | {results['payload_bytes_per_image']:,} bytes "
        f"({results['payload_bytes_per_image'] / results['raw_image_bytes']:.1f}x a raw face) |",
        *([f"| client model alone (its own embeddings) | {100 * results['client_model_accuracy']:.2f}% |"]
          if results.get("client_model_accuracy") is not None else []),
        f"| server steps (warm-up steps) | {results['server_steps']} ({results['warmup_steps']}) |",
        *([f"| client model | from {results['client_model']} (frozen) |"] if results.get("client_model") else []),
        f"| wall time | {results['wall_seconds']:.1f} s |",
        "",
        "| round | loss | accuracy |",
        "|---|---|---|",
    ]
    lines += [f"| {e['round']} | {e['loss']:.3f} | {_fmt_acc(e['accuracy'])} |" for e in results["epochs"]]
    return "\n".join(lines) + "\n"

