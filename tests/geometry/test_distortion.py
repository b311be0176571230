"""Tests of OPENCV radial-tangential distortion (s2dloc.geometry.distortion)."""

from __future__ import annotations

import pytest
import torch

from s2dloc.geometry.distortion import distort, distortion_valid, undistort

from ._helpers import assert_close, randn

DISTS = {
    "none": [0.0, 0.0, 0.0, 0.0],
    "radial": [-0.2, 0.05, 0.0, 0.0],
    "tangential": [0.0, 0.0, 0.01, -0.02],
    "full": [-0.12, 0.03, 0.001, -0.002],
    "barrel_strong": [0.3, 0.1, 0.02, 0.01],
}


def _dist(values, dtype=torch.float64, device=None) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, device=device)[None]  # (1, 4)


def _points(n: int = 40, seed: int = 0, dtype=torch.float64, device=None) -> torch.Tensor:
    return (randn(n, 2, seed=seed) * 0.35).clamp(-0.7, 0.7).to(device, dtype)


def test_zero_distortion_is_identity():
    xy = _points()
    out, J = distort(xy, _dist(DISTS["none"]), with_jacobian=True)
    assert_close(out, xy, atol=0, rtol=0)
    assert_close(J, torch.eye(2, dtype=torch.float64).expand(40, 2, 2), atol=0, rtol=0)


def test_known_answers():
    xy = torch.tensor([[0.1, 0.2]], dtype=torch.float64)
    # radial only: r^2 = 0.05, factor 1 + 0.1 * 0.05 + 0.01 * 0.0025 = 1.005025
    out, _ = distort(xy, _dist([0.1, 0.01, 0.0, 0.0]))
    assert_close(out, torch.tensor([[0.1005025, 0.201005]], dtype=torch.float64))
    # tangential only: dx = 2 p1 x y + p2 (r^2 + 2 x^2), dy = p1 (r^2 + 2 y^2) + 2 p2 x y
    out, _ = distort(xy, _dist([0.0, 0.0, 0.1, 0.2]))
    expected = [0.1 + 2 * 0.1 * 0.02 + 0.2 * (0.05 + 0.02), 0.2 + 0.1 * (0.05 + 0.08) + 0.4 * 0.02]
    assert_close(out, torch.tensor([expected], dtype=torch.float64))
    assert distort(xy, _dist([0.1, 0.01, 0.0, 0.0]))[1] is None


@pytest.mark.parametrize("batch", [(), (3,)])
def test_shapes(batch, device):
    xy = torch.zeros(*batch, 7, 2, device=device)
    dist = torch.zeros(*batch, 1, 4, device=device)
    out, J = distort(xy, dist, with_jacobian=True)
    assert out.shape == (*batch, 7, 2) and J.shape == (*batch, 7, 2, 2)
    assert out.device == J.device == undistort(xy, dist).device == device
    assert distortion_valid(xy, dist).shape == (*batch, 7)
    assert undistort(xy, dist).shape == (*batch, 7, 2)


@pytest.mark.parametrize("name", list(DISTS))
def test_jacobian_matches_autograd(name, device):
    xy, dist = _points(seed=1, device=device), _dist(DISTS[name], device=device)
    _, J = distort(xy, dist, with_jacobian=True)
    J_auto = torch.autograd.functional.jacobian(lambda p: distort(p, dist)[0], xy)
    i = torch.arange(len(xy), device=device)
    J_auto = J_auto[i, :, i]  # per-point blocks
    assert_close(J, J_auto, atol=1e-13)


@pytest.mark.parametrize("name", ["radial", "tangential", "full"])
def test_gradcheck_distort(name, device):
    xy = _points(6, seed=2, device=device).requires_grad_()
    dist = _dist(DISTS[name], device=device).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, d: distort(p, d)[0], (xy, dist))
    assert torch.autograd.gradcheck(lambda p, d: distort(p, d, with_jacobian=True)[1], (xy, dist))


@pytest.mark.parametrize("name", list(DISTS))
def test_undistort_inverts_distort(name, device, dtype):
    xy, dist = _points(seed=3, dtype=dtype, device=device), _dist(DISTS[name], dtype, device)
    assert distortion_valid(xy, dist).all()
    back = undistort(distort(xy, dist)[0], dist)
    assert_close(back, xy, dtype=dtype, atol=1e-5 if dtype == torch.float32 else 1e-12)


def test_valid_without_or_with_positive_distortion():
    xy = randn(100, 2, seed=4) * 10
    assert distortion_valid(xy, _dist(DISTS["none"])).all()
    assert distortion_valid(xy, _dist([0.1, 0.05, 0.0, 0.0])).all()


@pytest.mark.parametrize(
    ("k1", "k2", "r2_max"),
    [
        (-0.3, 0.0, 1 / 0.9),  # 1 + 3 k1 r^2 = 0
        (-0.5, 0.1, 1.0),  # 1 - 1.5 u + 0.5 u^2 = 0 at u = 1 and 2: the first root counts
        (0.2, -0.1, (0.6 + (0.36 + 2.0) ** 0.5) / 1.0),  # 1 + 0.6 u - 0.5 u^2 = 0
        (-0.2, 0.1, float("inf")),  # 9 k1^2 < 20 k2: never folds
    ],
)
def test_valid_is_the_monotonic_interval(k1, k2, r2_max):
    dist = _dist([k1, k2, 0.0, 0.0])
    r2 = torch.linspace(0, 10, 2001, dtype=torch.float64)
    xy = torch.stack([r2.sqrt(), torch.zeros_like(r2)], -1)
    valid = distortion_valid(xy, dist)
    assert valid.tolist() == (r2 < r2_max).tolist()
    # on the valid set the distorted radius increases strictly with the radius
    rd = distort(xy, dist)[0][:, 0]
    assert (rd[valid][1:] > rd[valid][:-1]).all()
