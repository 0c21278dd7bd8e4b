"""SplitTraining: the server's side of DuetFace split learning as a Flower strategy.

Each round it samples clients, asks each (message type `query.payload`) for a number of batches, and
steps the server backbone on every received payload batch. Nothing goes back to the clients: the
client model is frozen, so this phase is upload-only. Failed or missing replies are counted and skipped.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedsplit.batches import sample_clients
from fedsplit.training import ServerTrainer

PAYLOAD = "query.payload"


def unpack_batches(record: ArrayRecord, keys: Iterable[str], batches: int) -> list[tuple[dict, torch.Tensor]]:
    """Split one reply's arrays (batches stacked along dim 0) into (payload, local labels) per batch."""
    tensors = {k: torch.from_numpy(record[k].numpy()) for k in keys}
    labels = torch.from_numpy(record["labels"].numpy())
    size = len(labels) // max(batches, 1)
    return [({k: t[i * size : (i + 1) * size] for k, t in tensors.items()}, labels[i * size : (i + 1) * size])
            for i in range(batches)]


class SplitTraining(Strategy):
    """Sample clients, collect their payload batches, train the server on them."""

    def __init__(self, trainer: ServerTrainer, node_client: dict[int, int], class_offset: dict[int, int],
                 clients_per_round: int, batches_per_client: int, batch_size: int, seed: int,
                 log: Callable[[str], None] = print) -> None:
        """node_client maps Flower node ids to partition ids; class_offset maps partition ids to label offsets."""
        self.trainer = trainer
        self.node_client = node_client
        self.class_offset = class_offset
        self.clients_per_round = clients_per_round
        self.batches_per_client = batches_per_client
        self.batch_size = batch_size
        self.rng = random.Random(seed)
        self.keys = list(trainer.strategy.spec())
        self.failures: list[dict] = []
        self.history: list[dict] = []
        self.log = log

    def summary(self) -> None:
        """One line on what each round does."""
        self.log(f"split training: {self.clients_per_round} clients x {self.batches_per_client} batches of "
                 f"{self.batch_size} per round, server steps on {self.trainer.strategy.name} payloads")

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        """Ask a seeded sample of clients for their batches of this round."""
        # Sampled by partition id: Flower's node ids are drawn afresh every run.
        nodes = sorted(self.node_client, key=self.node_client.__getitem__)
        chosen = sample_clients(self.rng, nodes, self.clients_per_round)
        cfg = ConfigRecord({"server-round": server_round, "batches": self.batches_per_client,
                            "batch-size": self.batch_size})
        chosen.sort(key=self.node_client.__getitem__)
        return [Message(RecordDict({"config": cfg}), dst_node_id=n, message_type=PAYLOAD) for n in chosen]

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Step the server on each valid reply's batches (in client order); count and skip failures."""
        replies = list(replies)
        good, failed = [], 0
        for r in replies:
            if r.has_error():
                failed += 1
                self.failures.append({"round": server_round, "node": r.metadata.src_node_id,
                                      "error": r.error.reason.splitlines()[0][:300] if r.error.reason else str(r.error.code)})
            else:
                good.append(r)
        missing = self.clients_per_round - len(replies)
        if missing > 0:
            self.failures.append({"round": server_round, "node": None, "error": f"{missing} replies timed out"})
        losses = []
        start = time.perf_counter()
        client_compute = sum(float(r.content["metrics"].get("compute-seconds", 0.0)) for r in good
                             if "metrics" in r.content)
        for r in sorted(good, key=lambda m: self.node_client[m.metadata.src_node_id]):
            client = self.node_client[r.metadata.src_node_id]
            try:
                batches = unpack_batches(r.content["payload"], self.keys, self.batches_per_client)
                for payload, local in batches:
                    losses.append(self.trainer.step(payload, local + self.class_offset[client]))
            except (KeyError, ValueError) as err:  # a malformed payload: name it, skip that client
                failed += 1
                self.failures.append({"round": server_round, "node": r.metadata.src_node_id,
                                      "error": f"client {client}: {err}"})
        loss = float(np.mean(losses)) if losses else float("nan")
        self.history.append({"round": server_round, "loss": loss, "steps": len(losses), "failed": failed + max(missing, 0),
                             "compute": time.perf_counter() - start, "client_compute": client_compute})
        return None, MetricRecord({"loss": loss if losses else 0.0, "steps": len(losses), "failed": failed})

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        """No federated evaluation: the server evaluates held-out payloads itself (evaluate_fn)."""
        return []

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Nothing to aggregate."""
        return None
