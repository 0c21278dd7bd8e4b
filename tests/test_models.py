"""Client/server networks, interactive blocks, margin heads and the cost counters."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fedsplit.models import (
    ArcFace,
    CosFace,
    InteractiveBlock,
    IResNet,
    MobileFaceNet,
    build_client,
    build_server,
    client_masks,
    count_macs,
    count_params,
    make_head,
    normalise_per_sample,
)

SIZES = (14, 28, 56, 112)
CLIENT_CH = 30
SERVER_CH = 162


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _roi(batch: int, side: int) -> torch.Tensor:
    """A centred square ROI in [0, 1]."""
    roi = torch.zeros(batch, 1, side, side)
    q = side // 4
    roi[:, :, q : side - q, q : side - q] = 1.0
    return roi


# --- shapes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_shapes_and_map_sizes_match_server(size: int) -> None:
    torch.manual_seed(0)
    client = MobileFaceNet(CLIENT_CH, input_size=size, width=0.25, embedding=32)
    server = IResNet(18, SERVER_CH, input_size=size, width=0.25, embedding=64)
    client.eval()
    server.eval()
    emb, maps = client.forward_maps(torch.randn(2, CLIENT_CH, size, size))
    assert emb.shape == (2, 32)
    assert len(maps) == 4
    assert tuple(m.shape[-1] for m in maps) == server.stage_sizes
    assert tuple(m.shape[1] for m in maps) == client.map_channels
    assert server.stage_sizes[-1] == 7
    assert list(server.stage_sizes) == sorted(server.stage_sizes, reverse=True)
    assert server(torch.randn(2, SERVER_CH, size, size)).shape == (2, 64)
    assert client(torch.randn(2, CLIENT_CH, size, size)).shape == (2, 32)


def test_stage_sizes_at_112_halve_to_7() -> None:
    assert IResNet(18, 3, input_size=112, width=0.125).stage_sizes == (56, 28, 14, 7)
    assert IResNet(18, 3, input_size=28, width=0.125).stage_sizes == (28, 28, 14, 7)


@pytest.mark.parametrize("bad", [7, 32, 100, 224])
def test_bad_input_size_raises(bad: int) -> None:
    with pytest.raises(ValueError):
        MobileFaceNet(CLIENT_CH, input_size=bad)
    with pytest.raises(ValueError):
        IResNet(18, SERVER_CH, input_size=bad)


def test_wrong_input_resolution_raises() -> None:
    server = IResNet(18, 4, input_size=28, width=0.125)
    with pytest.raises(ValueError):
        server(torch.randn(2, 4, 14, 14))


def test_builders_reject_bad_names() -> None:
    with pytest.raises(ValueError, match="ir101"):
        build_server("ir101", 4, 14, 0.125, 16)
    with pytest.raises(ValueError, match="resnet"):
        build_client("resnet", 4, 14, 0.125, 16)
    assert build_server("ir34", 4, 14, 0.125, 16).depth == 34
    assert isinstance(build_client("mobilefacenet", 4, 14, 0.25, 16), MobileFaceNet)


def test_masks_need_interactive_server() -> None:
    server = IResNet(18, 4, input_size=14, width=0.125)
    masks = [torch.rand(1, 1, s, s) for s in server.stage_sizes]
    with pytest.raises(ValueError):
        server(torch.randn(1, 4, 14, 14), masks)
    with pytest.raises(ValueError):
        IResNet(18, 4, input_size=14, width=0.125, mask_channels=(8, 8, 8, 8))


# --- cost -----------------------------------------------------------------------------------------


def test_ir18_and_mobilefacenet_cost() -> None:
    server = IResNet(18, SERVER_CH, input_size=112, width=1.0)
    params = count_params(server)
    macs = count_macs(server, torch.randn(2, SERVER_CH, 112, 112))
    print(f"IR-18 162ch@112: {params / 1e6:.3f}M params, {macs / 1e9:.3f} GMACs")
    assert abs(params - 24.1e6) / 24.1e6 < 0.01
    assert abs(macs - 3.75e9) / 3.75e9 < 0.03
    assert server.training  # count_macs restores the mode

    client = MobileFaceNet(CLIENT_CH, input_size=112, width=1.0)
    client_params = count_params(client)
    print(f"MobileFaceNet 30ch@112: {client_params / 1e6:.3f}M params")
    assert 0.8e6 <= client_params <= 1.3e6


def test_count_macs_is_per_image() -> None:
    server = IResNet(18, 4, input_size=14, width=0.125, embedding=16)
    one = count_macs(server, torch.randn(1, 4, 14, 14))
    assert one > 0
    assert count_macs(server, torch.randn(4, 4, 14, 14)) == one


def test_count_macs_takes_nested_masks() -> None:
    client = MobileFaceNet(4, input_size=14, width=0.25, embedding=16)
    plain = IResNet(18, 4, input_size=14, width=0.125, embedding=16, interactive=True)
    projecting = IResNet(18, 4, input_size=14, width=0.125, embedding=16, interactive=True,
                         mask_channels=client.map_channels)
    x = torch.randn(3, 4, 14, 14)
    maps = client.forward_maps(x)[1]
    pairs = [(m.detach(), _roi(3, 112)) for m in maps]
    base = count_macs(plain, x)
    # The 1x1 projections are the only extra matmul work of the feature_maps variant.
    extra = sum(
        cm * cs * m.shape[-1] ** 2 for cm, cs, m in zip(client.map_channels, projecting.stage_channels, maps, strict=True)
    )
    assert count_macs(projecting, x, pairs) == base + extra
    assert count_macs(projecting, x, masks=pairs) == base + extra


# --- masks and interactive blocks -----------------------------------------------------------------


def test_normalise_per_sample() -> None:
    x = torch.stack([torch.full((1, 4, 4), 3.0), torch.arange(16.0).view(1, 4, 4)])
    out = normalise_per_sample(x)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0], torch.zeros(1, 4, 4))
    assert out[1].min() == 0.0 and out[1].max() == 1.0


def test_client_masks_range_and_degenerate_inputs() -> None:
    torch.manual_seed(0)
    sizes = (28, 28, 14, 7)
    maps = [torch.randn(3, 8, s, s) for s in (28, 14, 14, 7)]  # one map needs a resize
    masks = client_masks(maps, _roi(3, 112), sizes)
    for mask, s in zip(masks, sizes, strict=True):
        assert mask.shape == (3, 1, s, s)
        assert mask.min() >= 0.0 and mask.max() <= 1.0
        assert torch.allclose(mask.flatten(1).amax(1), torch.ones(3))
        assert (mask[:, :, 0, 0] == 0).all()  # outside the ROI
    constant = client_masks([torch.ones(2, 8, s, s) for s in sizes], torch.zeros(2, 1, 112, 112), sizes)
    for mask in constant:
        assert torch.isfinite(mask).all()
        assert mask.min() >= 0.0 and mask.max() <= 1.0


def test_interactive_block_weight_zero_is_plain_sigmoid() -> None:
    torch.manual_seed(0)
    f = torch.randn(2, 16, 7, 7)
    block = InteractiveBlock(16)
    mask = torch.rand(2, 1, 7, 7)
    assert torch.equal(block(f, mask), block(f))
    assert torch.equal(block(f), torch.sigmoid(f))
    with torch.no_grad():
        block.weight.fill_(0.5)
    assert not torch.equal(block(f, mask), block(f))

    projecting = InteractiveBlock(16, mask_channels=8)
    pair = (torch.randn(2, 8, 14, 14), _roi(2, 112))
    assert torch.equal(projecting(f, pair), projecting(f))
    with torch.no_grad():
        projecting.weight.fill_(0.5)
    assert not torch.equal(projecting(f, pair), projecting(f))
    with pytest.raises(ValueError):
        projecting(f, torch.rand(2, 1, 7, 7))


# --- gradients and training -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["masks", "feature_maps"])
def test_gradients_reach_server_not_frozen_client(variant: str) -> None:
    torch.manual_seed(0)
    size = 28
    client = MobileFaceNet(CLIENT_CH, input_size=size, width=0.25, embedding=16)
    client.requires_grad_(False)
    mask_channels = client.map_channels if variant == "feature_maps" else None
    server = IResNet(18, SERVER_CH, input_size=size, width=0.25, embedding=32, interactive=True,
                     mask_channels=mask_channels)
    head = ArcFace(32, 5)
    low, high = torch.randn(4, CLIENT_CH, size, size), torch.randn(4, SERVER_CH, size, size)
    roi = _roi(4, 112)
    _, maps = client.forward_maps(low)
    if variant == "masks":
        masks = client_masks(maps, roi, server.stage_sizes)
    else:
        masks = [(m, roi) for m in maps]
    labels = torch.tensor([0, 1, 2, 3])
    F.cross_entropy(head(server(high, masks), labels), labels).backward()

    assert server.interactive_blocks is not None
    for block in server.interactive_blocks:
        assert block.weight.grad is not None and block.weight.grad.abs().item() > 0
    assert server.stem[0].weight.grad is not None and server.stem[0].weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in server.parameters() if p.requires_grad)
    assert all(p.grad is None for p in client.parameters())


def test_tiny_server_overfits_tiny_batch() -> None:
    torch.manual_seed(0)
    server = build_server("ir18", 16, 14, 0.125, 32)
    head = make_head("arcface", 32, 4)
    x = torch.randn(8, 16, 14, 14)
    y = torch.arange(8) % 4
    opt = torch.optim.Adam([*server.parameters(), *head.parameters()], lr=3e-3)
    losses = []
    for _ in range(100):
        loss = F.cross_entropy(head(server(x), y), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])


def test_eval_is_deterministic() -> None:
    torch.manual_seed(0)
    server = IResNet(18, 8, input_size=28, width=0.125, interactive=True, dropout=0.5, embedding=16)
    client = MobileFaceNet(4, input_size=28, width=0.25, embedding=16)
    server.eval()
    client.eval()
    x, low = torch.randn(2, 8, 28, 28), torch.randn(2, 4, 28, 28)
    masks = client_masks(client.forward_maps(low)[1], _roi(2, 112), server.stage_sizes)
    assert torch.equal(server(x, masks), server(x, masks))
    assert torch.equal(client(low), client(low))


# --- heads ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("head_cls", [ArcFace, CosFace])
def test_heads_are_finite_at_extreme_cosines(head_cls: type) -> None:
    torch.manual_seed(0)
    head = head_cls(8, 3)
    w = head.weight.detach()
    emb = torch.stack([w[0] * 5, -w[0] * 5, torch.zeros(8)]).requires_grad_(True)
    labels = torch.tensor([0, 0, 1])
    logits = head(emb, labels)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, labels).backward()
    assert torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()

    cos = torch.tensor([1.0, -1.0, 0.0], requires_grad=True)
    target = head.margin(cos)
    target.sum().backward()
    assert torch.isfinite(target).all() and torch.isfinite(cos.grad).all()


@pytest.mark.parametrize("head_cls", [ArcFace, CosFace])
def test_margin_lowers_target_logit_only(head_cls: type) -> None:
    torch.manual_seed(0)
    head = head_cls(16, 10)
    emb, labels = torch.randn(32, 16), torch.randint(0, 10, (32,))
    plain, margined = head(emb), head(emb, labels)
    rows = torch.arange(32)
    assert (margined[rows, labels] < plain[rows, labels]).all()
    others = torch.ones_like(plain, dtype=torch.bool)
    others[rows, labels] = False
    assert torch.equal(margined[others], plain[others])
    cos = F.normalize(emb, dim=1) @ F.normalize(head.weight, dim=1).T
    assert torch.allclose(plain, head.s * cos, atol=1e-5)


def test_arcface_target_logit_is_monotonic() -> None:
    head = ArcFace(4, 2)
    cos = torch.linspace(-1, 1, 2001)
    target = head.margin(cos)
    assert (target[1:] >= target[:-1]).all()
    assert math.isclose(head.margin(torch.tensor([1.0])).item(), math.cos(0.5), rel_tol=1e-5)


def test_make_head() -> None:
    assert isinstance(make_head("arcface", 8, 3), ArcFace)
    assert isinstance(make_head("cosface", 8, 3), CosFace)
    with pytest.raises(ValueError, match="sphereface"):
        make_head("sphereface", 8, 3)


@pytest.mark.parametrize("name, own_margin", [("cosface", 0.35), ("arcface", 0.5)])
def test_make_head_scale_and_margin_reach_the_logits(name, own_margin) -> None:
    torch.manual_seed(0)
    emb, labels = torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1])
    own = make_head(name, 8, 3)
    assert (own.s, own.m) == (64.0, own_margin)  # None keeps the head's own
    given = make_head(name, 8, 3, s=8.0, m=0.1)
    given.weight.data.copy_(own.weight.data)
    cos = own.cosine(emb)
    assert torch.allclose(given(emb), 8.0 * cos, atol=1e-6)  # no labels: scaled cosines only
    target = given(emb, labels).gather(1, labels[:, None]).squeeze(1) / 8.0
    expected = cos.gather(1, labels[:, None]).squeeze(1)
    expected = expected - 0.1 if name == "cosface" else torch.cos(torch.acos(expected) + 0.1)
    assert torch.allclose(target, expected, atol=1e-5)
