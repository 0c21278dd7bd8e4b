"""`fedsplit run`: DuetFace split learning with Flower apps on the Ray simulation engine.

Where data goes. Each client (a Flower ClientApp, run in whichever Ray actor is free) finds its
private faces by its `partition-id`: they are built from the config and cached per actor process,
never put in a message. Messages, all counted by `CountingGrid`:
  1. `query.info` (setup): the client's partition id and class count (labels are client-namespaced).
  2. `train` (warm-up, FedAvg): client-model weights down, trained weights up; the head stays local.
  3. `query.install`: the frozen client model, once, to every client.
  4. `query.eval`: payloads of the client's held-out faces (and their mirror images), once; the
     server keeps them and evaluates on them after any round.
  5. `query.payload` (split rounds): batches of payloads and local labels up; nothing else goes down.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from fedsplit.config import Config
from fedsplit.data.splits import ClientShard, FaceSplits, build_splits, client_shards
from fedsplit.data.types import FACE_SIZE
from fedsplit.plots import plot_clients, plot_rounds
from fedsplit.protection import ClientNet, Strategy, make_strategy
from fedsplit.protection.base import add_noise
from fedsplit.traffic import Ledger
from fedsplit.batches import NOISE_STREAM, PAYLOAD_STREAM, WARMUP_STREAM, client_batch, client_rng
from fedsplit.training import (ClientWarmup, ServerTrainer, flip_faces, freeze, load_client_model, model_costs,
                               resolve_device, save_client_model, to_tensors)
from fedsplit.verification import evaluate_pairs, pair_decisions, pair_distances
from strategies.split_training import PAYLOAD, SplitTraining
from strategies.warmup import SeededFedAvg

RAW_IMAGE_BYTES = FACE_SIZE * FACE_SIZE * 3
INFO, INSTALL, EVAL = "query.info", "query.install", "query.eval"
# Every message type make_client_app handles (fedsplit.flower_apps routes these to it; a test keeps them in step).
CLIENT_MESSAGE_TYPES = ("train", INFO, INSTALL, PAYLOAD, EVAL)

# Per actor process: the run's faces and client shards, built once from the config.
_DATA: dict[str, tuple[FaceSplits, list[ClientShard]]] = {}


def _client_data(cfg: Config) -> tuple[FaceSplits, list[ClientShard]]:
    """The faces and shards of this config, cached in this process."""
    key = json.dumps(cfg.to_dict(), sort_keys=True)
    if key not in _DATA:
        splits = build_splits(cfg)
        p = cfg.partition
        _DATA[key] = (splits, client_shards(splits, p.clients, p.scheme, p.alpha, cfg.seed))
    return _DATA[key]


def _arrays(tensors: dict[str, torch.Tensor]) -> ArrayRecord:
    return ArrayRecord({k: Array(v.detach().cpu().contiguous()) for k, v in tensors.items()})


def _state_of(rec: ArrayRecord) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.array(rec[k].numpy())) for k in rec.keys()}


def warmed_up(arrays: ArrayRecord, failures: list[dict], rounds: int, timeout: float) -> ArrayRecord:
    """The warm-up's averaged client model, or an error naming why no round produced one."""
    if len(arrays):
        return arrays
    why = "; ".join(f"round {f['round']}: {f['error']}" for f in failures[-3:]) or "no replies"
    raise RuntimeError(f"client-model warm-up: no client reply arrived in any of the {rounds} rounds ({why}); "
                       f"simulation.round_timeout is {timeout:g} s")


def _noise_generator(seed: int, server_round: int, client: int) -> torch.Generator:
    """The client's noise stream for one round (0: its held-out payloads), independent of the actor."""
    return torch.Generator().manual_seed(int(client_rng(seed, server_round, client, NOISE_STREAM).integers(2**62)))


def _encode_batch(strategy: Strategy, x: torch.Tensor, lm: torch.Tensor, client: ClientNet | None,
                  device: torch.device, sigma: float, noise: torch.Generator | None) -> dict[str, torch.Tensor]:
    """One batch's payload, encoded on the client's device (its warm-up's: an actor given a GPU uses it),
    noised when the client adds noise, and back on the CPU, which waits for a GPU's work to finish."""
    encoded = strategy.encode(x.to(device), lm, client)
    if sigma > 0:
        encoded = add_noise(strategy, encoded, sigma, noise)
    return {k: t.cpu() for k, t in encoded.items()}


