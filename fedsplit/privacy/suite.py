"""`fedsplit privacy`: every attack against every protection strategy, on one yardstick.

Threat model: an honest-but-curious server. It follows the protocol but keeps and studies every payload
it receives. It knows the whole pipeline (transform, channel split, upsample factor, the client model's
architecture and weights, since it averaged them) and holds auxiliary public faces of other people
(here: the run's training identities). It never holds a victim's image. Victims are the held-out
identities, which reach the server only as payloads (as in `fedsplit run`).

For each strategy and upsample factor the victims' payloads are made as their clients would make them
(each client's noise setting included), then attacked:
  look      the inverse transform of exactly what arrived, missing planes zero
  analytic  regularised least squares over the known linear view (fedsplit.privacy.analytic)
  learned   a U-Net trained by the attacker on its own auxiliary faces' payloads (fedsplit.privacy.learned):
            at upsample 1 the planes with the look image beside them, at upsample > 1 the analytic estimate
  masks     duetface only: the same U-Net from the masks alone
and every recovery is scored by PSNR, SSIM and by an attacker face recogniser trained on clean
auxiliary faces (fedsplit.privacy.identify). Calibration rows: `clean` (the victims' own images) and
`noise` (uniform noise images) bound what identification can say.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fedsplit.config import Config, ConfigError, config_from_dict
from fedsplit.data.splits import FaceSplits, build_splits, client_shards
from fedsplit.data.types import images_to_tensor
from fedsplit.frequency import NUM_FREQUENCIES
from fedsplit.privacy.analytic import analytic_inversion
from fedsplit.privacy.identify import (Recogniser, chance_level, embed, identification_top1, pair_verification,
                                       train_recogniser)
from fedsplit.privacy.learned import invert, payload_tensor, train_inversion
from fedsplit.privacy.look import look
from fedsplit.privacy.metrics import psnr, ssim
from fedsplit.privacy.report import format_costs, format_table, save_grid
from fedsplit.protection import ClientNet, Strategy, make_strategy
from fedsplit.protection.base import add_noise
from fedsplit.training import ClientWarmup, freeze, random_flips, to_tensors

_BATCH = 64
# Per-image PSNR above this is an exact copy to float precision; capping keeps a mean finite and honest.
PSNR_CAP = 100.0
# The attacker does not hold partialface's key: it makes its auxiliary payloads under keys of its own,
# one per group of auxiliary faces (the groups also bound the memory of encoding them).
_ATTACKER_KEYS = 8


@dataclasses.dataclass
class Victims:
    """The attacked faces: indices into the splits, identity labels and the client that holds each."""

    faces: np.ndarray
    labels: np.ndarray
    client: np.ndarray
    sigma: np.ndarray  # the noise sigma of each face's client

    def images(self, splits: FaceSplits) -> torch.Tensor:
        """The clean faces (V,3,112,112) on the [-1,1] scale."""
        return images_to_tensor(splits.images[self.faces])


def choose_victims(cfg: Config, splits: FaceSplits) -> Victims:
    """Up to privacy.victims held-out faces, whole identities first, with the client that holds each."""
    p = cfg.partition
    shards = client_shards(splits, p.clients, p.scheme, p.alpha, cfg.seed)
    owner = np.full(len(splits.labels), -1, np.int64)
    for s in shards:
        owner[s.eval_faces] = s.client
    faces = splits.eval_faces
    # Whole identities, in a seeded order, so that "other photo" identification has other photos to find.
    ids = np.random.default_rng(cfg.seed).permutation(np.unique(splits.labels[faces]))
    rank = {int(i): r for r, i in enumerate(ids)}
    faces = faces[np.argsort([rank[int(lab)] for lab in splits.labels[faces]], kind="stable")][: cfg.privacy.victims]
    client = owner[faces]
    return Victims(faces=faces, labels=splits.labels[faces], client=client,
                   sigma=np.array([cfg.protection.client_noise(int(c)) for c in client], np.float64))


def _encode(strategy: Strategy, client: ClientNet | None, splits: FaceSplits, faces: np.ndarray,
            sigma: np.ndarray, seed: int) -> dict[str, torch.Tensor]:
    """Payloads of the given faces, batch by batch, each face with its client's noise."""
    parts: dict[str, list[torch.Tensor]] = {}
    gen = torch.Generator().manual_seed(seed)
    for i in range(0, len(faces), _BATCH):
        idx = faces[i : i + _BATCH]
        x, lm = to_tensors(splits.images[idx], splits.landmarks[idx])
        payload = add_noise(strategy, strategy.encode(x, lm, client), torch.from_numpy(sigma[i : i + _BATCH]), gen)
        for k, t in payload.items():
            parts.setdefault(k, []).append(t)
    return {k: torch.cat(v) for k, v in parts.items()}


