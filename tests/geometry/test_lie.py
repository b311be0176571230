"""Tests of the SO(3)/SE(3) exponential and logarithm maps (s2dloc.geometry.lie)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s2dloc.geometry.lie import (
    se3_exp,
    se3_log,
    skew,
    so3_exp,
    so3_left_jacobian,
    so3_left_jacobian_inv,
    so3_log,
)

from ._helpers import assert_close, randn, random_axis_angle, random_rotation, rot_z

EYE = torch.eye(3, dtype=torch.float64)


def _unit(v) -> torch.Tensor:
    v = torch.as_tensor(v, dtype=torch.float64)
    return v / v.norm()


# ----- skew
def test_skew_is_cross_product():
    v, w = randn(7, 3, seed=1), randn(7, 3, seed=2)
    assert_close((skew(v) @ w[..., None])[..., 0], torch.linalg.cross(v, w))
    assert_close(skew(v).transpose(-1, -2), -skew(v))


def test_skew_known_answer():
    expected = torch.tensor([[0.0, -3.0, 2.0], [3.0, 0.0, -1.0], [-2.0, 1.0, 0.0]])
    assert torch.equal(skew(torch.tensor([1.0, 2.0, 3.0])), expected)


def test_skew_rejects_wrong_size():
    with pytest.raises(ValueError):
        skew(torch.zeros(2))


# ----- shapes and smoke
@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
def test_shapes(batch, device, dtype):
    phi = torch.full((*batch, 3), 0.3, dtype=dtype, device=device)
    xi = torch.full((*batch, 6), 0.3, dtype=dtype, device=device)
    assert so3_exp(phi).shape == (*batch, 3, 3)
    assert so3_log(so3_exp(phi)).shape == (*batch, 3)
    assert so3_left_jacobian(phi).shape == (*batch, 3, 3)
    R, t = se3_exp(xi)
    assert R.shape == (*batch, 3, 3) and t.shape == (*batch, 3)
    assert se3_log(R, t).shape == (*batch, 6)
    assert so3_exp(phi).dtype == dtype and se3_log(R, t).dtype == dtype
    assert so3_exp(phi).device == device and se3_log(R, t).device == device


# ----- known answers
def test_so3_exp_known_answer():
    R = so3_exp(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    expected = torch.tensor(
        [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    assert_close(R, expected, atol=1e-15)
    assert_close(so3_exp(torch.zeros(3, dtype=torch.float64)), EYE, atol=0, rtol=0)


def test_so3_log_known_answer():
    phi = so3_log(rot_z(math.radians(30)))
    assert_close(phi, torch.tensor([0.0, 0.0, math.radians(30)], dtype=torch.float64))


def test_se3_exp_pure_translation_and_pure_rotation():
    rho = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    R, t = se3_exp(torch.cat([rho, torch.zeros(3, dtype=torch.float64)]))
    assert_close(R, EYE, atol=0, rtol=0)
    assert_close(t, rho)
    # Rotation by pi/2 about z with rho along z: a screw motion, t = rho (axis parallel).
    xi = torch.tensor([0.0, 0.0, 2.0, 0.0, 0.0, math.pi / 2], dtype=torch.float64)
    R, t = se3_exp(xi)
    assert_close(R, rot_z(math.pi / 2), atol=1e-15)
    assert_close(t, torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64))
    # rho along x, rotation pi about z: t = V rho = (B [z]_x + ...) -> known (0, 2/pi, 0)
    xi = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, math.pi], dtype=torch.float64)
    _, t = se3_exp(xi)
    assert_close(t, torch.tensor([0.0, 2 / math.pi, 0.0], dtype=torch.float64), atol=1e-15)


def test_so3_exp_is_rotation(device, dtype, tol):
    R = so3_exp(random_axis_angle(50, max_angle=3 * math.pi, seed=3, dtype=dtype, device=device))
    eye = torch.eye(3, dtype=dtype, device=device).expand(50, 3, 3)
    assert_close(R.transpose(-1, -2) @ R, eye, **tol)
    assert_close(torch.linalg.det(R), torch.ones(50, dtype=dtype, device=device), **tol)


def test_float32_agrees_with_float64(device, dtype, tol):
    xi = torch.cat([randn(30, 3, seed=4), random_axis_angle(30, seed=5)], -1)
    R64, t64 = se3_exp(xi)
    R, t = se3_exp(xi.to(device, dtype))
    log = se3_log(R, t)
    assert R.device == t.device == log.device == device
    R, t, log = R.cpu(), t.cpu(), log.cpu()
    assert_close(R, R64.to(dtype), **tol)
    assert_close(t, t64.to(dtype), dtype=dtype, atol=1e-5 if dtype == torch.float32 else 1e-12)
    assert_close(log, xi.to(dtype), dtype=dtype, atol=5e-5 if dtype == torch.float32 else 1e-12)


# ----- log(exp) and exp(log)
def test_so3_log_exp_round_trip(device, dtype):
    phi = random_axis_angle(100, max_angle=math.pi - 1e-2, seed=6, dtype=dtype, device=device)
    assert_close(
        so3_log(so3_exp(phi)), phi, dtype=dtype, atol=1e-5 if dtype == torch.float32 else 1e-12
    )


def test_so3_exp_log_round_trip(device, dtype, tol):
    R = random_rotation(100, seed=7, dtype=dtype, device=device)
    assert_close(so3_exp(so3_log(R)), R, **tol)


@pytest.mark.parametrize("angle", [1e-12, 1e-9, 1e-6, 1e-4, 3e-4, 1e-3])
def test_so3_log_tiny_angles(angle):
    phi = (_unit([1.0, -2.0, 0.5]) * angle).expand(4, 3)
    out = so3_log(so3_exp(phi))
    assert_close(out, phi, atol=1e-20, rtol=1e-9)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("eps", [0.0, 1e-12, 1e-9, 1e-6, 1e-3, 0.2])
@pytest.mark.parametrize("axis", [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.3, -0.8, 0.5], [-1, -1, 1]])
def test_so3_log_near_pi(eps, axis):
    phi = _unit(axis) * (math.pi - eps)
    R = so3_exp(phi)
    out = so3_log(R)
    assert_close(out.norm(), torch.tensor(math.pi - eps, dtype=torch.float64), atol=1e-12)
    if eps > 1e-9:  # the sign of the axis is determined
        assert_close(out, phi, atol=1e-9)
    else:  # at pi, phi and -phi are the same rotation
        assert min((out - phi).norm(), (out + phi).norm()) < 1e-7
    assert_close(so3_exp(out), R, atol=1e-12)


def test_so3_log_exactly_pi_from_matrix():
    R = torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64))  # pi about z
    out = so3_log(R)
    assert_close(out.abs(), torch.tensor([0.0, 0.0, math.pi], dtype=torch.float64))
    R = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))  # pi about x
    assert_close(so3_exp(so3_log(R)), R, atol=1e-15)


def test_so3_log_mixed_batch():
    """Small, generic and near-pi angles in one batch take different branches correctly."""
    phi = torch.stack([_unit([1, 2, 3]) * a for a in (1e-9, 0.5, 2.0, math.pi - 1e-5)])
    assert_close(so3_log(so3_exp(phi)), phi, atol=1e-10)


def test_se3_round_trips(device, dtype, tol):
    xi = torch.cat([randn(50, 3, seed=9), random_axis_angle(50, seed=10)], -1).to(device, dtype)
    R, t = se3_exp(xi)
    assert_close(se3_log(R, t), xi, dtype=dtype, atol=5e-5 if dtype == torch.float32 else 1e-12)
    R0 = random_rotation(50, seed=11, dtype=dtype, device=device)
    t0 = randn(50, 3, seed=12, dtype=dtype, device=device)
    R1, t1 = se3_exp(se3_log(R0, t0))
    assert_close(R1, R0, **tol)
    assert_close(t1, t0, dtype=dtype, atol=5e-5 if dtype == torch.float32 else 1e-11)


def test_se3_log_near_pi_and_tiny():
    for angle in (1e-9, math.pi - 1e-6):
        xi = torch.cat([torch.tensor([0.3, -1.0, 2.0]).double(), _unit([0.2, 1.0, -0.4]) * angle])
        assert_close(se3_log(*se3_exp(xi)), xi, atol=1e-8)


# ----- left Jacobian
@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-4, 0.3, 1.5, 3.0, math.pi - 1e-3])
def test_left_jacobian_times_inverse_is_identity(angle):
    phi = random_axis_angle(5, seed=13)
    phi = phi / phi.norm(dim=-1, keepdim=True) * angle
    J, Jinv = so3_left_jacobian(phi), so3_left_jacobian_inv(phi)
    assert_close(J @ Jinv, EYE.expand(5, 3, 3), atol=1e-12)
    assert_close(Jinv @ J, EYE.expand(5, 3, 3), atol=1e-12)
    assert_close((J @ phi[..., None])[..., 0], phi)  # V(phi) phi = phi


@pytest.mark.parametrize("angle", [1e-6, 1e-4, 2e-4, 3e-4, 0.05, 1.0])
def test_exp_and_left_jacobian_coefficients_precise(angle):
    """Against cancellation-free references, on both sides of the small-angle Taylor switch."""
    phi = _unit([0.3, -0.2, 0.9]) * angle
    t = angle
    a = math.sin(t) / t
    b = 2 * math.sin(t / 2) ** 2 / t**2
    if t < 1e-2:
        c = 1 / 6 - t**2 / 120 + t**4 / 5040 - t**6 / 362880
    else:
        c = (t - math.sin(t)) / t**3
    K = skew(phi)
    assert_close(so3_exp(phi), EYE + a * K + b * K @ K, atol=5e-16, rtol=0)
    assert_close(so3_left_jacobian(phi), EYE + b * K + c * K @ K, atol=1e-15, rtol=0)


@pytest.mark.parametrize("angle", [1e-6, 0.4, 2.5])
def test_left_jacobian_is_derivative_of_exp(angle):
    """exp(phi + d) = exp(J_l d) exp(phi) to first order: J_l = d log(exp(phi + d) R^T) / dd."""
    phi = _unit([0.3, -0.2, 0.9]) * angle
    R = so3_exp(phi)

    def f(d):
        return so3_log(so3_exp(phi + d) @ R.T)

    J = torch.autograd.functional.jacobian(f, torch.full((3,), 1e-30, dtype=torch.float64))
    assert_close(J, so3_left_jacobian(phi), atol=1e-9)


# ----- gradchecks (float64, on every device)
def test_gradcheck_so3_exp(device):
    phi = random_axis_angle(4, seed=14, device=device).requires_grad_()
    assert torch.autograd.gradcheck(so3_exp, (phi,))
    tiny = torch.tensor([1e-5, -2e-5, 3e-6], dtype=torch.float64, device=device)
    assert torch.autograd.gradcheck(so3_exp, (tiny.requires_grad_(),), eps=1e-7)


def test_gradcheck_so3_log_away_from_pi(device):
    phi = random_axis_angle(4, max_angle=2.5, seed=15, device=device) + 0.1
    R = so3_exp(phi).requires_grad_()
    assert torch.autograd.gradcheck(so3_log, (R,))


def test_gradcheck_se3_exp(device):
    xi = torch.cat([randn(4, 3, seed=16), random_axis_angle(4, seed=17)], -1).to(device)
    assert torch.autograd.gradcheck(se3_exp, (xi.requires_grad_(),))


def test_gradcheck_se3_log(device):
    phi = random_axis_angle(4, max_angle=2.5, seed=18, device=device) + 0.1
    R = so3_exp(phi).requires_grad_()
    t = randn(4, 3, seed=19, device=device).requires_grad_()
    assert torch.autograd.gradcheck(se3_log, (R, t))


def test_gradcheck_left_jacobians(device):
    phi = random_axis_angle(3, seed=20, device=device).requires_grad_()
    assert torch.autograd.gradcheck(so3_left_jacobian, (phi,))
    assert torch.autograd.gradcheck(so3_left_jacobian_inv, (phi,))


# ----- property tests
_coord = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(rho=st.lists(_coord, min_size=3, max_size=3), phi=st.lists(_coord, min_size=3, max_size=3))
def test_property_se3_log_exp(rho, phi):
    phi = torch.tensor(phi, dtype=torch.float64)
    n = phi.norm()
    if n > math.pi - 1e-3:  # log returns the angle in [0, pi]
        phi = phi / n * (n % (math.pi - 1e-3))
    xi = torch.cat([torch.tensor(rho, dtype=torch.float64), phi])
    R, t = se3_exp(xi)
    assert_close(se3_log(R, t), xi, atol=1e-8, rtol=1e-8)
    assert_close(R.T @ R, EYE, atol=1e-12)
    # exp(-xi) is the inverse of exp(xi)
    Ri, ti = se3_exp(-xi)
    assert_close(Ri @ R, EYE, atol=1e-12)
    assert_close(Ri @ t + ti, torch.zeros(3, dtype=torch.float64), atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(phi=st.lists(st.floats(-20.0, 20.0, allow_nan=False), min_size=3, max_size=3))
def test_property_exp_log_any_angle(phi):
    """exp(log(R)) = R for rotations from any axis-angle, including angles beyond pi."""
    R = so3_exp(torch.tensor(phi, dtype=torch.float64))
    out = so3_log(R)
    assert out.norm() <= math.pi + 1e-12
    assert_close(so3_exp(out), R, atol=1e-10)