def make_client_app(cfg: Config) -> ClientApp:
    """The ClientApp of a run: every handler finds its data by partition-id."""
    app = ClientApp()

    def setup(context: Context) -> tuple[Strategy, FaceSplits, ClientShard, int]:
        torch.set_num_threads(max(1, int(cfg.simulation.client_cpus)))
        found = int(context.node_config.get("num-partitions", cfg.partition.clients))
        if found != cfg.partition.clients:
            raise RuntimeError(_supernode_mismatch(found, cfg.partition.clients))
        splits, shards = _client_data(cfg)
        pid = int(context.node_config["partition-id"])
        return make_strategy(cfg.protection, cfg.model), splits, shards[pid], pid

    @app.query("info")
    def info(msg: Message, context: Context) -> Message:
        _, _, shard, pid = setup(context)
        return Message(RecordDict({"info": MetricRecord({"partition-id": pid, "classes": shard.num_local_classes,
                                                         "train-faces": len(shard.train),
                                                         "eval-faces": len(shard.eval_faces)})}), reply_to=msg)

    @app.train()
    def warmup(msg: Message, context: Context) -> Message:
        strategy, splits, shard, pid = setup(context)
        conf = msg.content["config"]
        client = ClientNet(cfg.protection, cfg.model)
        client.load_state_dict(_state_of(msg.content["arrays"]))
        total = cfg.train.warmup_rounds * cfg.train.warmup_local_steps
        # Any actor may serve this client: seed the private head's first draw by client, not by actor.
        torch.manual_seed(cfg.seed * 100_003 + pid)
        warm = ClientWarmup(strategy, client, shard.num_local_classes, cfg, total)
        if "head" in context.state:  # the private head persists on the client between rounds
            warm.head.load_state_dict(_state_of(context.state["head"]))
        rnd = int(conf["server-round"])
        warm.steps = (rnd - 1) * cfg.train.warmup_local_steps
        rng = client_rng(cfg.seed, rnd, pid, WARMUP_STREAM)
        losses = []
        for _ in range(cfg.train.warmup_local_steps):
            x, _, local = client_batch(splits, shard, cfg.train.batch_size, rng)
            losses.append(warm.step(x, local))
        context.state["head"] = _arrays(warm.head.state_dict())
        metrics = MetricRecord({"num-examples": len(shard.train), "loss": float(np.mean(losses))})
        return Message(RecordDict({"arrays": _arrays(client.state_dict()), "metrics": metrics}), reply_to=msg)

    @app.query("install")
    def install(msg: Message, context: Context) -> Message:
        context.state["client_model"] = msg.content["arrays"]
        return Message(RecordDict({"ack": MetricRecord({"ok": 1})}), reply_to=msg)

    def frozen_client(strategy: Strategy, context: Context, device: torch.device) -> ClientNet | None:
        if not strategy.uses_client_model:
            return None
        if "client_model" not in context.state:
            raise RuntimeError("payload requested before the frozen client model was installed")
        client = ClientNet(cfg.protection, cfg.model)
        client.load_state_dict(_state_of(context.state["client_model"]))
        return freeze(client).to(device)

    @app.query("payload")
    def payload(msg: Message, context: Context) -> Message:
        strategy, splits, shard, pid = setup(context)
        conf = msg.content["config"]
        batches, size = int(conf["batches"]), int(conf["batch-size"])
        rng = client_rng(cfg.seed, int(conf["server-round"]), pid, PAYLOAD_STREAM)
        device = resolve_device(cfg.train.device)
        client = frozen_client(strategy, context, device)
        sigma = cfg.protection.client_noise(pid)
        noise = _noise_generator(cfg.seed, int(conf["server-round"]), pid) if sigma > 0 else None
        parts: dict[str, list[torch.Tensor]] = {}
        labels = []
        compute = 0.0  # the split and the client model, for the share of round time spent elsewhere
        for _ in range(batches):
            x, lm, local = client_batch(splits, shard, size, rng)
            t0 = time.perf_counter()
            for k, t in _encode_batch(strategy, x, lm, client, device, sigma, noise).items():
                parts.setdefault(k, []).append(t)
            compute += time.perf_counter() - t0
            labels.append(local)
        record = _arrays({**{k: torch.cat(v) for k, v in parts.items()}, "labels": torch.cat(labels)})
        metrics = MetricRecord({"num-examples": batches * size, "compute-seconds": compute})
        return Message(RecordDict({"payload": record, "metrics": metrics}), reply_to=msg)

    @app.query("eval")
    def evaluate(msg: Message, context: Context) -> Message:
        strategy, splits, shard, pid = setup(context)
        device = resolve_device(cfg.train.device)
        client = frozen_client(strategy, context, device)
        sigma = cfg.protection.client_noise(pid)
        noise = _noise_generator(cfg.seed, 0, pid) if sigma > 0 else None
        out = RecordDict({"index": ArrayRecord({"face": Array(shard.eval_faces.astype(np.int64))})})
        views = {"eval": (splits.images[shard.eval_faces], splits.landmarks[shard.eval_faces])}
        if cfg.train.flip_tta:
            views["eval_flipped"] = flip_faces(*views["eval"])
        for name, (images, landmarks) in views.items():
            parts: dict[str, list[torch.Tensor]] = {}
            for i in range(0, len(images), 64):
                x, lm = to_tensors(images[i : i + 64], landmarks[i : i + 64])
                for k, t in _encode_batch(strategy, x, lm, client, device, sigma, noise).items():
                    parts.setdefault(k, []).append(t)
            out[name] = _arrays({k: torch.cat(v) for k, v in parts.items()})
        return Message(out, reply_to=msg)

    return app


