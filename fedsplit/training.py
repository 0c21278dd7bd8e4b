"""Optimisation pieces shared by centralized and federated runs: client warm-up, server steps, evaluation.

The server side never sees images: `ServerTrainer.step` takes a payload (what a strategy's
`encode` made on a client) and class labels. Centralized and federated training both go through it,
so equal step counts mean equal optimisation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fedsplit.config import Config
from fedsplit.data.types import FACE_SIZE, images_to_tensor
from fedsplit.models import count_macs, count_params, make_head
from fedsplit.protection import STRATEGIES, ClientNet, Strategy
from fedsplit.verification import Verification, verify


def resolve_device(name: str) -> torch.device:
    """'auto' is the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device: {name} requested but torch sees no CUDA device")
    return device


def param_groups(modules: list[nn.Module], weight_decay: float) -> list[dict]:
    """SGD parameter groups: weight decay on weights of convolutions and linear layers only.

    One-dimensional parameters (BatchNorm scale and shift, biases, PReLU slopes) and scalars (the
    interactive blocks' w) are excluded, as is usual for ArcFace training.
    """
    decay, no_decay = [], []
    for module in modules:
        for p in module.parameters():
            if p.requires_grad:
                (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, total: int, base: float, schedule: str, milestones: list[float] | tuple[float, ...] = ()) -> float:
    """Learning rate at a step: cosine from base to 0, or /10 at each milestone fraction of total."""
    if schedule == "cosine":
        return 0.5 * base * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    return base * 0.1 ** sum(step >= f * total for f in milestones)


def sgd_step(opt: torch.optim.Optimizer, loss: torch.Tensor, what: str) -> None:
    """Backpropagate and step, refusing a non-finite loss (it would ruin the weights silently)."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{what} is {loss.item()}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def flip_faces(images: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror faces left-right in pixel space (before any DCT), with their landmarks."""
    flipped = landmarks.copy()
    flipped[..., 0] = (FACE_SIZE - 1) - flipped[..., 0]
    return np.ascontiguousarray(images[:, :, ::-1]), flipped