def _client_model(cfg: Config, strategy: Strategy, splits: FaceSplits, aux: np.ndarray,
                  log: Callable[[str], None]) -> ClientNet | None:
    """The frozen client model the server knows: warmed up on the training faces as a run would be."""
    if not strategy.uses_client_model:
        return None
    t = cfg.train
    steps = cfg.privacy.client_warmup_steps
    if steps is None:
        steps = t.warmup_rounds * t.clients_per_round * t.warmup_local_steps
    torch.manual_seed(cfg.seed)
    client = ClientNet(strategy.protection, strategy.model)
    classes = np.unique(splits.labels[aux], return_inverse=True)[1]
    warm = ClientWarmup(strategy, client, int(classes.max()) + 1, cfg, max(steps, 1))
    rng = np.random.default_rng(cfg.seed)
    start = time.perf_counter()
    for step in range(steps):
        pick = rng.choice(len(aux), size=t.batch_size, replace=False)
        images, landmarks = random_flips(splits.images[aux[pick]], splits.landmarks[aux[pick]], rng)
        x, _ = to_tensors(images, landmarks)
        loss = warm.step(x, torch.from_numpy(classes[pick]))
        if (step + 1) % 100 == 0 or step + 1 == steps:
            log(f"  client model warm-up {step + 1}/{steps}: loss {loss:.3f} ({time.perf_counter() - start:.0f} s)")
    return freeze(client)


def _planes_and_channels(strategy: Strategy, payload: dict[str, torch.Tensor],
                         images: torch.Tensor | None = None) -> list[tuple[np.ndarray, torch.Tensor, tuple[int, ...]]]:
    """Groups of (sample rows, planes in ascending channel order, channels) that the view explains.

    partialface's channels differ per sample and are a client secret: `images` (the victims' own faces)
    lets the evaluation ask the strategy which rank and order each sample got; an attacker without the
    key cannot do this, so its look/analytic rows are an oracle upper bound (the docs say so).
    """
    name = strategy.name
    if name == "fd_all":
        return [(np.arange(len(payload["planes"])), payload["planes"], tuple(range(NUM_FREQUENCIES)))]
    if name in ("hf_only", "duetface"):
        return [(np.arange(len(payload["server_channels"])), payload["server_channels"], strategy.server_channels)]
    if name == "partialface":
        planes = payload["rank_channels"]
        # The draws hang on each encoded batch, so ask batch by batch as _encode made them.
        picks = [strategy.choose(images[i : i + _BATCH]) for i in range(0, len(images), _BATCH)]
        rank, order = (np.concatenate([p[j] for p in picks]) for j in (0, 1))
        s = strategy.rank_channels
        sent = np.take_along_axis(strategy.ranks[rank], strategy.orders[order], axis=1)  # (B, s) frequencies
        groups = []
        for key in sorted({tuple(r) for r in sent.tolist()}):
            rows = np.flatnonzero((sent == np.array(key)).all(axis=1))
            sort = np.argsort(key)
            p = planes[rows].view(len(rows), 3, s, *planes.shape[-2:])[:, :, torch.from_numpy(sort)]
            groups.append((rows, p.flatten(1, 2), tuple(int(key[i]) for i in sort)))
        return groups
    return []


def _attacker_payloads(cfg: Config, strategy: Strategy, client: ClientNet | None, splits: FaceSplits,
                       faces: np.ndarray, sigma: np.ndarray, group: int) -> dict[str, torch.Tensor]:
    """The payloads the attacker makes of one group of its own auxiliary faces, as clients would.

    partialface's ranks and orders hang on the clients' secret key, which the server lacks: it encodes
    each group under a key of its own instead, so its decoder must work whatever the partition is.
    """
    if strategy.name == "partialface":
        key = cfg.protection.partialface_key + 1 + group  # any key but the clients'
        strategy = make_strategy(dataclasses.replace(strategy.protection, partialface_key=key), strategy.model)
    return _encode(strategy, client, splits, faces, sigma, cfg.seed + 3 + group)


