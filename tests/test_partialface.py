"""PartialFace: one secret rank of high-frequency planes per face, nothing else leaves the client."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedsplit.config import ConfigError, load_config
from fedsplit.data.synthetic import SyntheticFaces
from fedsplit.frequency import dct_split
from fedsplit.protection import make_strategy
from fedsplit.training import ServerTrainer, flip_faces, to_tensors

SMALL = ["model.server_width=0.125", "model.embedding=32", "train.batch_size=8"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _setup(*sets: str):
    cfg = load_config(None, ["protection.strategy=partialface", *SMALL, *sets])
    return cfg, make_strategy(cfg.protection, cfg.model)


def _faces(n: int = 8, seed: int = 3):
    images, _, landmarks = SyntheticFaces(identities=n, images_per_identity=1, seed=seed).batch(np.arange(n))
    return images, landmarks


def _frequencies_sent(s, x: torch.Tensor, planes: torch.Tensor) -> list[tuple[int, ...]]:
    """Per sample, the frequency k each sent Y plane is (found by matching against the image's own planes)."""
    _, server = dct_split(x, s.client_channels, s.upsample)
    server = server.view(len(x), 3, -1, s.size, s.size)
    sent = planes.view(len(x), 3, s.rank_channels, s.size, s.size)
    out = []
    for i in range(len(x)):
        ks = []
        for j in range(s.rank_channels):
            hits = [n for n in range(server.shape[2]) if torch.allclose(sent[i, :, j], server[i, :, n], atol=1e-4)]
            assert len(hits) == 1, f"sample {i} plane {j} is not exactly one server plane (matches {hits})"
            ks.append(s.server_channels[hits[0]])
        out.append(tuple(ks))
    return out


@pytest.mark.parametrize("upsample", [1, 2])
def test_payload_matches_spec_and_is_a_rank_of_hf_only(upsample):
    cfg, s = _setup(f"protection.upsample={upsample}")
    x, lm = to_tensors(*_faces())
    payload = s.encode(x, lm, None)
    assert s.check(payload) == 8 and set(payload) == set(s.spec())
    assert {k: (tuple(v.shape[1:]), v.dtype) for k, v in payload.items()} == \
        {k: (f.shape, f.dtype) for k, f in s.spec().items()}
    hf = make_strategy(load_config(None, ["protection.strategy=hf_only", f"protection.upsample={upsample}"]).protection,
                       cfg.model)
    # 9 of the 54 server channels per colour: a sixth of hf_only's bytes, and no rank or order index travels.
    assert s.payload_bytes_per_sample() * 6 == hf.payload_bytes_per_sample()
    assert s.payload_bytes_per_sample() == 27 * (14 * upsample) ** 2 * 4
    assert sum(t.numel() * t.element_size() for t in payload.values()) == 8 * s.payload_bytes_per_sample()


def test_only_server_planes_of_the_same_image_leave_and_no_client_plane_or_pixel():
    _, s = _setup("protection.upsample=2")
    x, lm = to_tensors(*_faces(4))
    planes = s.encode(x, lm, None)["rank_channels"]
    client, _ = dct_split(x, s.client_channels, s.upsample)
    sent = _frequencies_sent(s, x, planes)  # asserts every plane is one of this image's server planes
    ranks = {tuple(sorted(r)) for r in s.ranks.tolist()}
    for i, ks in enumerate(sent):
        assert tuple(sorted(ks)) in ranks and not set(ks) & set(s.client_channels)
        for plane in planes[i]:
            assert not any(torch.allclose(plane, c, atol=1e-3) for c in client[i])
    # Same number of values as a pixel grid only at upsample 8: check no sent plane is a colour channel there.
    _, s8 = _setup("protection.upsample=8")
    big = s8.encode(x[:1], lm[:1], None)["rank_channels"][0]
    assert not any(torch.allclose(p, c, atol=1e-3) for p in big for c in x[0])


def test_draws_differ_between_samples_and_repeat_with_the_key():
    _, s = _setup()
    x, lm = to_tensors(*_faces(16))
    rank, order = s.choose(x)
    assert len(set(rank.tolist())) > 1 and len(set(order.tolist())) > 1
    first = s.encode(x, lm, None)["rank_channels"]
    _, again = _setup()  # a fresh strategy, as every Flower message builds
    assert torch.equal(first, again.encode(x, lm, None)["rank_channels"])
    _, other = _setup("protection.partialface_key=1")
    assert not torch.equal(first, other.encode(x, lm, None)["rank_channels"])
    assert not np.array_equal(s.ranks, other.ranks)


def test_a_face_is_only_ever_sent_as_r_of_the_ranks_even_mirrored():
    _, s = _setup()
    images, landmarks = _faces(12)
    seen = set()
    for start in range(8):  # the first face in many different batches, then mirrored
        batch = (images[[0, *range(start + 1, start + 5)]], landmarks[[0, *range(start + 1, start + 5)]])
        for imgs, lms in (batch, flip_faces(*batch)):
            x, _ = to_tensors(imgs, lms)
            seen.add(int(s.choose(x)[0][0]))
    assert 1 < len(seen) <= 3
    assert seen <= set(s.allowed_ranks(to_tensors(images[:1], landmarks[:1])[0])[0].tolist())


def test_check_rejects_wrong_shapes():
    _, s = _setup()
    x, lm = to_tensors(*_faces(2))
    good = s.encode(x, lm, None)["rank_channels"]
    with pytest.raises(ValueError, match="rank_channels"):
        s.check({"rank_channels": good[:, :9]})
    with pytest.raises(ValueError, match="rank_channels"):
        s.check({"rank_channels": good.double()})
    with pytest.raises(ValueError, match="server_channels"):
        s.check({"rank_channels": good, "server_channels": good})


@pytest.mark.parametrize("overrides,named", [
    (["protection.partialface_ranks=0"], "protection.partialface_ranks"),
    (["protection.partialface_rank_channels=10"], "protection.partialface_rank_channels"),  # 6 x 10 > 54
    (["protection.partialface_ranks_per_image=7"], "protection.partialface_ranks_per_image"),  # > 6 ranks
    (["protection.partialface_rank_channels=3", "protection.partialface_permutations=7"],
     "protection.partialface_permutations"),  # 3 channels have 3! = 6 orders
    (["protection.partialface_key=-1"], "protection.partialface_key"),
    (["protection.partialface_ranks=one"], "protection.partialface_ranks"),
])
def test_bad_values_name_the_key(overrides, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(None, ["protection.strategy=partialface", *overrides])


def test_rank_size_is_only_bounded_when_partialface_is_the_strategy():
    cfg = load_config(None, ["protection.strategy=hf_only", "protection.client_channels=[0,1,2,3,4,5,6,7,8,9,10]"])
    assert cfg.protection.partialface_rank_channels == 9  # 6 x 9 > 53 would not fit, but hf_only ignores it
    with pytest.raises(ConfigError, match=r"protection\.partialface_rank_channels"):
        load_config(None, ["protection.strategy=partialface", "protection.client_channels=[0,1,2,3,4,5,6,7,8,9,10]"])


def test_a_server_step_on_partialface_payloads_is_finite():
    cfg, s = _setup()
    trainer = ServerTrainer(s, cfg, num_classes=8)
    x, lm = to_tensors(*_faces())
    losses = [trainer.step(s.encode(x, lm, None), torch.arange(8)) for _ in range(2)]
    assert all(np.isfinite(losses)) and trainer.steps == 2
    emb = trainer.embed(s.encode(x, lm, None))
    assert emb.shape == (8, 32) and torch.isfinite(emb).all()
