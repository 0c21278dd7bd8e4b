"""Per-client payload noise: what it perturbs, by how much, and how bad settings are named."""

from __future__ import annotations

import pytest
import torch

from fedsplit.config import ConfigError, load_config
from fedsplit.data.synthetic import SyntheticFaces
from fedsplit.protection import ClientNet, make_strategy
from fedsplit.protection.base import add_noise
from fedsplit.training import to_tensors


def _faces(n: int = 6):
    images, _, landmarks = SyntheticFaces(n, 1, seed=3).batch(list(range(n)))
    return to_tensors(images, landmarks)


def _strategy(name: str, *sets: str):
    cfg = load_config(None, [f"protection.strategy={name}", "protection.upsample=1", "model.client_width=0.25", *sets])
    return cfg, make_strategy(cfg.protection, cfg.model)


def test_noise_has_the_per_sample_sigma_and_spares_the_masks():
    cfg, strategy = _strategy("duetface")
    x, lm = _faces()
    torch.manual_seed(0)
    client = ClientNet(cfg.protection, cfg.model).eval()
    clean = strategy.encode(x, lm, client)
    sigma = torch.tensor([0.0, 0.0, 5.0, 5.0, 20.0, 20.0])
    noisy = add_noise(strategy, clean, sigma, torch.Generator().manual_seed(1))
    diff = (noisy["server_channels"] - clean["server_channels"]).flatten(1)
    assert torch.equal(diff[:2], torch.zeros_like(diff[:2]))  # sigma 0: untouched
    measured = diff[2:].std(dim=1)
    assert torch.allclose(measured, sigma[2:], rtol=0.05), measured
    for i in range(4):
        assert torch.equal(noisy[f"mask_{i}"], clean[f"mask_{i}"])
    again = add_noise(strategy, clean, sigma, torch.Generator().manual_seed(1))
    assert torch.equal(again["server_channels"], noisy["server_channels"])  # seeded


def test_noise_on_images_stays_a_valid_uint8_image():
    _, strategy = _strategy("rgb")
    x, lm = _faces()
    clean = strategy.encode(x, lm, None)
    noisy = add_noise(strategy, clean, 30.0, torch.Generator().manual_seed(0))
    assert noisy["image"].dtype == torch.uint8
    spread = (noisy["image"].float() - clean["image"].float()).std().item()
    assert 20 < spread < 32  # clipping at 0 and 255 trims a little of the 30


@pytest.mark.parametrize("sigma", [-1.0, float("nan")])
def test_bad_sigma_is_refused(sigma):
    _, strategy = _strategy("hf_only")
    x, lm = _faces(2)
    with pytest.raises(ValueError, match="noise sigma"):
        add_noise(strategy, strategy.encode(x, lm, None), torch.tensor([sigma, 1.0]))


def test_client_noise_settings():
    cfg = load_config(None, ["protection.noise_sigma=[0, 1, 2, 3, 4, 5, 6, 7]"])
    assert [cfg.protection.client_noise(c) for c in range(8)] == list(range(8))
    assert load_config(None, ["protection.noise_sigma=[2.5]"]).protection.client_noise(5) == 2.5
    assert load_config(None).protection.client_noise(3) == 0.0


@pytest.mark.parametrize("override, named", [
    ("protection.noise_sigma=[1, 2]", "protection.noise_sigma"),
    ("protection.noise_sigma=[-1]", "protection.noise_sigma"),
    ("privacy.strategies=[blur]", "privacy.strategies"),
    ("privacy.attacks=[guess]", "privacy.attacks"),
    ("privacy.upsample=[3]", "privacy.upsample"),
    ("privacy.victims=0", "privacy.victims"),
])
def test_bad_noise_or_privacy_settings_are_named(override, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(None, [override])


def test_centralized_training_refuses_client_noise(tmp_path):
    from fedsplit.central import train_central

    with pytest.raises(ValueError, match="protection.noise_sigma"):
        train_central(load_config(None, ["protection.noise_sigma=[1]", f"output={tmp_path}"]), log=lambda s: None)
    assert not (tmp_path / "default").exists()  # refused before any work
