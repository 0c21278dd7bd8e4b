"""`fedsplit privacy` end to end on a tiny synthetic config: the contract of privacy.json and the calibration."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fedsplit.config import load_config
from fedsplit.privacy.suite import mean_psnr, output_dir, run_privacy

TINY = ["data.identities=24", "data.eval_identities=6", "data.images_per_identity=6", "data.eval_pairs=40",
        "partition.clients=2", "train.clients_per_round=2", "model.client_width=0.25", "privacy.victims=24",
        "privacy.aux_faces=60", "privacy.recogniser_steps=15", "privacy.learned_steps=4",
        "privacy.client_warmup_steps=4", "privacy.strategies=[rgb, fd_all, hf_only, duetface, partialface]",
        "protection.noise_sigma=[0, 40]"]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    cfg = load_config(None, [*TINY, "name=p", f"output={tmp_path_factory.mktemp('privacy')}"])
    return cfg, run_privacy(cfg, log=lambda s: None)


def _rows(results, **match):
    return [r for r in results["rows"] if all(r.get(k) == v for k, v in match.items())]


def test_every_row_has_the_contract_keys(result):
    cfg, results = result
    saved = json.loads((output_dir(cfg) / "privacy.json").read_text())
    assert len(saved["rows"]) == len(results["rows"]) > 0
    for r in saved["rows"]:
        assert {"strategy", "upsample", "attack", "psnr", "ssim", "identification_top1", "chance"} <= set(r)
    attacks = {(r["strategy"], r["attack"]) for r in results["rows"] if r["client"] is None}
    assert {("none", "clean"), ("none", "noise"), ("rgb", "look")} <= attacks
    for s in ("fd_all", "hf_only", "duetface", "partialface"):
        assert {(s, "look"), (s, "analytic"), (s, "learned")} <= attacks, s
    assert ("duetface", "masks") in attacks and ("hf_only", "masks") not in attacks


def test_calibration_rows_land_where_they_must(result):
    _, results = result
    clean = _rows(results, attack="clean", client=None)[0]
    noise = _rows(results, attack="noise", client=None)[0]
    assert clean["identification_top1"] == 1.0 and clean["psnr"] == float("inf") and clean["ssim"] == 1.0
    assert noise["identification_top1"] < 3 * noise["chance"]
    assert noise["psnr"] < 10


def test_analytic_attack_is_exact_on_fd_all_for_the_clean_client(result):
    _, results = result
    clean_client = _rows(results, strategy="fd_all", attack="analytic", noise_sigma=0.0)[0]
    noisy_client = _rows(results, strategy="fd_all", attack="analytic", noise_sigma=40.0)[0]
    assert clean_client["psnr"] > 40
    assert noisy_client["psnr"] < clean_client["psnr"] - 15  # the client's noise is what protects it


def test_results_are_broken_down_per_client(result):
    _, results = result
    per_client = _rows(results, strategy="hf_only", attack="look")
    assert sorted((r["client"], r["noise_sigma"]) for r in per_client if r["client"] is not None) == [(0, 0.0), (1, 40.0)]
    total = _rows(results, strategy="hf_only", attack="look", client=None)[0]
    assert sum(r["victims"] for r in per_client if r["client"] is not None) == total["victims"]


def test_grids_and_report_are_written(result):
    cfg, results = result
    for name in ("rgb", "fd_all_up1", "duetface_up1", "partialface_up1"):
        image = cv2.imread(str(output_dir(cfg) / results["grids"][name]))
        assert image is not None and image.shape[0] > 112
    report = (output_dir(cfg) / "report.md").read_text()
    assert "| strategy | upsample | attack |" in report and "grid_duetface_up1.png" in report


def test_mean_psnr_caps_exact_copies():
    assert mean_psnr(np.array([np.inf, 20.0])) == pytest.approx(60.0)
    assert mean_psnr(np.array([np.inf, np.inf])) == float("inf")


def test_partialface_oracle_names_the_channels_each_face_sent():
    import torch

    from fedsplit.data.splits import build_splits
    from fedsplit.frequency import dct_split
    from fedsplit.privacy.suite import _encode, _planes_and_channels
    from fedsplit.protection import make_strategy

    cfg = load_config(None, [*TINY, "protection.strategy=partialface", "protection.upsample=1"])
    splits = build_splits(cfg)
    faces = splits.train[:100]  # more than one encoding batch
    assert len(faces) == 100
    strategy = make_strategy(cfg.protection, cfg.model)
    payload = _encode(strategy, None, splits, faces, np.zeros(len(faces)), 0)
    images = torch.from_numpy(splits.images[faces]).permute(0, 3, 1, 2).float() / 127.5 - 1
    groups = _planes_and_channels(strategy, payload, images)
    assert sum(len(rows) for rows, _, _ in groups) == len(faces)
    for rows, planes, channels in groups:
        expected = dct_split(images[rows], tuple(k for k in range(64) if k not in channels), 1)[1]
        assert torch.allclose(planes, expected, atol=1e-3), channels


def test_duetface_planes_are_attacked_once_and_its_masks_on_their_own(result):
    _, results = result
    for attack in ("look", "analytic", "learned"):
        hf = _rows(results, strategy="hf_only", attack=attack)
        duet = _rows(results, strategy="duetface", attack=attack)
        keys = ("client", "psnr", "ssim", "identification_top1")
        assert [tuple(r[k] for k in keys) for r in hf] == [tuple(r[k] for k in keys) for r in duet], attack
    masks = _rows(results, strategy="duetface", attack="masks", client=None)[0]
    learned = _rows(results, strategy="duetface", attack="learned", client=None)[0]
    assert masks["psnr"] != learned["psnr"]


def test_learned_attack_at_upsample_8_starts_from_the_analytic_estimate():
    import dataclasses

    import torch

    from fedsplit.data.splits import build_splits
    from fedsplit.privacy.analytic import analytic_inversion
    from fedsplit.privacy.suite import _encode, _learned_inputs
    from fedsplit.protection import make_strategy

    cfg = load_config(None, TINY)
    splits = build_splits(cfg)
    faces = splits.train[:3]
    strategy = make_strategy(dataclasses.replace(cfg.protection, strategy="hf_only", upsample=8), cfg.model)
    payload = _encode(strategy, None, splits, faces, np.zeros(len(faces)), 0)
    prior = torch.zeros(3, 112, 112)
    x, extra = _learned_inputs(strategy, payload, ["server_channels"], 8, prior)
    assert extra is None and x.shape == (3, 3, 112, 112)  # a face per sample, not 162 planes of 112x112
    expected = analytic_inversion(payload["server_channels"], strategy.server_channels, 8, prior=prior)
    assert torch.allclose(x, expected, atol=1e-5)


def test_each_clients_accuracy_in_its_run_joins_its_protection(tmp_path):
    from fedsplit.federated import run_federated

    sets = [*TINY, "name=joined", f"output={tmp_path}", "protection.strategy=hf_only", "train.rounds=1",
            "train.batches_per_client=1", "train.batch_size=8", "model.server_width=0.125",
            "simulation.round_timeout=120"]
    cfg = load_config(None, [*sets, "privacy.strategies=[hf_only]", "privacy.attacks=[look, learned]"])
    assert run_privacy(cfg, log=lambda s: None)["client_costs"] is None  # no run of this config yet
    run = run_federated(load_config(None, sets), log=lambda s: None)
    results = run_privacy(cfg, log=lambda s: None)
    costs = results["client_costs"]
    assert [(c["client"], c["noise_sigma"]) for c in costs] == [(0, 0.0), (1, 40.0)]
    for c, acc in zip(costs, run["client_accuracy"]):
        assert (c["accuracy"], c["pairs"]) == (acc["accuracy"], acc["pairs"])
        mine = _rows(results, strategy="hf_only", client=c["client"])
        if mine:
            assert c["identification_top1"] == max(r["identification_top1"] for r in mine)
            assert c["strongest_attack"] in {r["attack"] for r in mine if r["identification_top1"] == c["identification_top1"]}
    assert sum(c["victims"] for c in costs) == cfg.privacy.victims  # every victim is some client's
    assert "What each client's setting cost" in (output_dir(cfg) / "report.md").read_text()
    # a run of another config says nothing about this one
    other = load_config(None, [*sets, "privacy.strategies=[hf_only]", "privacy.attacks=[look]", "train.lr=0.05"])
    assert run_privacy(other, log=lambda s: None)["client_costs"] is None