class CountingGrid:
    """A Grid that counts every message it sends and receives in a Ledger (then delegates)."""

    def __init__(self, grid: Grid, ledger: Ledger, part_of: dict[str, str], keep: bool = False) -> None:
        """keep=True also keeps every message (for tests that inspect what the server received)."""
        self.grid = grid
        self.ledger = ledger
        self.part_of = part_of
        self.node_client: dict[int, int] = {}
        self.phase = "setup"
        self.round = 0
        self.kept: list[tuple[str, Message]] | None = [] if keep else None

    def get_node_ids(self) -> list[int]:
        """The nodes of the simulation."""
        return list(self.grid.get_node_ids())

    def _round(self, msg: Message) -> int:
        if msg.has_content() and "config" in msg.content and "server-round" in msg.content["config"]:
            return int(msg.content["config"]["server-round"])
        return self.round

    def send_and_receive(self, messages, *, timeout: float | None = None):  # noqa: ANN001, ANN201 - Grid's API
        """Count the messages going out and the replies coming back."""
        messages = list(messages)
        sent_round = {}
        for m in messages:
            sent_round[m.metadata.dst_node_id] = self._round(m)
        replies = list(self.grid.send_and_receive(messages, timeout=timeout))
        # Sized after sending: the grid fills in message ids and timestamps, which travel too. Arrays not
        # named in part_of are client-model weights (FedAvg's state dicts).
        for m in messages:
            self.ledger.add(m, round=sent_round[m.metadata.dst_node_id], phase=self.phase, node=m.metadata.dst_node_id,
                            direction="downlink", part_of=self.part_of, default_part="client_model")
        for r in replies:
            node = r.metadata.src_node_id
            self.ledger.add(r, round=sent_round.get(node, self.round), phase=self.phase, node=node,
                            direction="uplink", part_of=self.part_of, default_part="client_model")
        if self.kept is not None:
            self.kept += [("downlink", m) for m in messages] + [("uplink", r) for r in replies]
        self.ledger.name_clients(self.node_client)
        return replies


def _supernode_mismatch(found: int, n: int) -> str:
    return (f"the federation has {found} supernodes but partition.clients is {n}: the server waits for exactly "
            f"partition.clients supernodes, one per client partition, so set the federation's num-supernodes to {n} "
            f"(or partition.clients to {found})")


# Simulated supernodes are all registered in one quick loop: a count that stays this long is final.
_NODES_SETTLED_S = 2.0


def _wait_for_nodes(grid: Grid, n: int, timeout: float) -> list[int]:
    """The ids of the n supernodes; raise naming both numbers when the federation has another size."""
    start = time.time()
    count, since = 0, start
    while len(ids := sorted(grid.get_node_ids())) != n:
        now = time.time()
        if len(ids) > n:
            raise RuntimeError(_supernode_mismatch(len(ids), n))
        if len(ids) != count:
            count, since = len(ids), now
        elif count and now - since > _NODES_SETTLED_S:
            raise RuntimeError(_supernode_mismatch(count, n))
        if now - start > timeout:
            raise TimeoutError(f"only {len(ids)} of {n} simulated clients registered within {timeout:.0f} s "
                               f"(the federation's num-supernodes must equal partition.clients)")
        time.sleep(0.1)
    return ids


