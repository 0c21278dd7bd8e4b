"""Learned inversion: decoder shapes for every plane size, payload stacking, and that training learns."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fedsplit.data.synthetic import SyntheticFaces
from fedsplit.data.types import images_to_tensor
from fedsplit.privacy.learned import InversionNet, Normaliser, invert, payload_tensor, train_inversion


@pytest.mark.parametrize("size", [14, 28, 56, 112])
@pytest.mark.parametrize("extra", [0, 3])
def test_output_is_a_face_on_the_unit_scale_for_every_plane_size(size, extra):
    torch.manual_seed(0)
    net = InversionNet(5, size, extra_channels=extra, width=8).eval()
    x = 100 * torch.randn(2, 5, size, size)
    out = net(x, torch.randn(2, 3, 112, 112) if extra else None)
    assert out.shape == (2, 3, 112, 112)
    assert out.abs().max() <= 1.0 and out.std() > 0
    with pytest.raises(ValueError, match="expected input"):
        net(torch.randn(2, 5, size // 2 or 1, size // 2 or 1))


def test_extra_input_must_match_how_the_net_was_built():
    with pytest.raises(ValueError, match="extra input missing"):
        InversionNet(4, 14, extra_channels=3, width=8)(torch.randn(2, 4, 14, 14))
    with pytest.raises(ValueError, match="extra input given"):
        InversionNet(4, 14, width=8)(torch.randn(2, 4, 14, 14), torch.randn(2, 3, 112, 112))
    with pytest.raises(ValueError, match="expected extra"):
        InversionNet(4, 14, extra_channels=3, width=8)(torch.randn(2, 4, 14, 14), torch.randn(2, 3, 56, 56))
    with pytest.raises(ValueError, match="in_size"):
        InversionNet(4, 20)


def test_payload_tensor_stacks_at_the_planes_size_and_names_what_is_wrong():
    payload = {"server_channels": torch.randn(2, 6, 28, 28), "mask_0": torch.rand(2, 1, 28, 28),
               "mask_3": torch.ones(2, 1, 7, 7)}
    x = payload_tensor(payload, ["server_channels", "mask_0", "mask_3"])
    assert x.shape == (2, 8, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x[:, :6], payload["server_channels"]) and torch.equal(x[:, 6:7], payload["mask_0"])
    assert torch.allclose(x[:, 7], torch.ones(2, 28, 28))  # a constant mask stays constant when resized
    with pytest.raises(ValueError, match="lacks \\['mask_1'\\]"):
        payload_tensor(payload, ["server_channels", "mask_1"])
    with pytest.raises(ValueError, match="'mask_0' must be"):
        payload_tensor({**payload, "mask_0": torch.rand(3, 1, 28, 28)}, ["server_channels", "mask_0"])
    with pytest.raises(ValueError, match="'server_channels' must be"):
        payload_tensor({"server_channels": torch.randn(2, 6, 20, 20)}, ["server_channels"])


def test_normaliser_uses_statistics_of_the_data_it_was_fitted_on():
    aux = torch.randn(50, 3, 14, 14) * torch.tensor([1000.0, 1.0, 0.01]).view(1, 3, 1, 1) + 5
    norm = Normaliser(3).fit(aux)
    z = norm(aux)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(z.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    payload = {"p": aux}
    assert torch.allclose(payload_tensor(payload, ["p"], norm), z)
    constant = Normaliser(1).fit(torch.full((4, 1, 2, 2), 7.0))
    assert torch.equal(constant(torch.full((1, 1, 2, 2), 7.0)), torch.zeros(1, 1, 2, 2))  # no 0/0


@pytest.fixture(scope="module")
def faces():
    data = SyntheticFaces(identities=8, images_per_identity=4, seed=3)
    images, _, _ = data.batch(np.arange(len(data)))
    return images_to_tensor(images)


def test_training_learns_an_invertible_input_better_than_untrained_and_mean_face(faces):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    # Downscaled faces at 28x28 are easily invertible: the decoder only has to upsample them.
    inputs = F.avg_pool2d(faces, 4)
    logs = []
    net = train_inversion(inputs, faces, steps=20, batch_size=8, lr=5e-3, seed=0, width=8, log_every=10,
                          log=logs.append)
    assert len(logs) == 2 and logs[-1].startswith("inversion step 20/20")
    trained = F.l1_loss(invert(net, inputs), faces).item()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = F.l1_loss(invert(InversionNet(3, 28, width=8), inputs), faces).item()
    mean_face = F.l1_loss(faces.mean(dim=0, keepdim=True).expand_as(faces), faces).item()
    # Measured: trained 0.28, untrained 0.57, mean face 0.38.
    assert trained < 0.6 * untrained and trained < 0.9 * mean_face, (trained, untrained, mean_face)


def test_training_is_seeded_and_takes_an_extra_input(faces):
    inputs, extra = F.avg_pool2d(faces[:8], 8), faces[:8].mean(dim=1, keepdim=True)
    runs = [invert(train_inversion(inputs, faces[:8], extra=extra, steps=1, batch_size=4, seed=1, width=8,
                                   log=lambda s: None), inputs, extra) for _ in range(2)]
    assert runs[0].shape == (8, 3, 112, 112) and torch.equal(runs[0], runs[1])
    with pytest.raises(ValueError, match="targets must be"):
        train_inversion(inputs, faces[:4], steps=1, log=lambda s: None)
    with pytest.raises(ValueError, match="\\[-1, 1\\]"):
        train_inversion(inputs, faces[:8] * 2, steps=1, log=lambda s: None)
