"""The one config schema of `fedsplit train` and `fedsplit run`: dataclasses, loaded from YAML, validated.

Every key is documented in `configs/README.md`. A wrong key or value raises ConfigError naming the
dotted key (and the file) before any work starts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fedsplit.frequency import DUETFACE_CLIENT_CHANNELS, NUM_FREQUENCIES, UPSAMPLE_FACTORS


HEADS = ("arcface", "cosface")
PRIVACY_ATTACKS = ("look", "analytic", "learned", "masks")  # see fedsplit/privacy/suite.py


class ConfigError(ValueError):
    """A config key or value is wrong; the message names the dotted key."""


@dataclass
class DataConfig:
    """Where faces come from and how verification pairs are made."""

    source: str = "synthetic"  # 'synthetic' or 'folder'
    root: str | None = None  # folder of <identity>/<image> files when source is 'folder'
    identities: int = 200  # synthetic: training + held-out identities
    images_per_identity: int = 12  # synthetic
    eval_pairs: str | int | None = None  # folder: LFW-format pairs file; synthetic: pair count (null: 600)
    eval_identities: int = 40  # synthetic: identities held out for evaluation, on no training client
    crop: float = 1.0  # folder: centre-crop fraction before resizing to 112 (LFW deep-funneled: 0.55)
    data_seed: int | None = None  # synthetic generator seed (null: the run's seed)


@dataclass
class PartitionConfig:
    """How training identities are shared out to clients (one identity, one client)."""

    clients: int = 8
    scheme: str = "iid"  # iid | dirichlet | quantity
    alpha: float = 0.5


@dataclass
class ProtectionConfig:
    """What the client sends: the protection strategy and its frequency settings."""

    strategy: str = "duetface"  # rgb | fd_all | hf_only | duetface | partialface
    client_channels: list[int] = field(default_factory=lambda: list(DUETFACE_CLIENT_CHANNELS))
    upsample: int = 1  # 8 is the paper's; 1 keeps the default run within minutes on a CPU
    mask_source: str = "paper"  # duetface: 'paper' (one mask per stage) or 'feature_maps' (official code)
    partialface_ranks: int = 6  # partialface: disjoint subsets ("ranks") the server channels are cut into
    partialface_rank_channels: int = 9  # partialface: channels per colour in one rank (what one face sends)
    partialface_ranks_per_image: int = 3  # partialface: ranks a given face may ever be sent as (r)
    partialface_permutations: int = 3  # partialface: candidate channel orders within a rank
    partialface_key: int = 0  # partialface: the clients' shared secret behind the ranks, orders and draws
    # Additive Gaussian noise on what a client sends (grey levels): [] none, [s] every client, or one per client.
    noise_sigma: list[float] = field(default_factory=list)

    def client_noise(self, client: int) -> float:
        """The noise sigma of one client (partition id)."""
        if not self.noise_sigma:
            return 0.0
        return self.noise_sigma[0] if len(self.noise_sigma) == 1 else self.noise_sigma[client]


@dataclass
class ModelConfig:
    """Server backbone, client model and head."""

    server: str = "ir18"  # ir18 | ir34 | ir50
    server_width: float = 0.25
    client: str = "mobilefacenet"
    client_width: float = 0.5
    embedding: int = 128  # server embedding size
    client_embedding: int = 128
    head: str = "cosface"  # cosface | arcface (cosface learns faster at CPU budgets, see README)
    # Scale and margin of every head (client warm-up and server). At a few hundred steps over ~160 classes
    # the heads' own s=64 (with m=0.35/0.5) trains neither model: losses stay at a uniform guess and the
    # client model verifies no better than untrained. s=8 is about AdaCos's fixed scale sqrt(2)*ln(C-1)
    # for C=160. null: the head's own (s=64; m cosface 0.35, arcface 0.5 rad).
    head_scale: float | None = 8.0
    head_margin: float | None = 0.1


@dataclass
class TrainConfig:
    """Optimisation; federated and centralized runs take the same number of server steps."""

    warmup_rounds: int = 10  # client-model pre-training rounds (federated averaging)
    warmup_local_steps: int = 10  # client batches per client per warm-up round
    warmup_lr: float = 0.1
    rounds: int = 20  # split-training rounds
    clients_per_round: int = 4
    batches_per_client: int = 4  # server steps per client per round
    batch_size: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4  # not on BatchNorm or bias
    schedule: str = "cosine"  # cosine | step
    step_milestones: list[float] = field(default_factory=lambda: [0.6, 0.85])  # step: fractions of all steps
    eval_every: int = 2  # rounds between evaluations (the last round is always evaluated)
    central_batches: str = "mixed"  # fedsplit train only: mixed (any training faces) | by_client (as federated)
    client_model: str | None = None  # a finished run's directory or client_model.pt: used frozen, no warm-up
    flip_tta: bool = True
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N


@dataclass
class SimulationConfig:
    """Flower simulation engine and Ray resources (used by `fedsplit run`)."""

    client_cpus: float = 1.0
    client_gpus: float = 0.0
    ray_address: str | None = None  # join this Ray cluster instead of starting one
    ray_num_cpus: int | None = None  # CPUs the local Ray instance may use (null: all of this machine's)
    round_timeout: float = 600.0  # seconds for every send_and_receive


@dataclass
class PrivacyConfig:
    """`fedsplit privacy`: which strategies and attacks, on how many victims, with what attacker budget."""

    strategies: list[str] = field(default_factory=lambda: ["rgb", "fd_all", "hf_only", "duetface", "partialface"])
    upsample: list[int] = field(default_factory=lambda: [1])  # factors each frequency strategy is attacked at
    attacks: list[str] = field(default_factory=lambda: ["look", "analytic", "learned", "masks"])
    victims: int = 160  # held-out faces attacked (whole identities first)
    aux_faces: int | None = 1500  # the attacker's auxiliary faces, from the training identities (null: all)
    recogniser_steps: int = 300  # the attacker's face recogniser, trained on clean auxiliary faces
    learned_steps: int = 300  # each learned inversion (the same budget for every strategy)
    client_warmup_steps: int | None = None  # duetface's client model (null: as a run warms it up)


@dataclass
class Config:
    """A whole run."""

    name: str = "default"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    protection: ProtectionConfig = field(default_factory=ProtectionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    output: str = "runs"

    def run_dir(self) -> Path:
        """runs/<name>."""
        return Path(self.output) / self.name

    def server_steps(self) -> int:
        """Server optimiser steps of the whole run (federated and centralized alike)."""
        t = self.train
        return t.rounds * t.clients_per_round * t.batches_per_client

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (what results.json records)."""
        return dataclasses.asdict(self)


_SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}


def _check_type(key: str, value: Any, annotation: str) -> Any:
    """Coerce a YAML value to the annotated type or raise ConfigError naming the key."""
    types = [t.strip() for t in annotation.split("|")]
    if value is None:
        if "None" in types:
            return None
        raise ConfigError(f"{key}: must not be null (expected {annotation})")
    for t in types:
        if t == "bool" and isinstance(value, bool):
            return value
        if t == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key}: must be a finite number, got {value!r}")
            return float(value)
        if t == "str" and isinstance(value, str):
            return value
        if t.startswith("list[") and isinstance(value, (list, tuple)):
            inner = t[5:-1]
            return [_check_type(f"{key}[{i}]", v, inner) for i, v in enumerate(value)]
    raise ConfigError(f"{key}: expected {annotation}, got {type(value).__name__} {value!r}")


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    """Instantiate a config dataclass from a mapping, rejecting unknown keys by their dotted name."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown key {where}{unknown[0]} (known under {prefix or 'the top level'}: "
                          f"{', '.join(fields)})")
    kwargs = {}
    for name, value in values.items():
        key = f"{prefix}.{name}" if prefix else name
        annotation = fields[name].type
        if prefix == "" and name in _SECTIONS and annotation.endswith("Config"):
            kwargs[name] = _build(globals()[annotation], value, name)
        else:
            kwargs[name] = _check_type(key, value, annotation)
    return cls(**kwargs)


def _positive(key: str, value: float, integer: bool = True) -> None:
    if value is None or value <= 0:
        raise ConfigError(f"{key}: must be {'a positive integer' if integer else 'positive'}, got {value!r}")


def validate(cfg: Config) -> Config:
    """Check every value that types alone cannot; raise ConfigError naming the first bad key."""
    from fedsplit.models import CLIENT_NAMES, SERVER_DEPTHS
    from fedsplit.protection import STRATEGIES

    if not cfg.name or "/" in cfg.name or cfg.name in (".", ".."):
        raise ConfigError(f"name: must be a plain folder name, got {cfg.name!r}")
    if cfg.seed < 0:
        raise ConfigError(f"seed: must be >= 0, got {cfg.seed}")
    d = cfg.data
    if d.source not in ("synthetic", "folder"):
        raise ConfigError(f"data.source: must be 'synthetic' or 'folder', got {d.source!r}")
    if d.source == "folder":
        if d.root is None:
            raise ConfigError("data.root: required when data.source is 'folder'")
        if not Path(d.root).is_dir():
            raise ConfigError(f"data.root: {d.root} is not a folder")
        if isinstance(d.eval_pairs, int):
            raise ConfigError("data.eval_pairs: for a folder source give a pairs file (LFW format) or null")
        if d.eval_pairs is not None and not Path(d.eval_pairs).is_file():
            raise ConfigError(f"data.eval_pairs: {d.eval_pairs} is not a file")
    else:
        if isinstance(d.eval_pairs, str):
            raise ConfigError("data.eval_pairs: for synthetic data give a pair count (a multiple of 20) or null")
        _positive("data.identities", d.identities)
        if d.images_per_identity < 2:
            raise ConfigError(f"data.images_per_identity: must be >= 2 (pairs need two images), got {d.images_per_identity}")
        if not 2 <= d.eval_identities < d.identities:
            raise ConfigError(f"data.eval_identities: must be between 2 and data.identities - 1, got {d.eval_identities}")
        if isinstance(d.eval_pairs, int) and (d.eval_pairs < 20 or d.eval_pairs % 20):
            raise ConfigError(f"data.eval_pairs: must be a positive multiple of 20 (10 folds), got {d.eval_pairs}")
    if not 0.0 < d.crop <= 1.0:
        raise ConfigError(f"data.crop: must be in (0, 1], got {d.crop}")
    p = cfg.partition
    _positive("partition.clients", p.clients)
    if p.scheme not in ("iid", "dirichlet", "quantity"):
        raise ConfigError(f"partition.scheme: must be iid, dirichlet or quantity, got {p.scheme!r}")
    _positive("partition.alpha", p.alpha, integer=False)
    pr = cfg.protection
    if pr.strategy not in STRATEGIES:
        raise ConfigError(f"protection.strategy: must be one of {', '.join(sorted(STRATEGIES))}, got {pr.strategy!r}")
    if pr.upsample not in UPSAMPLE_FACTORS:
        raise ConfigError(f"protection.upsample: must be one of {UPSAMPLE_FACTORS}, got {pr.upsample}")
    if not pr.client_channels or len(set(pr.client_channels)) != len(pr.client_channels):
        raise ConfigError(f"protection.client_channels: must be distinct channel numbers, got {pr.client_channels}")
    bad = [k for k in pr.client_channels if not 0 <= k < NUM_FREQUENCIES]
    if bad or len(pr.client_channels) >= NUM_FREQUENCIES:
        raise ConfigError(f"protection.client_channels: each must be in 0..63 and some must be left for the "
                          f"server, got {pr.client_channels}")
    if pr.mask_source not in ("paper", "feature_maps"):
        raise ConfigError(f"protection.mask_source: must be 'paper' or 'feature_maps', got {pr.mask_source!r}")
    for key in ("partialface_ranks", "partialface_rank_channels", "partialface_permutations"):
        _positive(f"protection.{key}", getattr(pr, key))
    if not 1 <= pr.partialface_ranks_per_image <= pr.partialface_ranks:
        raise ConfigError(f"protection.partialface_ranks_per_image: must be between 1 and protection.partialface_ranks "
                          f"({pr.partialface_ranks}), got {pr.partialface_ranks_per_image}")
    # 20! already exceeds any sensible count; capping keeps a huge rank size from stalling validation.
    if pr.partialface_permutations > math.factorial(min(pr.partialface_rank_channels, 20)):
        raise ConfigError(f"protection.partialface_permutations: {pr.partialface_permutations} distinct orders do not "
                          f"exist for protection.partialface_rank_channels={pr.partialface_rank_channels}")
    if pr.partialface_key < 0:
        raise ConfigError(f"protection.partialface_key: must be >= 0, got {pr.partialface_key}")
    server_count = NUM_FREQUENCIES - len(pr.client_channels)
    if pr.strategy == "partialface" and pr.partialface_ranks * pr.partialface_rank_channels > server_count:
        raise ConfigError(f"protection.partialface_rank_channels: {pr.partialface_ranks} ranks x "
                          f"{pr.partialface_rank_channels} channels exceed the {server_count} server channels per "
                          f"colour left by protection.client_channels")
    if pr.noise_sigma and len(pr.noise_sigma) not in (1, p.clients):
        raise ConfigError(f"protection.noise_sigma: give [] (none), one sigma, or one per client "
                          f"({p.clients}), got {len(pr.noise_sigma)} values")
    if any(v < 0 for v in pr.noise_sigma):
        raise ConfigError(f"protection.noise_sigma: must be >= 0, got {pr.noise_sigma}")
    m = cfg.model
    if m.server not in SERVER_DEPTHS:
        raise ConfigError(f"model.server: must be one of {', '.join(SERVER_DEPTHS)}, got {m.server!r}")
    if m.client not in CLIENT_NAMES:
        raise ConfigError(f"model.client: must be one of {', '.join(CLIENT_NAMES)}, got {m.client!r}")
    if m.head not in HEADS:
        raise ConfigError(f"model.head: must be one of {', '.join(HEADS)}, got {m.head!r}")
    if m.head_scale is not None:
        _positive("model.head_scale", m.head_scale, integer=False)
    if m.head_margin is not None and not 0.0 <= m.head_margin < 1.0:
        # cosface's margin is a cosine, arcface's an angle: past 1 either leaves no room to be right.
        raise ConfigError(f"model.head_margin: must be in [0, 1), got {m.head_margin}")
    for key in ("server_width", "client_width"):
        if not 0.0 < getattr(m, key) <= 4.0:
            raise ConfigError(f"model.{key}: must be in (0, 4], got {getattr(m, key)}")
    _positive("model.embedding", m.embedding)
    _positive("model.client_embedding", m.client_embedding)
    t = cfg.train
    for key in ("rounds", "clients_per_round", "batches_per_client", "batch_size", "eval_every",
                "warmup_local_steps"):
        _positive(f"train.{key}", getattr(t, key))
    if t.warmup_rounds < 0:
        raise ConfigError(f"train.warmup_rounds: must be >= 0, got {t.warmup_rounds}")
    if t.batch_size < 2:
        raise ConfigError(f"train.batch_size: must be >= 2 (BatchNorm needs two samples), got {t.batch_size}")
    if t.clients_per_round > p.clients:
        raise ConfigError(f"train.clients_per_round: {t.clients_per_round} is more than partition.clients "
                          f"{p.clients}")
    for key in ("lr", "warmup_lr"):
        _positive(f"train.{key}", getattr(t, key), integer=False)
    if not 0.0 <= t.momentum < 1.0:
        raise ConfigError(f"train.momentum: must be in [0, 1), got {t.momentum}")
    if t.weight_decay < 0:
        raise ConfigError(f"train.weight_decay: must be >= 0, got {t.weight_decay}")
    if t.central_batches not in ("mixed", "by_client"):
        raise ConfigError(f"train.central_batches: must be 'mixed' or 'by_client', got {t.central_batches!r}")
    if t.client_model is not None and (not isinstance(t.client_model, str) or not t.client_model.strip()):
        raise ConfigError(f"train.client_model: must be a path or null, got {t.client_model!r}")
    if t.schedule not in ("cosine", "step"):
        raise ConfigError(f"train.schedule: must be 'cosine' or 'step', got {t.schedule!r}")
    if any(not 0.0 < f < 1.0 for f in t.step_milestones) or t.step_milestones != sorted(t.step_milestones):
        raise ConfigError(f"train.step_milestones: must be increasing fractions in (0, 1), got {t.step_milestones}")
    if not (t.device in ("auto", "cpu", "cuda") or (t.device.startswith("cuda:") and t.device[5:].isdigit())):
        raise ConfigError(f"train.device: must be auto, cpu, cuda or cuda:N, got {t.device!r}")
    s = cfg.simulation
    if s.client_cpus <= 0 or s.client_gpus < 0:
        raise ConfigError(f"simulation.client_cpus must be > 0 and simulation.client_gpus >= 0, got "
                          f"{s.client_cpus}, {s.client_gpus}")
    _positive("simulation.round_timeout", s.round_timeout, integer=False)
    if s.ray_num_cpus is not None:
        _positive("simulation.ray_num_cpus", s.ray_num_cpus)
        if s.ray_num_cpus < s.client_cpus:
            raise ConfigError(f"simulation.ray_num_cpus: {s.ray_num_cpus} cannot hold one client of "
                              f"simulation.client_cpus={s.client_cpus}")
    pv = cfg.privacy
    for name in pv.strategies:
        if name not in STRATEGIES:
            raise ConfigError(f"privacy.strategies: unknown {name!r}; known: {', '.join(sorted(STRATEGIES))}")
    for up in pv.upsample:
        if up not in UPSAMPLE_FACTORS:
            raise ConfigError(f"privacy.upsample: each factor must be one of {UPSAMPLE_FACTORS}, got {up}")
    for attack in pv.attacks:
        if attack not in PRIVACY_ATTACKS:
            raise ConfigError(f"privacy.attacks: unknown {attack!r}; known: {', '.join(PRIVACY_ATTACKS)}")
    if not pv.strategies or not pv.upsample:
        raise ConfigError("privacy.strategies and privacy.upsample: must not be empty")
    for key in ("victims", "recogniser_steps", "learned_steps"):
        _positive(f"privacy.{key}", getattr(pv, key))
    if pv.aux_faces is not None and pv.aux_faces < 2:
        raise ConfigError(f"privacy.aux_faces: must be >= 2 or null, got {pv.aux_faces}")
    if pv.client_warmup_steps is not None and pv.client_warmup_steps < 0:
        raise ConfigError(f"privacy.client_warmup_steps: must be >= 0 or null, got {pv.client_warmup_steps}")
    return cfg


def _parse_override(item: str) -> tuple[list[str], Any]:
    """'train.lr=0.05' -> (['train', 'lr'], 0.05); the value is read as YAML."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected key.sub=value")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({err})") from None
    return key.strip().split("."), value


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (None: the built-in defaults), apply `key.sub=value` overrides, validate."""
    raw: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise ConfigError(f"config {path}: cannot read ({err.strerror})") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config {path}: not valid YAML ({err})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config {path}: expected a mapping of sections, got {type(raw).__name__}")
    for item in overrides:
        keys, value = _parse_override(item)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {k} is not a section")
        node[keys[-1]] = value
    try:
        cfg = _build(Config, raw, "")
        return validate(cfg)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


# Keys added with a default that changes what a run does: a stored config without them was run as these
# values say, not as today's default would (the rest of the keys added later keep older runs' behaviour).
_BEFORE_THEY_EXISTED = {("model", "head_scale"): None, ("model", "head_margin"): None}


def config_from_dict(values: dict[str, Any], where: str = "a stored config") -> Config:
    """A Config from plain data such as results.json's `config`; keys added since it was written mean what it ran."""
    values = {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}
    for (section, key), then in _BEFORE_THEY_EXISTED.items():
        if isinstance(values.get(section), dict):
            values[section].setdefault(key, then)
    try:
        return validate(_build(Config, values, ""))
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def same_config(stored: dict[str, Any], cfg: Config) -> bool:
    """Whether plain data written by an earlier run (perhaps of an older schema) describes cfg."""
    try:
        return config_from_dict(stored).to_dict() == cfg.to_dict()
    except ConfigError:
        return False