class _Unanswered(RuntimeError):
    """Some clients failed or did not answer a setup request."""


def ask_all(grid: "CountingGrid", nodes: list[int], content: Callable[[], RecordDict], message_type: str,
            timeout: float, what: str, attempts: int = 3) -> list[Message]:
    """Send one request to every node and return one good reply from each.

    Setup requests (info, install, held-out payloads) must reach every client, so nodes that fail or
    time out are asked again, with backoff, up to `attempts` times in all; then the run stops with
    an error naming the request and the last reason.
    """
    good: dict[int, Message] = {}

    @retry(stop=stop_after_attempt(attempts), wait=wait_exponential(multiplier=1, max=10),
           retry=retry_if_exception_type(_Unanswered), reraise=True)
    def once() -> None:
        pending = [n for n in nodes if n not in good]
        replies = grid.send_and_receive([Message(content(), dst_node_id=n, message_type=message_type) for n in pending],
                                        timeout=timeout)
        reason = "timeout"
        for r in replies:
            if r.has_error():
                reason = r.error.reason.strip().splitlines()[-1][:400] if r.error.reason else str(r.error.code)
            else:
                good[r.metadata.src_node_id] = r
        if len(good) < len(nodes):
            raise _Unanswered(f"{what}: {len(good)} of {len(nodes)} clients answered ({reason})")

    once()
    return [good[n] for n in nodes]


