"""`partialface`: each face sends one random rank of its high-frequency planes (Mi et al., ICCV 2023).

The method (paper "Privacy-Preserving Face Recognition Using Random Frequency Components" and its
official code, Tencent/TFace recognition/tasks/partialface): prune the low-frequency DCT channels,
cut the remaining ones into disjoint subsets of equal size ("ranks"; 6 ranks of s=9 channels out of
the 54 left per colour, by a secret random partition S), let each image be drawn as only r=3 of the
6 ranks (so no party ever collects every rank of one face), send one of those ranks per sample with
its channels in one of 3 secret orders (P), the same order for Y, Cb and Cr. The recognition model is
an ordinary IResNet on the 3*s planes, trained with plain margin softmax on these random ranks and
queried on random ranks too; it is never told which rank or order it got.

Choices made here where the method leaves room or fedsplit differs:
- Pruned channels are `protection.client_channels` (DuetFace's 10 by default; the paper prunes
  0,1,2,3,8,9,10,16,17,24, also 10, so 54 remain either way). The client keeps them; it runs no model.
- S, P and every draw come from `protection.partialface_key`, a secret shared by all clients and
  never sent: the server needs no part of it, and all clients must share S and P for one model to
  learn their ranks. Nothing identifying the rank or order travels in the payload.
- The official code fixes a face's r allowed ranks by its class label (labels index the fixed
  training list). encode sees no labels, so a face's r ranks come from a keyed hash of its pixels,
  made mirror-invariant so that flip augmentation cannot reveal a fourth rank of the same face.
- Which of the r ranks, and which order, a sample gets is drawn from a generator seeded by the key
  and a keyed hash of the whole batch: Flower builds a fresh strategy for every message and central
  runs resume from checkpoints, so a long-lived stream would repeat per message or change on resume.
  The same batch thus always encodes the same way; a face in a different batch gets a fresh draw.
- Evaluation faces (and their mirrored copies for flip TTA) are encoded the same way: one random
  allowed rank each, so verification compares embeddings of possibly different ranks, as in the paper.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from fedsplit.frequency import dct_split
from fedsplit.protection.base import ClientNet, Field, ServerNet, Strategy, register

_KEY = "rank_channels"


def _stream(secret: bytes, data: bytes) -> np.random.Generator:
    """A numpy generator determined by the secret and the data (a keyed hash as its seed)."""
    digest = hashlib.blake2b(data, key=secret, digest_size=32).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


@register
class PartialFace(Strategy):
    """One rank of s high-frequency channels per colour per face, in a secret order."""

    name = "partialface"
    description = "server receives one random rank of the high-frequency DCT planes per face, permuted"

    def __init__(self, protection, model) -> None:  # noqa: ANN001 - config dataclasses
        """Draw the secret rank partition S and channel orders P from partialface_key."""
        super().__init__(protection, model)
        p = protection
        self.rank_channels = p.partialface_rank_channels
        self.ranks_per_image = p.partialface_ranks_per_image
        if p.partialface_ranks * self.rank_channels > len(self.server_channels):
            raise ValueError(f"protection.partialface_rank_channels: {p.partialface_ranks} ranks x "
                             f"{self.rank_channels} channels exceed the {len(self.server_channels)} server channels")
        self._secret = hashlib.blake2b(f"partialface:{p.partialface_key}".encode(), digest_size=32).digest()
        rng = _stream(self._secret, b"partition")
        # Channels that fit no rank (when ranks x size < server channels) are never sent.
        chosen = rng.permutation(np.asarray(self.server_channels))[: p.partialface_ranks * self.rank_channels]
        self.ranks = chosen.reshape(p.partialface_ranks, self.rank_channels)  # (n, s) frequencies k
        orders: list[tuple[int, ...]] = []
        while len(orders) < p.partialface_permutations:  # validate caps the count at s!
            order = tuple(int(i) for i in rng.permutation(self.rank_channels))
            if order not in orders:
                orders.append(order)
        self.orders = np.asarray(orders)  # (m, s) positions within a rank
        position = {k: i for i, k in enumerate(self.server_channels)}
        self._rank_index = np.vectorize(position.__getitem__)(self.ranks)  # into dct_split's server planes

    def spec(self) -> dict[str, Field]:
        """3 * partialface_rank_channels float32 planes per sample, colour first."""
        return {_KEY: Field((3 * self.rank_channels, self.size, self.size), torch.float32, "server_channels")}

    def allowed_ranks(self, images: torch.Tensor) -> np.ndarray:
        """(B, r) the ranks each face may be sent as: keyed on its pixels, the same for its mirror image."""
        x = images.detach().to("cpu", torch.float32)
        symmetric = (x + x.flip(-1)).contiguous().numpy()
        n = len(self.ranks)
        if len(x) == 0:
            return np.zeros((0, self.ranks_per_image), np.int64)
        return np.stack([_stream(self._secret, face.tobytes()).permutation(n)[: self.ranks_per_image]
                         for face in symmetric])

    def choose(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(rank, order) index per sample: client-side secrets, never part of the payload."""
        allowed = self.allowed_ranks(images)
        batch = images.detach().to("cpu", torch.float32).contiguous().numpy()
        rng = _stream(self._secret, b"batch" + batch.tobytes())
        pick = rng.integers(self.ranks_per_image, size=len(batch))
        order = rng.integers(len(self.orders), size=len(batch))
        return allowed[np.arange(len(batch)), pick], order

    def encode(self, images: torch.Tensor, landmarks: torch.Tensor, client: ClientNet | None) -> dict[str, torch.Tensor]:
        """Each face's chosen rank of server planes, in its chosen order, the same order for every colour."""
        rank, order = self.choose(images)
        server = dct_split(images, self.client_channels, self.upsample)[1]
        b = server.shape[0]
        server = server.view(b, 3, len(self.server_channels), self.size, self.size)
        # Position j of sample i holds rank channel orders[order_i][j] of rank_i.
        picked = np.take_along_axis(self._rank_index[rank], self.orders[order], axis=1)  # (B, s)
        index = torch.from_numpy(picked).to(server.device)
        planes = server[torch.arange(b, device=server.device)[:, None], :, index]  # (B, s, 3, h, w)
        return {_KEY: planes.transpose(1, 2).reshape(b, 3 * self.rank_channels, self.size, self.size).contiguous()}

    def server_net(self, client_map_channels: tuple[int, ...] = ()) -> ServerNet:
        """IResNet on the 3 * s planes of one rank."""
        c = 3 * self.rank_channels
        return ServerNet(self._frequency_server(c), _KEY, c, normalise=True)
