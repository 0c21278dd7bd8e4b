"""Protection strategies: payloads match their declared spec, and show what leaves a client."""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest
import torch

import fedsplit.protection as protection
from fedsplit.config import load_config
from fedsplit.data.synthetic import SyntheticFaces
from fedsplit.frequency import block_dct, dct_split
from fedsplit.protection import STRATEGIES, ClientNet, make_strategy
from fedsplit.training import flip_faces, freeze, to_tensors

UPSAMPLES = (1, 2)  # the spec logic is the same for 4 and 8, only slower


def _faces(n=4, seed=3):
    images, _, landmarks = SyntheticFaces(identities=n, images_per_identity=1, seed=seed).batch(np.arange(n))
    return images, landmarks


def _setup(strategy, upsample, **extra):
    sets = [f"protection.strategy={strategy}", f"protection.upsample={upsample}", "model.server_width=0.125",
            "model.client_width=0.25"] + [f"{k}={v}" for k, v in extra.items()]
    cfg = load_config(None, sets)
    s = make_strategy(cfg.protection, cfg.model)
    client = freeze(ClientNet(cfg.protection, cfg.model)) if s.uses_client_model else None
    return cfg, s, client


def test_every_module_in_the_package_is_a_registered_strategy():
    modules = {m.name for m in pkgutil.iter_modules(protection.__path__)} - {"base"}
    assert len(modules) == len(STRATEGIES) >= 4
    assert {"rgb", "fd_all", "hf_only", "duetface"} <= set(STRATEGIES)
    for name in modules:
        assert importlib.import_module(f"fedsplit.protection.{name}")


@pytest.mark.parametrize("upsample", UPSAMPLES)
@pytest.mark.parametrize("strategy,mask_source", [("rgb", "paper"), ("fd_all", "paper"), ("hf_only", "paper"),
                                                   ("duetface", "paper"), ("duetface", "feature_maps")])
def test_payload_matches_spec_and_feeds_the_server(strategy, mask_source, upsample):
    cfg, s, client = _setup(strategy, upsample, **{"protection.mask_source": mask_source})
    x, lm = to_tensors(*_faces())
    payload = s.encode(x, lm, client)
    assert s.check(payload) == 4
    spec = s.spec()
    assert set(payload) == set(spec)
    assert sum(t.numel() * t.element_size() for t in payload.values()) == 4 * s.payload_bytes_per_sample()
    net = s.server_net(client.map_channels if client else ())
    net.eval()
    emb = net(payload)
    assert emb.shape == (4, cfg.model.embedding) and torch.isfinite(emb).all()


def test_payload_sizes_follow_the_strategy():
    sizes = {}
    for name in ("rgb", "fd_all", "hf_only", "duetface"):
        _, s, _ = _setup(name, 8)
        sizes[name] = s.payload_bytes_per_sample()
    assert sizes["rgb"] == 112 * 112 * 3  # the raw face, as bytes
    assert sizes["fd_all"] == 192 * 112 * 112 * 4
    assert sizes["hf_only"] == 162 * 112 * 112 * 4
    # duetface adds one float mask per server stage (56, 28, 14, 7) at upsample 8
    assert sizes["duetface"] - sizes["hf_only"] == (56**2 + 28**2 + 14**2 + 7**2) * 4
    _, fm, _ = _setup("duetface", 8, **{"protection.mask_source": "feature_maps", "model.client_width": 1.0})
    ratio = (fm.payload_bytes_per_sample() - sizes["hf_only"]) / (sizes["duetface"] - sizes["hf_only"])
    assert ratio > 20, f"official feature-map variant sends only {ratio:.1f}x the paper's mask bytes"


@pytest.mark.parametrize("strategy", ["hf_only", "duetface"])
def test_no_pixels_and_no_client_plane_leave_the_client(strategy):
    """Every payload tensor is the server half of the split or a mask; none matches a pixel or a client plane."""
    _, s, client = _setup(strategy, 2)
    images, landmarks = _faces()
    x, lm = to_tensors(images, landmarks)
    payload = s.encode(x, lm, client)
    client_planes, server_planes = dct_split(x, s.client_channels, s.upsample)
    assert torch.equal(payload["server_channels"], server_planes)
    forbidden = [p for p in client_planes.flatten(0, 1)] + [c for c in x.flatten(0, 1)]
    for key, t in payload.items():
        if key.startswith("mask_"):
            assert t.shape[1] == 1 and t.min() >= 0 and t.max() <= 1
        for plane in t.flatten(0, 1):
            for bad in forbidden:
                if plane.shape == bad.shape:
                    assert not torch.allclose(plane, bad, atol=1e-3), f"{key} carries a client plane or pixels"
    # The client's planes hold the visible face: its DC plane is a thumbnail, and no payload plane is.
    dc = block_dct(x, s.upsample)[:, 0, 0]
    for plane in payload["server_channels"].flatten(0, 1):
        assert abs(np.corrcoef(plane.flatten(), dc[0].flatten())[0, 1]) < 0.9


def test_check_names_what_is_wrong():
    _, s, client = _setup("duetface", 1)
    x, lm = to_tensors(*_faces())
    good = s.encode(x, lm, client)
    with pytest.raises(ValueError, match="mask_2"):
        s.check({k: v for k, v in good.items() if k != "mask_2"})
    with pytest.raises(ValueError, match="client_channels"):
        s.check({**good, "client_channels": x})
    with pytest.raises(ValueError, match="server_channels.*shape|server_channels"):
        s.check({**good, "server_channels": good["server_channels"][:, :5]})
    nan = good["mask_0"].clone()
    nan[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="mask_0.*NaN"):
        s.check({**good, "mask_0": nan})
    with pytest.raises(ValueError, match="batch"):
        s.check({**good, "mask_1": good["mask_1"][:2]})


def test_duetface_needs_the_client_model():
    _, s, _ = _setup("duetface", 1)
    x, lm = to_tensors(*_faces())
    with pytest.raises(ValueError, match="client model"):
        s.encode(x, lm, None)


def test_flip_is_done_in_pixels_because_it_is_not_a_plane_flip():
    # Mirroring the image is not mirroring (or permuting) the DCT planes: odd horizontal frequencies
    # change sign inside each block, and blocks move. TTA must therefore flip pixels, then transform.
    images, landmarks = _faces(2)
    x, _ = to_tensors(images, landmarks)
    xf, _ = to_tensors(*flip_faces(images, landmarks))
    planes, planes_of_flip = block_dct(x, 2), block_dct(xf, 2)
    assert not torch.allclose(planes.flip(-1), planes_of_flip, atol=1.0)
    # and flip_faces mirrors landmarks with the pixels (x -> 111 - x)
    _, lm2 = flip_faces(images, landmarks)
    np.testing.assert_allclose(lm2[..., 0], 111 - landmarks[..., 0])


def test_server_steps_never_touch_the_frozen_client():
    from fedsplit.training import ServerTrainer

    cfg, s, client = _setup("duetface", 1)
    before = {k: v.clone() for k, v in client.state_dict().items()}
    trainer = ServerTrainer(s, cfg, num_classes=4, client_map_channels=client.map_channels)
    x, lm = to_tensors(*_faces())
    for _ in range(2):
        trainer.step(s.encode(x, lm, client), torch.arange(4))
    assert all(torch.equal(before[k], v) for k, v in client.state_dict().items())
    assert all(p.grad is None for p in client.parameters())
    weights = [b.weight for b in trainer.net.backbone.interactive_blocks]
    assert all(w.item() != 0.0 for w in weights), "the interactive weights did not learn"
