"""Which faces make each training batch: mixed across all identities, or one client's, as in federated rounds.

A federated server step sees a batch drawn from one sampled client (about 1/clients of the
identities); a centralized step normally sees a batch drawn from every training face. The two
samplers here let a centralized run use either, so a federated-vs-centralized gap can be split into
what batch composition does and what federation does. The federated ClientApp draws its batches
with `client_batch` too, so `ClientBatches` reproduces its server steps face for face.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from fedsplit.data.splits import ClientShard, FaceSplits
from fedsplit.training import random_flips, to_tensors

# Stream tags of the per-(client, round) generators: warm-up, payload and noise draws never share numbers.
WARMUP_STREAM, PAYLOAD_STREAM, NOISE_STREAM = 1, 2, 3


def client_rng(seed: int, server_round: int, client: int, stream: int) -> np.random.Generator:
    """The generator a client uses in one round: a function of (seed, round, client, stream), not of the actor."""
    return np.random.default_rng([seed, server_round, client, stream])


def client_batch(splits: FaceSplits, shard: ClientShard, size: int,
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One client's batch: distinct faces of its own, randomly mirrored; images, landmarks, local labels."""
    pick = rng.choice(len(shard.train), size=min(size, len(shard.train)), replace=False)
    idx = shard.train[pick]
    images, landmarks = random_flips(splits.images[idx], splits.landmarks[idx], rng)
    x, lm = to_tensors(images, landmarks)
    return x, lm, torch.from_numpy(shard.local_classes[pick])


def sample_clients(rng: random.Random, population: list, k: int) -> list:
    """k members of population (ordered by partition id), drawn the way the server samples each round."""
    return rng.sample(population, min(k, len(population)))


class MixedBatches:
    """Seeded shuffled passes over all training faces, with random pixel-space flips (centralized default)."""

    def __init__(self, splits: FaceSplits, batch_size: int, seed: int) -> None:
        self.splits = splits
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.order = np.zeros(0, np.int64)

    def round(self, server_round: int, steps: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The batches of one round of `steps` server steps (the round number does not matter here)."""
        return [self.next() for _ in range(steps)]

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images (B,3,112,112), landmarks (B,68,2) and global class labels (B,)."""
        while len(self.order) < self.batch_size:
            self.order = np.concatenate([self.order, self.rng.permutation(len(self.splits.train))])
        pick, self.order = self.order[: self.batch_size], self.order[self.batch_size :]
        idx = self.splits.train[pick]
        images, landmarks = random_flips(self.splits.images[idx], self.splits.landmarks[idx], self.rng)
        x, lm = to_tensors(images, landmarks)
        return x, lm, torch.from_numpy(self.splits.train_classes[pick])

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "order": self.order.copy()}

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order = state["order"]


class ClientBatches:
    """Federated batch composition without federation: each round samples clients like SplitTraining
    (or SeededFedAvg in the warm-up), and each sampled client gives `batches_per_client` batches of its
    own faces, drawn as its ClientApp draws them from `stream`. Labels are client-namespaced (local id +
    the client's offset), as the server sees them."""

    def __init__(self, splits: FaceSplits, shards: list[ClientShard], clients_per_round: int,
                 batches_per_client: int, batch_size: int, seed: int, stream: int = PAYLOAD_STREAM) -> None:
        self.splits = splits
        self.shards = shards
        self.clients_per_round = clients_per_round
        self.batches_per_client = batches_per_client
        self.batch_size = batch_size
        self.seed = seed
        self.stream = stream
        self.rng = random.Random(seed)
        self.offset = np.cumsum([0] + [s.num_local_classes for s in shards[:-1]]).tolist()

    @property
    def num_classes(self) -> int:
        return sum(s.num_local_classes for s in self.shards)

    def round(self, server_round: int, steps: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The batches of one round, client by client in partition order (steps must be clients x batches)."""
        if steps != self.clients_per_round * self.batches_per_client:
            raise ValueError(f"a round here is {self.clients_per_round} clients x {self.batches_per_client} "
                             f"batches, not {steps} steps")
        chosen = sorted(sample_clients(self.rng, list(range(len(self.shards))), self.clients_per_round))
        out = []
        for c in chosen:
            rng = client_rng(self.seed, server_round, c, self.stream)
            for _ in range(self.batches_per_client):
                x, lm, local = client_batch(self.splits, self.shards[c], self.batch_size, rng)
                out.append((x, lm, local + self.offset[c]))
        return out

    def state(self) -> dict:
        return {"rng": self.rng.getstate()}

    def restore(self, state: dict) -> None:
        self.rng.setstate(state["rng"])