def make_server_app(cfg: Config, out: dict[str, Any], log: Callable[[str], None] = print) -> ServerApp:
    """The ServerApp of a run: it trains, writes runs/<name>/ and leaves the results in out["results"].

    `out` also receives the trained state, history and byte ledger; out["start"] (default: when main
    starts) is the start of the wall time, out["keep_messages"] keeps every message (see CountingGrid).
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        start = out.setdefault("start", time.time())
        cfg.run_dir().mkdir(parents=True, exist_ok=True)
        splits = build_splits(cfg)  # the server needs only the evaluation pairs (as face indices)
        log(f"[{cfg.name}] federated {cfg.protection.strategy}: {cfg.partition.clients} clients on Ray; data "
            f"{splits.description}")
        t = cfg.train
        timeout = cfg.simulation.round_timeout
        torch.manual_seed(cfg.seed)
        strategy = make_strategy(cfg.protection, cfg.model)
        part_of = {k: f.part for k, f in strategy.spec().items()}
        part_of.update(labels="labels", face="eval_index")
        ledger = Ledger()
        counting = CountingGrid(grid, ledger, part_of, keep=bool(out.get("keep_messages")))
        out["ledger"], out["grid"] = ledger, counting
        nodes = _wait_for_nodes(grid, cfg.partition.clients, timeout)

        # Setup: who is who, and how many private classes each client has.
        replies = ask_all(counting, nodes, RecordDict, INFO, timeout, "client info")
        info = {r.metadata.src_node_id: r.content["info"] for r in replies}
        counting.node_client = {n: int(i["partition-id"]) for n, i in info.items()}
        nodes.sort(key=counting.node_client.__getitem__)  # partition order: node ids are random per run
        ledger.name_clients(counting.node_client)
        classes = {int(i["partition-id"]): int(i["classes"]) for i in info.values()}
        offset, total = {}, 0
        for pid in sorted(classes):
            offset[pid], total = total, total + classes[pid]
        log(f"[{cfg.name}] {len(nodes)} clients, {total} training identities (client-namespaced labels)")

        # 1. Client-model warm-up with FedAvg, then frozen and installed on every client.
        client = None
        history: list[dict] = []
        warmup_failures: list[dict] = []
        if t.client_model is not None:
            client = load_client_model(t.client_model, cfg)
            log(f"[{cfg.name}] client model from {t.client_model} (frozen, no warm-up)")
        elif strategy.uses_client_model:
            client = ClientNet(cfg.protection, cfg.model)
            if t.warmup_rounds > 0:
                counting.phase = "warmup"
                fedavg = SeededFedAvg(counting.node_client, t.clients_per_round, cfg.seed, fraction_evaluate=0.0)
                r0 = time.time()
                warm_seconds: dict[int, float] = {}
                clock = [r0]

                def warm_round_done(rnd: int, _: ArrayRecord) -> None:
                    # FedAvg calls this before round 1 and after each round: its only hook between rounds.
                    if rnd > 0:
                        warm_seconds[rnd] = round(time.time() - clock[0], 3)
                        log(f"[{cfg.name}] warm-up round {rnd}/{t.warmup_rounds}  client loss "
                            f"{fedavg.losses.get(rnd, float('nan')):.3f}  ({warm_seconds[rnd]:.1f} s)")
                    clock[0] = time.time()

                result = fedavg.start(grid=counting, initial_arrays=_arrays(client.state_dict()),
                                      num_rounds=t.warmup_rounds, timeout=timeout,
                                      train_config=ConfigRecord({"lr": t.warmup_lr}), evaluate_fn=warm_round_done)
                warmup_failures.extend(fedavg.failures)
                client.load_state_dict(_state_of(warmed_up(result.arrays, fedavg.failures, t.warmup_rounds, timeout)))
                for rnd, loss in sorted(fedavg.losses.items()):
                    history.append({"round": rnd, "phase": "warmup", "loss": loss, "accuracy": None,
                                    "uplink": ledger.total("uplink", rnd, "warmup"),
                                    "downlink": ledger.total("downlink", rnd, "warmup"), "seconds": warm_seconds.get(rnd)})
                log(f"[{cfg.name}] warm-up: {t.warmup_rounds} FedAvg rounds in {time.time() - r0:.1f} s, client loss "
                    f"{history[-1]['loss']:.3f}")
        if client is not None:
            freeze(client)
            save_client_model(client, cfg, cfg.run_dir())
            counting.phase = "setup"
            arrays = _arrays(client.state_dict())
            ask_all(counting, nodes, lambda: RecordDict({"arrays": arrays}), INSTALL, timeout,
                    "installing the frozen client model")

        # Held-out faces reach the server only as payloads: fetched once, evaluated after rounds.
        counting.phase = "eval"
        replies = ask_all(counting, nodes, RecordDict, EVAL, timeout, "held-out payloads")
        keys = list(strategy.spec())
        # With more clients than held-out identities, some clients hold no held-out face at all.
        replies = [r for r in replies if len(r.content["index"]["face"].numpy())]
        index = np.concatenate([r.content["index"]["face"].numpy() for r in replies])
        row_client = np.concatenate([np.full(len(r.content["index"]["face"].numpy()),
                                             counting.node_client[r.metadata.src_node_id]) for r in replies])
        views = {name: {k: torch.cat([torch.from_numpy(r.content[name][k].numpy()) for r in replies]) for k in keys}
                 for name in (("eval", "eval_flipped") if t.flip_tta else ("eval",))}
        pairs, same, fold = splits.pairs, splits.same, splits.fold  # pairs of global face indices
        # Which received payload row holds each pair's faces (fixed: the payloads are fetched once).
        row_of = {int(f): i for i, f in enumerate(index.tolist())}
        pair_rows = np.vectorize(row_of.__getitem__)(pairs)
        trainer = ServerTrainer(strategy, cfg, total, client.map_channels if client is not None else ())
        out["trainer"], out["client"] = trainer, client

        def evaluate(rnd: int, _: ArrayRecord) -> MetricRecord | None:
            if rnd == 0 or not (rnd % t.eval_every == 0 or rnd == t.rounds):
                return None
            emb = None
            for payload in views.values():
                parts = [trainer.embed({k: v[i : i + 128] for k, v in payload.items()}) for i in range(0, len(index), 128)]
                e = torch.nn.functional.normalize(torch.cat(parts), dim=1)
                emb = e if emb is None else emb + e
            dist = pair_distances(emb.numpy()[pair_rows[:, 0]], emb.numpy()[pair_rows[:, 1]])
            v = evaluate_pairs(dist, same, fold)
            out["verification"] = v
            out["client_accuracy"] = client_accuracy(pair_decisions(dist, same, fold), same, row_client[pair_rows], cfg)
            return MetricRecord({"accuracy": v.accuracy, "accuracy_std": v.accuracy_std})

        # 2. Split training.
        counting.phase = "split"
        split = SplitTraining(trainer, counting.node_client, offset, t.clients_per_round, t.batches_per_client,
                              t.batch_size, cfg.seed, log=lambda s: log(f"[{cfg.name}] {s}"))
        out["split"] = split
        round_start = [time.time()]

        def evaluate_and_log(rnd: int, arrays: ArrayRecord) -> MetricRecord | None:
            if rnd == 0:
                return None
            counting.round = rnd
            metrics = evaluate(rnd, arrays)
            h = split.history[-1]
            acc = None if metrics is None else float(metrics["accuracy"])
            record = {"round": rnd, "phase": "split", "loss": h["loss"], "accuracy": acc,
                      "uplink": ledger.total("uplink", rnd, "split"), "downlink": ledger.total("downlink", rnd, "split"),
                      "failed": h["failed"], "seconds": round(time.time() - round_start[0], 3),
                      "server_compute_seconds": round(h["compute"], 3),
                      "client_compute_seconds": round(h["client_compute"], 3)}
            history.append(record)
            log(f"[{cfg.name}] round {rnd}/{t.rounds}  loss {h['loss']:.3f}  accuracy "
                f"{'-' if acc is None else f'{100 * acc:.2f}%'}  up {record['uplink'] / 1e6:.1f} MB  "
                f"({record['seconds']:.1f} s)")
            round_start[0] = time.time()
            return metrics

        split.start(grid=counting, initial_arrays=ArrayRecord(), num_rounds=t.rounds, timeout=timeout,
                    evaluate_fn=evaluate_and_log)
        out["history"] = history
        out["warmup_failures"] = warmup_failures
        out["results"] = _write_outputs(cfg, out, start, log)

    return app


def client_accuracy(correct: np.ndarray, same: np.ndarray, pair_clients: np.ndarray, cfg: Config) -> list[dict]:
    """Verification accuracy over the pairs that hold a face of each client, with that client's noise sigma.

    A pair is judged once, by the k-fold protocol of the whole evaluation; a pair of two clients' faces
    counts for both. This is what each client's payload setting costs in recognising its own people.
    """
    rows = []
    for c in range(cfg.partition.clients):
        mine = (pair_clients == c).any(axis=1)
        rows.append({"client": c, "noise_sigma": cfg.protection.client_noise(c), "pairs": int(mine.sum()),
                     "positives": int(same[mine].sum()),
                     "accuracy": float(correct[mine].mean()) if mine.any() else None})
    return rows


def _quiet_flower() -> None:
    """Drop Flower's per-round INFO chatter and its run_simulation deprecation notice; keep warnings."""
    logger = logging.getLogger("flwr")
    logger.addFilter(lambda r: "DEPRECATED FEATURE" not in str(r.msg))
    logger.setLevel(logging.WARNING)


