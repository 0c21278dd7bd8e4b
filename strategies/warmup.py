"""Client-model warm-up: Flower's FedAvg, with client sampling that repeats from run to run.

FedAvg samples Flower node ids with the process-wide `random` module. Node ids are drawn afresh
each run and other threads share that module, so the same seed picked different clients each
time. This strategy samples partition ids with its own seeded generator instead, and averages the
replies in partition order (they arrive in any order, and float sums depend on it).
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedsplit.batches import sample_clients


class SeededFedAvg(FedAvg):
    """FedAvg whose training sample is a seeded choice of clients by partition id."""

    def __init__(self, node_client: dict[int, int], clients_per_round: int, seed: int, **kwargs) -> None:  # noqa: ANN003
        """node_client maps Flower node ids to partition ids; FedAvg's other options pass through."""
        super().__init__(fraction_train=clients_per_round / len(node_client), min_train_nodes=clients_per_round,
                         min_available_nodes=len(node_client), **kwargs)
        self.node_client = node_client
        self.clients_per_round = clients_per_round
        self.rng = random.Random(seed)
        self.failures: list[dict] = []  # one entry per failed reply, or per round with replies missing
        self.losses: dict[int, float] = {}  # each round's mean client loss, readable before start() returns

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        """The same messages FedAvg sends, to a seeded sample of clients."""
        by_partition = sorted(self.node_client, key=self.node_client.__getitem__)
        chosen = sample_clients(self.rng, by_partition, self.clients_per_round)
        config["server-round"] = server_round
        record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        return self._construct_messages(record, sorted(chosen, key=self.node_client.__getitem__), MessageType.TRAIN)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """FedAvg's weighted mean, over replies in partition order (float sums depend on it); failures are counted."""
        ordered = sorted(replies, key=lambda m: self.node_client.get(m.metadata.src_node_id, -1))
        for r in ordered:
            if r.has_error():  # FedAvg skips these; they are recorded so a run can say why it has no model
                reason = r.error.reason.splitlines()[0][:300] if r.error.reason else str(r.error.code)
                self.failures.append({"round": server_round, "phase": "warmup", "node": r.metadata.src_node_id,
                                      "error": reason})
        if (missing := self.clients_per_round - len(ordered)) > 0:
            self.failures.append({"round": server_round, "phase": "warmup", "node": None,
                                  "error": f"{missing} replies timed out"})
        arrays, metrics = super().aggregate_train(server_round, ordered)
        if metrics is not None and "loss" in metrics:
            self.losses[server_round] = float(metrics["loss"])
        return arrays, metrics
