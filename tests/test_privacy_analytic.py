"""The server's view as a linear operator, and the analytic attack that inverts it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedsplit.data.synthetic import SyntheticFaces
from fedsplit.data.types import images_to_tensor
from fedsplit.frequency import DUETFACE_CLIENT_CHANNELS, block_dct, dct_split, server_channels
from fedsplit.privacy.analytic import analytic_inversion, gradient_penalty
from fedsplit.privacy.look import look
from fedsplit.privacy.metrics import psnr
from fedsplit.privacy.operator import ALL_CHANNELS, ServerView

SERVER = server_channels(DUETFACE_CLIENT_CHANNELS)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _faces(n: int = 2, seed: int = 5, first: int = 0) -> torch.Tensor:
    data = SyntheticFaces(identities=n, images_per_identity=1, seed=seed, first_identity=first)
    return images_to_tensor(data.batch(np.arange(n))[0])


@pytest.mark.parametrize("upsample", [1, 8])
@pytest.mark.parametrize("channels", [SERVER, (0, 7, 63), ALL_CHANNELS])
def test_adjoint_is_exact(upsample, channels):
    view = ServerView(channels, upsample)
    gen = torch.Generator().manual_seed(upsample)
    x = torch.randn(2, 3, 112, 112, generator=gen, dtype=torch.float64)
    y = torch.randn(2, view.num_planes, view.plane_size, view.plane_size, generator=gen, dtype=torch.float64)
    lhs = (view.linear(x) * y).sum()
    rhs = (x * view.adjoint(y)).sum()
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)
    np.testing.assert_allclose(view.gram(x), view.adjoint(view.linear(x)), rtol=0, atol=1e-9 * view.gram(x).abs().max())


@pytest.mark.parametrize("upsample", [1, 8])
def test_forward_matches_what_the_strategies_send(upsample):
    faces = _faces()
    client, server = dct_split(faces, DUETFACE_CLIENT_CHANNELS, upsample)
    for channels, sent in ((SERVER, server), (DUETFACE_CLIENT_CHANNELS, client),
                           (ALL_CHANNELS, block_dct(faces, upsample).flatten(1, 2))):
        got = ServerView(channels, upsample).forward(faces)
        assert got.shape == sent.shape
        assert (got - sent.double()).abs().max() < 1e-3  # float32 kernel on coefficients up to ~1e3
    view = ServerView(ALL_CHANNELS, upsample)
    np.testing.assert_allclose(view.forward(faces) - view.linear(faces), view.offset.expand(2, -1, -1, -1))
    assert view.offset[0, 0].abs().max() == 4.0 and view.offset[0, 1:].abs().max() == 0  # Y's -0.5 x DC gain 8


@pytest.mark.parametrize("upsample", [1, 8])
def test_attack_is_exact_on_fd_all(upsample):
    faces = _faces()
    planes = block_dct(faces, upsample).flatten(1, 2)
    recovered = analytic_inversion(planes, ALL_CHANNELS, upsample)
    assert recovered.shape == faces.shape and recovered.dtype == torch.float32
    assert np.all(psnr(recovered, faces) > 40)


def test_attack_on_hf_only_at_upsample_8_beats_the_prior_and_the_look():
    faces = _faces(2, seed=9)
    prior = _faces(16, seed=9, first=10_000).mean(0)
    planes = dct_split(faces, DUETFACE_CLIENT_CHANNELS, 8)[1]
    attack = psnr(analytic_inversion(planes, SERVER, 8, prior=prior), faces)
    assert np.all(attack > psnr(prior.expand_as(faces), faces) + 5)
    assert np.all(attack > psnr(look(planes, SERVER, 8), faces) + 5)


def _dense(view: ServerView) -> np.ndarray:
    n = 3 * view.size * view.size
    basis = torch.eye(n, dtype=torch.float64).reshape(n, 3, view.size, view.size)
    return view.linear(basis).reshape(n, -1).numpy().T  # (planes, pixels)


def _dense_gradient(size: int) -> np.ndarray:
    step = np.diff(np.eye(size), axis=0)  # (size-1, size) forward differences, no wrap
    eye = np.eye(size)
    per_colour = np.vstack([np.kron(step, eye), np.kron(eye, step)])
    return np.kron(np.eye(3), per_colour)


@pytest.mark.parametrize("upsample", [1, 2])
def test_cg_matches_the_closed_form_normal_equations(upsample):
    size, smooth, weight = 16, 1e-3, 1e-2
    view = ServerView(SERVER, upsample, size)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, size, size, generator=gen, dtype=torch.float64) * 2 - 1
    prior = torch.rand(3, size, size, generator=gen, dtype=torch.float64) * 0.5
    planes = view.forward(x)
    a = _dense(view)
    d = _dense_gradient(size)
    gain = 1.0 / (127.5 * upsample) ** 2
    lhs = gain * a.T @ a + smooth * d.T @ d + weight * np.eye(a.shape[1])
    p = prior.reshape(-1).numpy()
    b = (planes - view.offset).reshape(2, -1).numpy()
    want = np.stack([np.linalg.solve(lhs, gain * a.T @ bi + smooth * d.T @ d @ p + weight * p) for bi in b])
    got = analytic_inversion(planes.float(), SERVER, upsample, smoothness=smooth, prior=prior, prior_weight=weight,
                             iters=3000, tol=1e-12, clamp=False)
    # The float32 planes limit the match, not CG.
    np.testing.assert_allclose(got.double().reshape(2, -1).numpy(), want, atol=1e-5)
    objective = lambda z: (gain * ((view.linear(z) - (planes - view.offset)) ** 2).flatten(1).sum(1)  # noqa: E731
                           + smooth * gradient_penalty(z - prior) + weight * ((z - prior) ** 2).flatten(1).sum(1))
    assert torch.all(objective(got.double()) <= objective(torch.from_numpy(want).reshape(x.shape)) * (1 + 1e-6))


def test_bad_inputs_raise_naming_what_was_wrong():
    planes = dct_split(_faces(1), DUETFACE_CLIENT_CHANNELS, 1)[1]
    with pytest.raises(ValueError, match="planes must be"):
        analytic_inversion(planes[:, :10], SERVER, 1)
    with pytest.raises(ValueError, match="prior must be"):
        analytic_inversion(planes, SERVER, 1, prior=torch.zeros(3, 50, 50))
    with pytest.raises(ValueError, match="smoothness"):
        analytic_inversion(planes, SERVER, 1, smoothness=-1.0)
    with pytest.raises(ValueError, match="singular"):
        analytic_inversion(planes, SERVER, 1, smoothness=0.0, prior_weight=0.0)
    with pytest.raises(ValueError, match="upsample"):
        ServerView(SERVER, 3)