def ray_init_args(cfg: Config) -> dict[str, Any]:
    """Arguments for ray.init from the simulation section: join a cluster, or start one of ray_num_cpus CPUs."""
    s = cfg.simulation
    if s.ray_address:
        return {"address": s.ray_address}
    args: dict[str, Any] = {"include_dashboard": False}
    if s.ray_num_cpus is not None:
        args["num_cpus"] = s.ray_num_cpus
    return args


def run_federated(cfg: Config, log: Callable[[str], None] = print, keep_messages: bool = False) -> dict:
    """Run the federated simulation of cfg on Ray (the server writes runs/<name>/); return the results.

    keep_messages=True adds the list of every (direction, Message) under the key "messages".
    """
    from flwr.simulation import run_simulation

    out: dict[str, Any] = {"start": time.time(), "keep_messages": keep_messages}
    _quiet_flower()
    # Ray warns that it will stop overriding accelerator variables for CPU-only actors; we rely on neither.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    s = cfg.simulation
    backend = {"client_resources": {"num_cpus": s.client_cpus, "num_gpus": s.client_gpus},
               "init_args": ray_init_args(cfg)}
    run_simulation(server_app=make_server_app(cfg, out, log), client_app=make_client_app(cfg),
                   num_supernodes=cfg.partition.clients, backend_name="ray", backend_config=backend)
    if "results" not in out:
        raise RuntimeError("the federated run stopped before split training finished (see the log above)")
    if keep_messages:
        return {**out["results"], "messages": out["grid"].kept}
    return out["results"]