def random_flips(images: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Training augmentation: mirror each face (in pixels) with probability 1/2; inputs are not modified."""
    flip = rng.random(len(images)) < 0.5
    if flip.any():
        images, landmarks = images.copy(), landmarks.copy()
        images[flip], landmarks[flip] = flip_faces(images[flip], landmarks[flip])
    return images, landmarks


def to_tensors(images: np.ndarray, landmarks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 NHWC faces and landmarks as the strategies take them: (B,3,112,112) in [-1,1], (B,68,2)."""
    return images_to_tensor(images), torch.from_numpy(np.ascontiguousarray(landmarks, dtype=np.float32))


class ClientWarmup:
    """Pre-trains a client model on its client planes with its own ArcFace head (its classes stay local)."""

    def __init__(self, strategy: Strategy, client: ClientNet, num_classes: int, cfg: Config, total_steps: int) -> None:
        """Head and optimiser for `total_steps` warm-up steps."""
        self.strategy = strategy
        self.device = resolve_device(cfg.train.device)
        self.client = client.to(self.device)
        self.head = make_head(cfg.model.head, cfg.model.client_embedding, num_classes, cfg.model.head_scale,
                              cfg.model.head_margin).to(self.device)
        t = cfg.train
        self.opt = torch.optim.SGD(param_groups([client, self.head], t.weight_decay), lr=t.warmup_lr,
                                   momentum=t.momentum)
        self.total = total_steps
        self.base_lr = t.warmup_lr
        self.steps = 0

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One SGD step on a batch of images (the client's own); returns the loss."""
        lr = lr_at(self.steps, self.total, self.base_lr, "cosine")
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.client.train()
        images, labels = images.to(self.device), labels.to(self.device)
        planes = self.strategy.client_planes(images)
        loss = nn.functional.cross_entropy(self.head(self.client(planes), labels), labels)
        sgd_step(self.opt, loss, f"client warm-up loss at step {self.steps} (lr {lr:g})")
        self.steps += 1
        return loss.item()


CLIENT_MODEL = "client_model.pt"
# What a client model's weights and inputs depend on: a saved model fits a run only if these agree.
_CLIENT_KEYS = (("protection", "client_channels"), ("protection", "upsample"), ("model", "client"),
                ("model", "client_width"), ("model", "client_embedding"))


def save_client_model(client: ClientNet, cfg: Config, run_dir: Path) -> Path:
    """Write the frozen client model of a run, with its config, as run_dir/client_model.pt."""
    path = Path(run_dir) / CLIENT_MODEL
    tmp = path.with_suffix(".tmp")
    torch.save({"state": client.state_dict(), "config": cfg.to_dict()}, tmp)
    tmp.replace(path)
    return path


def load_client_model(source: str | Path, cfg: Config) -> ClientNet:
    """The frozen client model saved by an earlier run (its directory or client_model.pt), checked against cfg."""
    if not STRATEGIES[cfg.protection.strategy].uses_client_model:
        raise ValueError(f"train.client_model: strategy {cfg.protection.strategy} has no client model")
    path = Path(source)
    if path.is_dir():
        path = path / CLIENT_MODEL
    if not path.is_file():
        raise ValueError(f"train.client_model: {path} does not exist (a run writes it when its client model freezes)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
        state, stored = saved["state"], saved["config"]
    except Exception as e:  # a truncated or foreign file
        raise ValueError(f"train.client_model: {path} is not a saved client model ({e})") from e
    mine = cfg.to_dict()
    for section, key in _CLIENT_KEYS:
        theirs = stored.get(section, {}).get(key)
        if theirs != mine[section][key]:
            raise ValueError(f"train.client_model: {path} was made with {section}.{key}={theirs!r}, "
                             f"this run has {mine[section][key]!r}")
    client = ClientNet(cfg.protection, cfg.model)
    try:
        client.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"train.client_model: {path} does not fit this client model: {e}") from e
    return freeze(client)


def freeze(client: ClientNet) -> ClientNet:
    """Stop all learning in the client model: no gradients, running statistics fixed."""
    client.eval()
    for p in client.parameters():
        p.requires_grad_(False)
    return client


class ServerTrainer:
    """The server backbone and head of one strategy, stepped on received payloads."""

    def __init__(self, strategy: Strategy, cfg: Config, num_classes: int,
                 client_map_channels: tuple[int, ...] = ()) -> None:
        """Fresh server model, head and SGD for cfg.server_steps() steps."""
        self.strategy = strategy
        self.device = resolve_device(cfg.train.device)
        self.net = strategy.server_net(client_map_channels).to(self.device)
        self.head = make_head(cfg.model.head, cfg.model.embedding, num_classes, cfg.model.head_scale,
                              cfg.model.head_margin).to(self.device)
        t = cfg.train
        self.opt = torch.optim.SGD(param_groups([self.net, self.head], t.weight_decay), lr=t.lr,
                                   momentum=t.momentum)
        self.total = cfg.server_steps()
        self.cfg = cfg
        self.steps = 0

    def lr(self) -> float:
        """Learning rate of the next step."""
        t = self.cfg.train
        return lr_at(self.steps, self.total, t.lr, t.schedule, t.step_milestones)

    def step(self, payload: dict[str, torch.Tensor], labels: torch.Tensor) -> float:
        """One SGD step on a payload batch; returns the loss. The payload is checked against the spec first."""
        self.strategy.check(payload, "payload")
        lr = self.lr()
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.net.train()
        self.head.train()
        payload = {k: v.to(self.device, non_blocking=True) for k, v in payload.items()}
        labels = labels.to(self.device)
        loss = nn.functional.cross_entropy(self.head(self.net(payload), labels), labels)
        sgd_step(self.opt, loss, f"server loss at step {self.steps} (lr {lr:g})")
        self.steps += 1
        return loss.item()

    @torch.no_grad()
    def embed(self, payload: dict[str, torch.Tensor]) -> torch.Tensor:
        """Embeddings of a payload batch in eval mode."""
        self.net.eval()
        return self.net({k: v.to(self.device, non_blocking=True) for k, v in payload.items()}).cpu()

    def state_dict(self) -> dict:
        """Everything needed to continue training."""
        return {"net": self.net.state_dict(), "head": self.head.state_dict(), "opt": self.opt.state_dict(),
                "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        """Restore from state_dict()."""
        self.net.load_state_dict(state["net"])
        self.head.load_state_dict(state["head"])
        self.opt.load_state_dict(state["opt"])
        self.steps = int(state["steps"])


def _embed_views(images: np.ndarray, landmarks: np.ndarray, embed: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 size: int, batch_size: int = 64, flip: bool = True) -> np.ndarray:
    """Normalised embeddings of faces by `embed(images, landmarks)`; with flip, the mirrored face's is added."""
    out = []
    for i in range(0, len(images), batch_size):
        views = [(images[i : i + batch_size], landmarks[i : i + batch_size])]
        if flip:
            views.append(flip_faces(*views[0]))
        total = None
        for imgs, lms in views:
            emb = nn.functional.normalize(embed(*to_tensors(imgs, lms)), dim=1).cpu()
            total = emb if total is None else total + emb
        out.append(total.numpy())
    return np.concatenate(out) if out else np.zeros((0, size), np.float32)


def _verify_pairs(faces_embedding: Callable[[np.ndarray], np.ndarray], pairs: np.ndarray, same: np.ndarray,
                  fold: np.ndarray | None) -> Verification:
    """Verification of index pairs, each face embedded once."""
    faces = np.unique(pairs)
    emb = faces_embedding(faces)
    where = np.searchsorted(faces, pairs)
    return verify(emb[where[:, 0]], emb[where[:, 1]], same, fold)


def embed_faces(strategy: Strategy, client: ClientNet | None, trainer: ServerTrainer, images: np.ndarray,
                landmarks: np.ndarray, batch_size: int = 64, flip: bool = True) -> np.ndarray:
    """Server embeddings of faces, made from their payloads; with flip, the mirrored face's is added."""
    def server(x: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
        return trainer.embed(strategy.encode(x.to(trainer.device), lm, client))
    return _embed_views(images, landmarks, server, trainer.cfg.model.embedding, batch_size, flip)


def evaluate(strategy: Strategy, client: ClientNet | None, trainer: ServerTrainer, images: np.ndarray,
             landmarks: np.ndarray, pairs: np.ndarray, same: np.ndarray, fold: np.ndarray | None,
             flip: bool = True) -> Verification:
    """Verification of index pairs into images/landmarks (each face embedded once)."""
    return _verify_pairs(lambda faces: embed_faces(strategy, client, trainer, images[faces], landmarks[faces],
                                                   flip=flip), pairs, same, fold)


@torch.no_grad()
def evaluate_client_model(strategy: Strategy, client: ClientNet, images: np.ndarray, landmarks: np.ndarray,
                          pairs: np.ndarray, same: np.ndarray, fold: np.ndarray | None, flip: bool = True) -> Verification:
    """Verification by the frozen client model's own embeddings of its planes: how much its warm-up taught it."""
    device = next(client.parameters()).device

    def own(x: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        return client(strategy.client_planes(x.to(device)))
    return _verify_pairs(lambda faces: _embed_views(images[faces], landmarks[faces], own, 0, flip=flip),
                         pairs, same, fold)


def example_payload(strategy: Strategy) -> dict[str, torch.Tensor]:
    """A one-sample payload of zeros shaped by the spec (for counting MACs)."""
    return {k: torch.zeros((1, *f.shape), dtype=f.dtype) for k, f in strategy.spec().items()}


def model_costs(strategy: Strategy, client: ClientNet | None, trainer: ServerTrainer) -> tuple[dict, dict]:
    """Parameters and MACs per image of client and server models (the client counts 0 when unused)."""
    params = {"client": 0, "server": count_params(trainer.net)}
    payload = {k: v.to(trainer.device) for k, v in example_payload(strategy).items()}
    macs = {"client": 0, "server": count_macs(trainer.net, payload)}
    if strategy.uses_client_model and client is not None:
        params["client"] = count_params(client)
        planes = torch.zeros(1, 3 * len(strategy.client_channels), strategy.size, strategy.size,
                             device=next(client.parameters()).device)
        macs["client"] = count_macs(client, planes)
    return params, macs