def _attacker_inputs(cfg: Config, strategy: Strategy, client: ClientNet | None, splits: FaceSplits, aux: np.ndarray,
                     sigma: np.ndarray, learned_sets: list[tuple[str, list[str]]], upsample: int,
                     prior: torch.Tensor, log: Callable[[str], None] = print,
                     ) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """The learned attacks' training inputs, made group by group: at upsample 8 the planes of 1,500
    faces would take 12 GB, their analytic estimates 0.2 GB."""
    parts: dict[str, tuple[list, list]] = {attack: ([], []) for attack, _ in learned_sets}
    start, done = time.perf_counter(), 0
    for group, rows in enumerate(np.array_split(np.arange(len(aux)), _ATTACKER_KEYS)):
        if done:
            log(f"  auxiliary inputs {done}/{len(aux)} ({time.perf_counter() - start:.0f} s)")
        done += len(rows)
        payload = _attacker_payloads(cfg, strategy, client, splits, aux[rows], sigma[rows], group)
        for attack, keys in learned_sets:
            x, extra = _learned_inputs(strategy, payload, keys, upsample, prior)
            parts[attack][0].append(x)
            parts[attack][1].append(extra)
    return {attack: (torch.cat(xs), None if extras[0] is None else torch.cat(extras))
            for attack, (xs, extras) in parts.items()}


