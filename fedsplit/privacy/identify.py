"""The attacker's face recogniser and identification metrics: do reconstructed faces reveal who they are?

The recogniser is an RGB IResNet with a CosFace head, trained on the attacker's clean auxiliary faces
(other people than the victims), so it measures identity without ever having seen a victim.

Gallery convention of `identification_top1`: the gallery is every victim's clean images, and a probe
(a face reconstructed from one victim payload) is correct when its nearest gallery embedding by cosine
has the probe's identity. By default the probe's own source image stays in the gallery, as in the
inversion-attack literature, so clean images as probes score 1.0. With `exclude_self=True` (and image
ids for probes and gallery) each probe's own source image is removed from the gallery: the stricter
"other photo" rate, which asks whether the reconstruction matches a different photo of the same person.

Default budget: ir18 at width 0.125 on faces area-downscaled to 56x56, 128-d embedding, 200 SGD steps
of 32 (~3.3 epochs of the default 1,920 auxiliary faces). Measured: 332 CPU-seconds, about 3 minutes on
two idle cores (18 minutes of wall time on the shared VM under load ~12). On the default synthetic
victims (40 identities, 449 faces) it gives clean other-photo top-1 0.45 and noise top-1 0.022 (chance
0.025).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fedsplit.data.types import FACE_SIZE, images_to_tensor
from fedsplit.models import IResNet, build_server, make_head
from fedsplit.models.layout import SUPPORTED_INPUT_SIZES
from fedsplit.training import lr_at, param_groups, sgd_step
from fedsplit.verification import verify

DEFAULT_DEPTH = "ir18"
DEFAULT_WIDTH = 0.125
DEFAULT_INPUT_SIZE = 56
DEFAULT_EMBEDDING = 128
DEFAULT_STEPS = 200
DEFAULT_BATCH = 32
DEFAULT_LR = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4


@dataclass
class Recogniser:
    """A trained recogniser: the backbone and the input side it runs at (faces are area-downscaled to it)."""

    net: IResNet
    input_size: int
    classes: int


def _resize(images: Tensor, size: int) -> Tensor:
    """Area-downscale (B,3,112,112) faces to `size`, in contiguous NCHW memory."""
    # images_to_tensor gives a channels-last view; its backward through 8-channel convs segfaulted (torch CPU).
    images = images.contiguous()
    return images if size == FACE_SIZE else F.avg_pool2d(images, FACE_SIZE // size)


def _class_ids(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Contiguous class ids for arbitrary identity labels."""
    ids, inverse = np.unique(np.asarray(labels), return_inverse=True)
    return inverse.astype(np.int64), len(ids)


def train_recogniser(images: np.ndarray, labels: np.ndarray, *, steps: int = DEFAULT_STEPS,
                     batch_size: int = DEFAULT_BATCH, lr: float = DEFAULT_LR, seed: int = 0,
                     depth: str = DEFAULT_DEPTH, width: float = DEFAULT_WIDTH, input_size: int = DEFAULT_INPUT_SIZE,
                     embedding: int = DEFAULT_EMBEDDING, log_every: int = 50,
                     log: Callable[[str], None] = print) -> Recogniser:
    """Train an RGB IResNet + CosFace on uint8 (N,112,112,3) faces: SGD momentum, cosine lr, random flips."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (FACE_SIZE, FACE_SIZE, 3):
        raise ValueError(f"images must be uint8 (N, {FACE_SIZE}, {FACE_SIZE}, 3), got {images.dtype} {images.shape}")
    if len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    if input_size not in SUPPORTED_INPUT_SIZES:
        raise ValueError(f"input_size must be one of {SUPPORTED_INPUT_SIZES}, got {input_size}")
    if steps < 1 or batch_size < 2:
        raise ValueError(f"need steps >= 1 and batch_size >= 2 (BatchNorm), got {steps} and {batch_size}")
    classes, n_classes = _class_ids(labels)
    if n_classes < 2:
        raise ValueError(f"need at least 2 identities to train a recogniser, got {n_classes}")
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_server(depth, 3, input_size, width, embedding)
        head = make_head("cosface", embedding, n_classes)
    opt = torch.optim.SGD(param_groups([net, head], WEIGHT_DECAY), lr=lr, momentum=MOMENTUM)
    targets = torch.from_numpy(classes)
    net.train()
    head.train()
    n = len(images)
    order, pos = rng.permutation(n), 0
    start, running, counted = time.perf_counter(), 0.0, 0
    for step in range(steps):
        if pos + batch_size > n:
            order, pos = rng.permutation(n), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        x = images_to_tensor(images[idx])
        flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
        x[flip] = x[flip].flip(-1)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, "cosine")
        y = targets[idx]
        loss = F.cross_entropy(head(net(_resize(x, input_size)), y), y)
        sgd_step(opt, loss, f"recogniser loss at step {step}")
        running, counted = running + loss.item(), counted + 1
        if (step + 1) % log_every == 0 or step + 1 == steps:
            elapsed = time.perf_counter() - start
            log(f"recogniser step {step + 1}/{steps}: loss {running / counted:.3f} ({elapsed:.0f} s)")
            running, counted = 0.0, 0
    net.eval()
    return Recogniser(net=net, input_size=input_size, classes=n_classes)


@torch.no_grad()
def embed(recogniser: Recogniser, images: Tensor, batch_size: int = 128, flip: bool = True) -> Tensor:
    """L2-normalised embeddings (B, D) of faces (B,3,112,112) in [-1,1]; flip adds the mirrored face's."""
    if images.dim() != 4 or tuple(images.shape[1:]) != (3, FACE_SIZE, FACE_SIZE):
        raise ValueError(f"images must be (B, 3, {FACE_SIZE}, {FACE_SIZE}) in [-1, 1], got {tuple(images.shape)}")
    net = recogniser.net
    was_training = net.training
    net.eval()
    out = []
    try:
        for i in range(0, images.shape[0], batch_size):
            x = _resize(images[i : i + batch_size].float(), recogniser.input_size)
            e = F.normalize(net(x), dim=1)
            if flip:
                e = e + F.normalize(net(x.flip(-1)), dim=1)
            out.append(F.normalize(e, dim=1))
    finally:
        net.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, net.embedding)


