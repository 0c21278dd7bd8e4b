"""Identification metrics on hand-made embeddings, and a recogniser calibrated on clean and noise faces."""

import numpy as np
import pytest
import torch

from fedsplit.data.synthetic import SyntheticFaces
from fedsplit.data.types import images_to_tensor
from fedsplit.privacy.identify import chance_level, embed, identification_top1, pair_verification, train_recogniser


def test_one_hot_embeddings_identify_exactly():
    labels = np.array([10, 11, 12, 13, 14])
    emb = np.eye(5)
    assert identification_top1(emb, labels, emb, labels) == 1.0
    assert identification_top1(emb, labels, emb, np.roll(labels, 1)) == 0.0  # every nearest entry is mislabelled
    assert identification_top1(emb[[0, 1, 2, 4]], labels[[0, 1, 2, 3]], emb, labels) == 0.75
    assert chance_level(labels) == pytest.approx(0.2)
    assert chance_level(np.array([1, 1, 2, 2])) == pytest.approx(0.5)


def test_cosine_not_euclidean_decides_the_nearest_entry():
    gallery = np.array([[1.0, 0.0], [10.0, 10.0]])  # the long one is farther in L2 but at 45 degrees
    probe = np.array([[1.0, 1.2]])
    assert identification_top1(probe, [1], gallery, [0, 1]) == 1.0


def test_exclude_self_asks_for_another_photo():
    # Identity 0: images a0, a1; identity 1: image b0. Each probe is nearest its own image, then the other person.
    gallery = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    labels, ids = np.array([0, 0, 1]), np.array([100, 101, 102])
    probes = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.1], [0.0, 0.0, 1.0]])
    assert identification_top1(probes, labels, gallery, labels) == 1.0
    # a0 -> b0 (wrong), a1 -> b0 (wrong); b0 has no other photo and is not counted.
    other = dict(exclude_self=True, probe_ids=ids, gallery_ids=ids)
    assert identification_top1(probes, labels, gallery, labels, **other) == 0.0
    probes[0] = [0.2, 1.0, 0.0]  # now a0's best other photo is a1
    assert identification_top1(probes, labels, gallery, labels, **other) == 0.5
    with pytest.raises(ValueError, match="probe_ids and gallery_ids"):
        identification_top1(probes, labels, gallery, labels, exclude_self=True)
    with pytest.raises(ValueError, match="labels do not match"):
        identification_top1(probes, labels[:2], gallery, labels)


def test_pair_verification_separates_identities_only_when_embeddings_do():
    labels = np.repeat(np.arange(6), 4)
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:6]
    clean = centres[labels] + 0.05 * rng.standard_normal((24, 8))
    assert pair_verification(clean, clean, labels) == 1.0
    noise = rng.standard_normal((24, 8))
    assert 0.25 < pair_verification(noise, clean, labels) < 0.75
    with pytest.raises(ValueError, match="positive and negative"):
        pair_verification(clean[:4], clean[:4], labels[:4])


@pytest.fixture(scope="module")
def calibration():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    data = SyntheticFaces(identities=16, images_per_identity=4, seed=11)
    images, labels, _ = data.batch(np.arange(len(data)))
    aux = labels < 10  # the attacker's public identities; the other 6 are victims
    logs = []
    rec = train_recogniser(images[aux], labels[aux], steps=20, batch_size=16, lr=0.1, seed=0, width=0.125,
                           input_size=28, embedding=32, log_every=10, log=logs.append)
    victims, victim_labels = images_to_tensor(images[~aux]), labels[~aux]
    noise = torch.rand(victims.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return rec, logs, embed(rec, victims), embed(rec, noise), victim_labels, np.flatnonzero(~aux)


def test_recogniser_logs_and_embeds_unit_vectors(calibration):
    rec, logs, clean, _, _, _ = calibration
    assert len(logs) == 2 and logs[-1].startswith("recogniser step 20/20")
    assert rec.classes == 10 and clean.shape == (24, 32)
    assert torch.allclose(clean.norm(dim=1), torch.ones(24), atol=1e-5)
    with pytest.raises(ValueError, match="images must be"):
        embed(rec, torch.zeros(2, 3, 56, 56))


def test_clean_probes_identify_and_noise_stays_near_chance(calibration):
    _, _, clean, noise, labels, ids = calibration
    assert identification_top1(clean, labels, clean, labels) == 1.0  # own image in the gallery
    chance = chance_level(labels)
    assert identification_top1(noise, labels, clean, labels) < 3 * chance
    other = identification_top1(clean, labels, clean, labels, exclude_self=True, probe_ids=ids, gallery_ids=ids)
    assert other > 2 * chance  # measured 0.71 (chance 0.17): another photo of the victim is found too
    assert pair_verification(clean, clean, labels) > pair_verification(noise, clean, labels) + 0.1