def _write_outputs(cfg: Config, out: dict[str, Any], start: float, log: Callable[[str], None]) -> dict:
    """Write runs/<name>/ (config.json, metrics.jsonl, results.json, ledger.json, report.md, two PNG plots)."""
    run_dir = cfg.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    strategy = make_strategy(cfg.protection, cfg.model)
    params, macs = model_costs(strategy, out["client"], out["trainer"])
    v = out["verification"]
    ledger: Ledger = out["ledger"]
    results = {
        "mode": "federated", "strategy": strategy.name,
        "accuracy": v.accuracy, "accuracy_std": v.accuracy_std, "tar_at_far": v.tar_at_far, "far": v.far,
        "tar_note": v.tar_note, "verification": v.to_dict(),
        "bytes": ledger.summary(),
        "payload_bytes_per_image": strategy.payload_bytes_per_sample(),
        "raw_image_bytes": RAW_IMAGE_BYTES,
        "client_accuracy": out["client_accuracy"],
        "server_steps": out["trainer"].steps, "failed_replies": out["warmup_failures"] + out["split"].failures,
        "params": params, "macs": macs, "rounds": out["history"],
        "wall_seconds": round(time.time() - start, 2),
        # Float sums differ with the thread count, and a run's accuracy with them: say how it ran.
        "torch_threads": torch.get_num_threads(), "config": cfg.to_dict(),
    }
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    with open(run_dir / "metrics.jsonl", "w") as f:
        for row in out["history"]:
            f.write(json.dumps(row) + "\n")
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    (run_dir / "ledger.json").write_text(json.dumps(ledger.rows))
    plot_rounds(results, run_dir / "rounds.png")
    plot_clients(results, run_dir / "clients.png")
    report = format_report(results)
    (run_dir / "report.md").write_text(report + "\n![accuracy and bytes per round](rounds.png)\n\n"
                                        "![bytes per client](clients.png)\n")
    log(report)
    return results


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def format_report(results: dict) -> str:
    """The human summary of a federated run: accuracy, bytes by direction, part and client, per round."""
    b, c = results["bytes"], results["config"]
    tar = "unavailable" if results["tar_at_far"] is None else f"{100 * results['tar_at_far']:.2f}%"
    lines = [
        f"# {c['name']}: {results['strategy']}, federated ({c['partition']['clients']} clients)",
        "",
        "| metric | value |", "|---|---|",
        f"| verification accuracy | {100 * results['accuracy']:.2f}% +- {100 * results['accuracy_std']:.2f} |",
        f"| TAR @ FAR={results['far']:g} | {tar} ({results['tar_note']}) |",
        f"| uplink / downlink | {_mb(b['uplink_total'])} / {_mb(b['downlink_total'])} in {b['messages']} messages |",
        f"| payload per image | {results['payload_bytes_per_image']:,} bytes ({results['payload_bytes_per_image'] / results['raw_image_bytes']:.1f}x a raw face of {results['raw_image_bytes']:,}) |",
        f"| server steps | {results['server_steps']} |",
        f"| failed replies | {len(results['failed_replies'])} |",
        f"| wall time | {results['wall_seconds']:.1f} s |",
        "", "| direction | part | bytes |", "|---|---|---|",
    ]
    for direction, parts in b["by_part"].items():
        lines += [f"| {direction} | {part} | {n:,} |" for part, n in parts.items()]
    acc = {str(r["client"]): r for r in results["client_accuracy"]}
    lines += ["", "| client | noise sigma | accuracy on its pairs (pairs) | uplink | downlink |", "|---|---|---|---|---|"]
    for k, v in b["per_client"].items():
        a = acc.get(k, {})
        score = "-" if a.get("accuracy") is None else f"{100 * a['accuracy']:.1f}% ({a['pairs']})"
        lines.append(f"| {k} | {a.get('noise_sigma', '-')} | {score} | {_mb(v['uplink'])} | {_mb(v['downlink'])} |")
    lines += ["", "| phase | round | loss | accuracy | uplink | downlink |", "|---|---|---|---|---|---|"]
    for r in results["rounds"]:
        acc = "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}%"
        lines.append(f"| {r['phase']} | {r['round']} | {r['loss']:.3f} | {acc} | {_mb(r['uplink'])} | {_mb(r['downlink'])} |")
    return "\n".join(lines) + "\n"