def _as_matrix(emb: np.ndarray | Tensor, name: str) -> np.ndarray:
    """Float64 (N, D) rows scaled to unit length; refuses other shapes and non-finite values."""
    e = emb.detach().cpu().numpy() if isinstance(emb, Tensor) else np.asarray(emb)
    e = e.astype(np.float64)
    if e.ndim != 2:
        raise ValueError(f"{name} must be (N, D), got shape {e.shape}")
    if not np.isfinite(e).all():
        raise ValueError(f"{name} contains NaN or inf")
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def identification_top1(probe_emb: np.ndarray | Tensor, probe_labels: np.ndarray, gallery_emb: np.ndarray | Tensor,
                        gallery_labels: np.ndarray, *, exclude_self: bool = False, probe_ids: np.ndarray | None = None,
                        gallery_ids: np.ndarray | None = None) -> float:
    """Share of probes whose most cosine-similar gallery embedding has the probe's identity.

    exclude_self drops, for each probe, gallery entries with the probe's image id; probes left with no
    image of their own identity in the gallery cannot be matched and are not counted.
    """
    probe, gallery = _as_matrix(probe_emb, "probe_emb"), _as_matrix(gallery_emb, "gallery_emb")
    p_lab, g_lab = np.asarray(probe_labels).reshape(-1), np.asarray(gallery_labels).reshape(-1)
    if len(p_lab) != len(probe) or len(g_lab) != len(gallery):
        raise ValueError(f"labels do not match embeddings: {len(p_lab)} probe labels for {len(probe)} probes, "
                         f"{len(g_lab)} gallery labels for {len(gallery)} gallery entries")
    if probe.shape[1] != gallery.shape[1]:
        raise ValueError(f"probe dimension {probe.shape[1]} differs from gallery dimension {gallery.shape[1]}")
    if len(probe) == 0 or len(gallery) == 0:
        raise ValueError("need at least one probe and one gallery entry")
    similarity = probe @ gallery.T
    counted = np.ones(len(probe), bool)
    if exclude_self:
        if probe_ids is None or gallery_ids is None:
            raise ValueError("exclude_self needs probe_ids and gallery_ids (the source image of each entry)")
        p_id, g_id = np.asarray(probe_ids).reshape(-1), np.asarray(gallery_ids).reshape(-1)
        if len(p_id) != len(probe) or len(g_id) != len(gallery):
            raise ValueError(f"{len(p_id)} probe ids for {len(probe)} probes, {len(g_id)} gallery ids for "
                             f"{len(gallery)} gallery entries")
        own = p_id[:, None] == g_id[None, :]
        similarity = np.where(own, -np.inf, similarity)
        counted = ((p_lab[:, None] == g_lab[None, :]) & ~own).any(axis=1)
        if not counted.any():
            raise ValueError("exclude_self: no probe has another image of its identity in the gallery")
    hit = g_lab[similarity.argmax(axis=1)] == p_lab
    return float(hit[counted].mean())


def chance_level(gallery_labels: np.ndarray) -> float:
    """Top-1 of a uniform guess among the gallery's identities: 1 / number of identities."""
    n = len(np.unique(np.asarray(gallery_labels)))
    if n == 0:
        raise ValueError("empty gallery")
    return 1.0 / n


def pair_verification(recovered_emb: np.ndarray | Tensor, original_emb: np.ndarray | Tensor, labels: np.ndarray, *,
                      include_self: bool = False, max_pairs: int = 6000, seed: int = 0) -> float:
    """10-fold best-threshold verification accuracy on balanced pairs (recovered face i, original face j).

    Positives: i and j of one identity (i != j unless include_self); negatives: different identities,
    as many as positives, drawn at random. At most max_pairs pairs in all (positives drawn at random too).
    """
    rec, org = _as_matrix(recovered_emb, "recovered_emb"), _as_matrix(original_emb, "original_emb")
    lab = np.asarray(labels).reshape(-1)
    if rec.shape != org.shape or len(lab) != len(rec):
        raise ValueError(f"recovered {rec.shape}, original {org.shape} and {len(lab)} labels must agree")
    same = lab[:, None] == lab[None, :]
    pos_mask = same if include_self else same & ~np.eye(len(lab), dtype=bool)
    pos = np.argwhere(pos_mask)
    neg = np.argwhere(~same)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"need positive and negative pairs; got {len(pos)} and {len(neg)} "
                         f"({len(np.unique(lab))} identities in {len(lab)} faces)")
    rng = np.random.default_rng(seed)
    k = min(len(pos), len(neg), max(max_pairs // 2, 1))
    pos = pos[rng.choice(len(pos), k, replace=False)]
    neg = neg[rng.choice(len(neg), k, replace=False)]
    pairs = np.concatenate([pos, neg])
    is_same = np.concatenate([np.ones(k, bool), np.zeros(k, bool)])
    return verify(rec[pairs[:, 0]], org[pairs[:, 1]], is_same).accuracy


__all__ = ["DEFAULT_BATCH", "DEFAULT_DEPTH", "DEFAULT_EMBEDDING", "DEFAULT_INPUT_SIZE", "DEFAULT_LR", "DEFAULT_STEPS",
           "DEFAULT_WIDTH", "Recogniser", "chance_level", "embed", "identification_top1", "pair_verification",
           "train_recogniser"]
