"""Centralized training: optimiser details, the results contract, and resuming from a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from fedsplit.central import train_central
from fedsplit.cli import main
from fedsplit.config import load_config
from fedsplit.training import evaluate_client_model, lr_at, param_groups

TINY = ["data.identities=12", "data.eval_identities=4", "data.images_per_identity=4", "data.eval_pairs=20",
        "protection.upsample=1", "model.server_width=0.125", "model.client_width=0.25", "model.embedding=32",
        "model.client_embedding=32", "train.rounds=2", "train.clients_per_round=1", "train.batches_per_client=2",
        "train.batch_size=8", "train.warmup_rounds=1", "train.warmup_local_steps=2", "train.flip_tta=false"]


def test_weight_decay_skips_batchnorm_bias_and_scalars():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.PReLU(4), nn.Linear(4, 2))
    net.register_parameter("w", nn.Parameter(torch.zeros(())))
    decay, no_decay = param_groups([net], 5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(net[0].weight), id(net[3].weight)}
    assert len(no_decay["params"]) == 6  # conv bias, BN weight and bias, PReLU, linear bias, w


def test_schedules():
    assert lr_at(0, 100, 0.1, "cosine") == pytest.approx(0.1)
    assert lr_at(50, 100, 0.1, "cosine") == pytest.approx(0.05)
    assert lr_at(100, 100, 0.1, "cosine") == pytest.approx(0.0)
    assert lr_at(59, 100, 0.1, "step", [0.6, 0.85]) == pytest.approx(0.1)
    assert lr_at(60, 100, 0.1, "step", [0.6, 0.85]) == pytest.approx(0.01)
    assert lr_at(90, 100, 0.1, "step", [0.6, 0.85]) == pytest.approx(0.001)


def test_train_writes_the_results_contract(tmp_path, capsys):
    assert main(["train", "--set", f"output={tmp_path}", "--set", "name=tiny", *sum([["--set", s] for s in TINY], [])]) == 0
    results = json.loads((tmp_path / "tiny" / "results.json").read_text())
    for key in ("accuracy", "accuracy_std", "tar_at_far", "params", "macs", "wall_seconds", "torch_threads", "config", "epochs"):
        assert key in results, key
    assert 0.0 <= results["accuracy"] <= 1.0 and results["tar_at_far"] is None  # 10 negatives only
    assert results["params"]["client"] > 0 and results["macs"]["server"] > 0  # duetface uses its client model
    assert 0.0 <= results["client_model_accuracy"] <= 1.0
    assert [e["round"] for e in results["epochs"]] == [1, 2]
    assert results["server_steps"] == 2 * 1 * 2 and results["config"]["name"] == "tiny"
    assert (tmp_path / "tiny" / "report.md").read_text().startswith("# tiny: duetface")
    assert "round 2/2" in capsys.readouterr().out


class _Stop(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_same_result(tmp_path):
    cfg = load_config(None, [f"output={tmp_path}", "name=r", "protection.strategy=hf_only", *TINY])
    straight = train_central(cfg, fresh=True, log=lambda s: None)

    def stop_in_round_two(line: str) -> None:
        if "round 2/2" in line:
            raise _Stop

    with pytest.raises(_Stop):
        train_central(cfg, fresh=True, log=stop_in_round_two)
    lines = []
    resumed = train_central(cfg, log=lines.append)
    assert any("resumed" in line and "round 1/2" in line for line in lines)  # round 1 was saved, 2 redone
    assert [e["loss"] for e in resumed["epochs"]] == [e["loss"] for e in straight["epochs"]]
    assert resumed["accuracy"] == straight["accuracy"]


def test_a_checkpoint_of_another_config_is_not_silently_reused(tmp_path):
    cfg = load_config(None, [f"output={tmp_path}", "name=c", "protection.strategy=hf_only", *TINY])
    train_central(cfg, fresh=True, log=lambda s: None)
    other = load_config(None, [f"output={tmp_path}", "name=c", "protection.strategy=hf_only", *TINY, "train.lr=0.05"])
    with pytest.raises(ValueError, match="different config"):
        train_central(other, log=lambda s: None)


def test_a_saved_client_model_is_reused_only_where_it_fits(tmp_path):
    from fedsplit.training import CLIENT_MODEL, load_client_model

    # by_client: the server's batches do not share a stream with the warm-up, which the second run skips
    cfg = load_config(None, [f"output={tmp_path}", "name=warm", *TINY, "train.central_batches=by_client"])
    first = train_central(cfg, fresh=True, log=lambda s: None)
    saved = torch.load(tmp_path / "warm" / CLIENT_MODEL, weights_only=False)
    given = load_config(None, [f"output={tmp_path}", "name=given", *TINY, "train.central_batches=by_client",
                               f"train.client_model={tmp_path / 'warm'}"])
    second = train_central(given, fresh=True, log=lambda s: None)
    assert second["warmup_steps"] == 0 and second["warmup"] == []
    # the frozen client it used (and saved again) is the one it was given, weight for weight
    again = torch.load(tmp_path / "given" / CLIENT_MODEL, weights_only=False)
    assert all(torch.equal(saved["state"][k], again["state"][k]) for k in saved["state"])
    assert [e["loss"] for e in second["epochs"]] == [e["loss"] for e in first["epochs"]]

    wrong = load_config(None, [*TINY, "model.client_width=0.5"])
    with pytest.raises(ValueError, match=r"model\.client_width=0\.25"):
        load_client_model(tmp_path / "warm", wrong)
    with pytest.raises(ValueError, match="does not exist"):
        load_client_model(tmp_path / "nowhere", cfg)
    (tmp_path / "broken.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="broken.pt is not a saved client model"):
        load_client_model(tmp_path / "broken.pt", cfg)
    hf = load_config(None, [f"output={tmp_path}", "name=hf", *TINY, "protection.strategy=hf_only",
                            f"train.client_model={tmp_path / 'warm'}"])
    with pytest.raises(ValueError, match="hf_only has no client model"):
        train_central(hf, fresh=True, log=lambda s: None)


def test_by_client_warms_the_client_up_on_what_federated_clients_draw(tmp_path, monkeypatch):
    """With by_client batches the centralized warm-up sees each round's sampled clients' own batches,
    drawn as their ClientApps draw them (client_batch on the warm-up stream) and sampled as SeededFedAvg
    samples them; mixed warm-up batches cut across clients."""
    import random

    from fedsplit.batches import WARMUP_STREAM, client_batch, client_rng, sample_clients
    from fedsplit.data.splits import build_splits, client_shards
    from fedsplit.training import ClientWarmup

    seen: list[torch.Tensor] = []
    step = ClientWarmup.step
    monkeypatch.setattr(ClientWarmup, "step", lambda self, x, y: (seen.append(y.clone()), step(self, x, y))[1])
    sets = [f"output={tmp_path}", *TINY, "partition.clients=3", "train.clients_per_round=2", "train.warmup_rounds=2"]
    cfg = load_config(None, [*sets, "name=bc", "train.central_batches=by_client"])
    train_central(cfg, fresh=True, log=lambda s: None)

    splits = build_splits(cfg)
    shards = client_shards(splits, 3, "iid", 0.5, cfg.seed)
    offset = [0, shards[0].num_local_classes, shards[0].num_local_classes + shards[1].num_local_classes]
    picker, expected = random.Random(cfg.seed), []
    for rnd in (1, 2):
        for c in sorted(sample_clients(picker, [0, 1, 2], 2)):
            rng = client_rng(cfg.seed, rnd, c, WARMUP_STREAM)
            expected += [client_batch(splits, shards[c], 8, rng)[2] + offset[c] for _ in range(2)]
    assert len(seen) == len(expected) == 8
    assert all(torch.equal(a, b) for a, b in zip(seen, expected))

    seen.clear()
    train_central(load_config(None, [*sets, "name=mx"]), fresh=True, log=lambda s: None)
    owner = {int(lab): c for c, s in enumerate(shards) for lab in splits.train_classes[np.isin(splits.train, s.train)]}
    assert len(seen) == 8 and any(len({owner[int(lab)] for lab in y}) > 1 for y in seen)


def test_a_by_client_run_interrupted_in_its_warm_up_resumes_to_the_same_result(tmp_path):
    cfg = load_config(None, [f"output={tmp_path}", "name=w", *TINY, "partition.clients=3", "train.clients_per_round=2",
                             "train.warmup_rounds=2", "train.central_batches=by_client"])
    straight = train_central(cfg, fresh=True, log=lambda s: None)

    def stop_in_warm_up_two(line: str) -> None:
        if "warm-up 2/2" in line:
            raise _Stop

    with pytest.raises(_Stop):
        train_central(cfg, fresh=True, log=stop_in_warm_up_two)  # warm-up round 1 saved, round 2 lost
    lines: list[str] = []
    resumed = train_central(cfg, log=lines.append)
    assert any("resumed" in line and "warm-up step 4/8" in line for line in lines)
    assert [w["loss"] for w in resumed["warmup"]] == [w["loss"] for w in straight["warmup"]]
    assert [e["loss"] for e in resumed["epochs"]] == [e["loss"] for e in straight["epochs"]]


def test_the_client_model_is_judged_on_its_own_embeddings_of_the_paired_faces():
    from fedsplit.data.synthetic import SyntheticFaces
    from fedsplit.protection import ClientNet, make_strategy

    cfg = load_config(None, TINY)
    torch.manual_seed(0)
    client = ClientNet(cfg.protection, cfg.model).eval()
    images, _, landmarks = SyntheticFaces(3, 2, seed=0).batch(np.arange(6))
    strategy = make_strategy(cfg.protection, cfg.model)
    # a face against itself is at distance 0, against another face it is not: any model separates these,
    # so anything but 100% means pairs and embeddings were mismatched
    pairs = np.array([[i, i] for i in range(6)] * 2 + [[i, (i + 1) % 6] for i in range(6)] * 2)
    same = np.array([True] * 12 + [False] * 12)
    assert evaluate_client_model(strategy, client, images, landmarks, pairs, same, None).accuracy == 1.0


def test_without_a_warm_up_the_client_model_is_still_frozen(tmp_path):
    from fedsplit.training import CLIENT_MODEL

    cfg = load_config(None, [f"output={tmp_path}", "name=cold", *TINY, "train.warmup_rounds=0"])
    results = train_central(cfg, fresh=True, log=lambda s: None)
    assert results["warmup_steps"] == 0
    state = torch.load(tmp_path / "cold" / CLIENT_MODEL, weights_only=False)["state"]
    # BatchNorm statistics as initialised: no payload was made with the model in training mode
    assert int(state["norm.num_batches_tracked"]) == 0 and not state["norm.running_mean"].any()