def _learned_inputs(strategy: Strategy, payload: dict[str, torch.Tensor], keys: list[str], upsample: int,
                    prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(input, extra) of the learned attack: the payload entries, and an image the attacker can compute.

    At upsample 1 that image is the look (inverse transform, missing planes zero), given beside the planes.
    At upsample > 1 the planes are 112x112 each and would cost gigabytes over the auxiliary set; the
    analytic estimate (a 112x112 face) stands in for them: it is what the planes say about the face, and
    the decoder learns what the regularised solve gets wrong.
    """
    masks_only = all(k.startswith("mask_") for k in keys)
    if masks_only or strategy.name == "partialface":
        return payload_tensor(payload, keys), None
    groups = _planes_and_channels(strategy, payload)
    batch = len(next(iter(payload.values())))
    if upsample == 1:
        return payload_tensor(payload, keys), _by_groups(groups, batch, lambda p, c: look(p, c, upsample))
    return _by_groups(groups, batch, lambda p, c: analytic_inversion(p, c, upsample, prior=prior)), None


def _by_groups(groups, batch: int, fn) -> torch.Tensor:  # noqa: ANN001 - internal
    out = None
    for rows, planes, channels in groups:
        rec = fn(planes, channels)
        if out is None:
            out = torch.zeros(batch, *rec.shape[1:])
        out[torch.from_numpy(rows)] = rec.float()
    return out


def mean_psnr(values: np.ndarray) -> float:
    """Mean PSNR over images, each capped at PSNR_CAP dB (an exact copy has infinite PSNR); inf if all exact."""
    values = np.asarray(values, np.float64)
    if len(values) and np.isinf(values).all():
        return float("inf")
    return float(np.minimum(values, PSNR_CAP).mean())


def _score(name: dict, recovered: torch.Tensor, originals: torch.Tensor, victims: Victims, recogniser: Recogniser,
           gallery: torch.Tensor, split_clients: bool) -> list[dict]:
    """Rows for one recovery: all victims, and per client when clients differ in their settings."""
    emb = embed(recogniser, recovered.clamp(-1, 1))
    p, s = psnr(recovered, originals), ssim(recovered, originals)
    rows = []
    groups = [(None, np.ones(len(victims.faces), bool))]
    if split_clients:
        groups += [(int(c), victims.client == c) for c in np.unique(victims.client)]
    for client, keep in groups:
        def _id(exclude: bool) -> float | None:
            try:
                return identification_top1(emb[keep], victims.labels[keep], gallery, victims.labels,
                                           exclude_self=exclude, probe_ids=victims.faces[keep],
                                           gallery_ids=victims.faces)
            except ValueError:  # e.g. no other photo of any probe's identity
                return None
        try:
            pv = pair_verification(emb[keep], gallery[keep], victims.labels[keep])
        except ValueError:
            pv = None
        rows.append({**name, "client": client,
                     "noise_sigma": None if client is None else float(victims.sigma[keep][0]),
                     "victims": int(keep.sum()),
                     "psnr": mean_psnr(p[keep]),
                     "ssim": float(s[keep].mean()),
                     "identification_top1": _id(False), "identification_top1_other": _id(True),
                     "pair_verification": pv, "chance": chance_level(victims.labels)})
    return rows


def client_costs(cfg: Config, rows: list[dict], log: Callable[[str], None] = print) -> list[dict] | None:
    """Per client: the accuracy its setting left it in `fedsplit run` of this config, next to the strongest attack.

    The accuracy is results.json's `client_accuracy` of runs/<name>/ (pairs holding that client's faces);
    the attack is the one that identified most of that client's victims under the run's strategy and
    upsample factor. None, with the reason logged, when there is no finished run of this same config.
    """
    path = cfg.run_dir() / "results.json"
    hint = f"`fedsplit run` of this config (same name) writes {path}; then each client's accuracy joins this report"
    if not path.exists():
        log(f"  no {path}: {hint}")
        return None
    run = json.loads(path.read_text())
    try:
        theirs = config_from_dict(run.get("config") or {}, str(path))
    except ConfigError as err:
        log(f"  {err}: no accuracy joined")
        return None
    if run.get("mode") != "federated" or "client_accuracy" not in run or \
            dataclasses.replace(theirs, privacy=cfg.privacy).to_dict() != cfg.to_dict():
        log(f"  {path} is not a federated run of this config: no accuracy joined ({hint})")
        return None
    strategy, up = theirs.protection.strategy, theirs.protection.upsample
    out = []
    for acc in run["client_accuracy"]:
        attacked = [r for r in rows if r["strategy"] == strategy and r["upsample"] in (up, None)
                    and r["client"] == acc["client"] and r["identification_top1"] is not None]
        best = max(attacked, key=lambda r: r["identification_top1"], default=None)
        out.append({"client": acc["client"], "noise_sigma": acc["noise_sigma"], "strategy": strategy, "upsample": up,
                    "accuracy": acc["accuracy"], "pairs": acc["pairs"],
                    "strongest_attack": best and best["attack"], "identification_top1": best and best["identification_top1"],
                    "psnr": best and best["psnr"], "victims": best["victims"] if best else 0,
                    "chance": best and best["chance"]})
    return out


def run_privacy(cfg: Config, log: Callable[[str], None] = print) -> dict:
    """Run every configured attack on every configured strategy; write privacy.json, report.md and grids."""
    start = time.perf_counter()
    pc = cfg.privacy
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    splits = build_splits(cfg)
    victims = choose_victims(cfg, splits)
    aux = splits.train
    if pc.aux_faces is not None and len(aux) > pc.aux_faces:
        aux = np.sort(np.random.default_rng(cfg.seed).choice(aux, pc.aux_faces, replace=False))
    split_clients = len(set(victims.sigma.tolist())) > 1
    log(f"[{cfg.name}] privacy: {len(victims.faces)} victim faces of {len(np.unique(victims.labels))} identities, "
        f"{len(aux)} auxiliary faces; data {splits.description}")

    log(f"[{cfg.name}] attacker's recogniser on clean auxiliary faces ({pc.recogniser_steps} steps)")
    recogniser = train_recogniser(splits.images[aux], splits.labels[aux], steps=pc.recogniser_steps, seed=cfg.seed,
                                  log=lambda s: log("  " + s))
    originals = victims.images(splits)
    gallery = embed(recogniser, originals)
    rows: list[dict] = []
    calib = {"clean": originals,
             "noise": torch.rand(originals.shape, generator=torch.Generator().manual_seed(cfg.seed)) * 2 - 1}
    for attack, images in calib.items():
        rows += _score({"strategy": "none", "upsample": None, "attack": attack, "seconds": 0.0}, images, originals,
                       victims, recogniser, gallery, False)
    grids = {}
    aux_images = images_to_tensor(splits.images[aux])  # the learned attacks' targets; their mean is the prior
    prior = aux_images.mean(0)
    aux_sigma = np.random.default_rng(cfg.seed + 1).choice(victims.sigma, len(aux)) if split_clients else \
        np.full(len(aux), victims.sigma[0] if len(victims.sigma) else 0.0)
    same_planes: dict[int, tuple] = {}  # upsample -> (strategy, its victims' planes, recoveries, seconds)
    for name in pc.strategies:
        for up in (pc.upsample if name != "rgb" else [1]):
            protection = dataclasses.replace(cfg.protection, strategy=name, upsample=up)
            strategy = make_strategy(protection, cfg.model)
            log(f"[{cfg.name}] {name} at upsample {up}: {strategy.description}")
            client = _client_model(cfg, strategy, splits, aux, log)
            victim_payload = _encode(strategy, client, splits, victims.faces, victims.sigma, cfg.seed + 2)
            columns = {"original": originals}
            recovered: dict[str, torch.Tensor] = {}
            seconds: dict[str, float] = {}
            groups = _planes_and_channels(strategy, victim_payload, originals)
            same = same_planes.get(up)
            if same is not None and torch.equal(same[1], victim_payload.get("server_channels", torch.empty(0))):
                # duetface sends hf_only's planes bit for bit: attacks on the planes alone cannot differ.
                log(f"  the same planes as {same[0]}: its look, analytic and learned recoveries stand for these")
                recovered.update(same[2])
                seconds.update(same[3])
            elif name == "rgb":
                recovered["look"] = images_to_tensor(victim_payload["image"].permute(0, 2, 3, 1).numpy())
            elif groups:
                if "look" in pc.attacks:
                    t0 = time.perf_counter()
                    recovered["look"] = _by_groups(groups, len(victims.faces), lambda p, c: look(p, c, up))
                    seconds["look"] = time.perf_counter() - t0
                if "analytic" in pc.attacks:
                    t0 = time.perf_counter()
                    recovered["analytic"] = _by_groups(
                        groups, len(victims.faces), lambda p, c: analytic_inversion(p, c, up, prior=prior))
                    seconds["analytic"] = time.perf_counter() - t0
            learned_sets = []
            if "learned" in pc.attacks and name != "rgb" and "learned" not in recovered:
                learned_sets.append(("learned", [k for k in strategy.spec() if not k.startswith("mask_")]))
            if "masks" in pc.attacks and any(k.startswith("mask_") for k in strategy.spec()):
                learned_sets.append(("masks", [k for k in strategy.spec() if k.startswith("mask_")]))
            if learned_sets:
                t0 = time.perf_counter()
                aux_inputs = _attacker_inputs(cfg, strategy, client, splits, aux, aux_sigma, learned_sets, up, prior,
                                              log)
                shared = (time.perf_counter() - t0) / len(learned_sets)
                for attack, keys in learned_sets:
                    t0 = time.perf_counter()
                    net = train_inversion(aux_inputs[attack][0], aux_images, extra=aux_inputs[attack][1],
                                          steps=pc.learned_steps, seed=cfg.seed, log=lambda s: log("  " + s))
                    recovered[attack] = invert(net, *_learned_inputs(strategy, victim_payload, keys, up, prior))
                    seconds[attack] = shared + time.perf_counter() - t0
            if "server_channels" in victim_payload and up not in same_planes:
                planes_only = [a for a in ("look", "analytic", "learned") if a in recovered]
                same_planes[up] = (name, victim_payload["server_channels"], {a: recovered[a] for a in planes_only},
                                   {a: seconds[a] for a in planes_only if a in seconds})
            for attack, images in recovered.items():
                if attack not in pc.attacks and not (name == "rgb" and attack == "look"):
                    continue
                columns[attack] = images
                scored = _score({"strategy": name, "upsample": up if name != "rgb" else None, "attack": attack,
                                 "seconds": round(seconds.get(attack, 0.0), 2)},
                                images, originals, victims, recogniser, gallery, split_clients)
                rows += scored
                r = scored[0]  # all victims; per-client rows follow it
                log(f"  {attack:9s} PSNR {r['psnr']:.2f} dB  SSIM {r['ssim']:.3f}  top-1 "
                    f"{100 * (r['identification_top1'] or 0):.1f}% (chance {100 * r['chance']:.1f}%)")
            tag = f"{name}" if name == "rgb" else f"{name}_up{up}"
            grids[tag] = str(save_grid(out / f"grid_{tag}.png", columns).name)

    costs = client_costs(cfg, rows, log) if split_clients else None
    results = {"rows": rows, "client_costs": costs, "grids": grids, "victims": int(len(victims.faces)),
               "victim_identities": int(len(np.unique(victims.labels))), "aux_faces": int(len(aux)),
               "data": splits.description, "wall_seconds": round(time.perf_counter() - start, 1),
               "config": cfg.to_dict()}
    (out / "privacy.json").write_text(json.dumps(results, indent=2, default=float))
    report = format_report(results)
    (out / "report.md").write_text(report)
    log(format_table(rows))
    if costs:
        log(format_costs(costs))
    log(f"wrote {out / 'privacy.json'}, {out / 'report.md'} and {len(grids)} grids")
    return results


def format_report(results: dict) -> str:
    """report.md: what was attacked, the table and the grids."""
    lines = [f"# Privacy: {results['config']['name']}", "",
             f"data: {results['data']}; {results['victims']} victim faces of {results['victim_identities']} "
             f"identities; {results['aux_faces']} auxiliary faces for the attacker; {results['wall_seconds']:.0f} s", "",
             format_table(results["rows"]), ""]
    if results.get("client_costs"):
        lines += [format_costs(results["client_costs"]), ""]
    for tag, png in results["grids"].items():
        lines += [f"## {tag}", "", f"![{tag}]({png})", ""]
    return "\n".join(lines)


def output_dir(cfg: Config) -> Path:
    """runs/<name>/privacy: beside, not over, the outputs of `fedsplit run` / `train` of the same name."""
    return cfg.run_dir() / "privacy"
