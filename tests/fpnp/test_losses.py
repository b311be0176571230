"""Robust losses: known values, IRLS weights equal d rho / ds, small-residual limit, errors."""

from __future__ import annotations

import math

import pytest
import torch

from s2dloc.fpnp import FeatureMetricPnP, RobustLoss
from s2dloc.utils.config import ConfigError

E = math.exp(1)

# (name, barron alpha, scale c, s, rho(s), rho'(s)), worked out by hand from the definitions:
# huber 2c sqrt(s) - c^2 beyond c^2; cauchy c^2 log(1 + s/c^2); Barron (scaled so rho ~ s):
# a=1: 2c^2 (sqrt(1 + s/c^2) - 1), a=0: 2c^2 log(1 + s/(2c^2)), a=-2: 4c^2 s / (s + 4c^2),
# a=-inf: 2c^2 (1 - exp(-s/(2c^2))).
CASES = [
    ("squared", 0.0, 1.0, 3.0, 3.0, 1.0),
    ("squared", 0.0, 5.0, 3.0, 3.0, 1.0),
    ("huber", 0.0, 1.0, 0.5, 0.5, 1.0),
    ("huber", 0.0, 2.0, 4.0, 4.0, 1.0),  # on the boundary s = c^2
    ("huber", 0.0, 1.0, 9.0, 5.0, 1 / 3),
    ("huber", 0.0, 2.0, 9.0, 8.0, 2 / 3),
    ("cauchy", 0.0, 1.0, 9.0, math.log(10), 0.1),
    ("cauchy", 0.0, 2.0, 12.0, 4 * math.log(4), 0.25),
    ("cauchy", 0.0, 1.0, 0.0, 0.0, 1.0),
    ("barron", 2.0, 1.0, 7.0, 7.0, 1.0),
    ("barron", 1.0, 1.0, 8.0, 4.0, 1 / 3),
    ("barron", 1.0, 2.0, 32.0, 16.0, 1 / 3),
    ("barron", 0.0, 1.0, 2.0, 2 * math.log(2), 0.5),
    ("barron", 0.0, 2.0, 8.0, 8 * math.log(2), 0.5),
    ("barron", -2.0, 1.0, 4.0, 2.0, 0.25),
    ("barron", -2.0, 0.5, 1.0, 0.5, 0.25),
    ("barron", -math.inf, 1.0, 2.0, 2 * (1 - 1 / E), 1 / E),
    ("barron", -math.inf, 2.0, 0.0, 0.0, 1.0),
]

ALL_LOSSES = [
    ("squared", 0.0),
    ("huber", 0.0),
    ("cauchy", 0.0),
    *[("barron", a) for a in (2.0, 1.0, 0.5, 0.0, -1.0, -2.0, -math.inf)],
]


@pytest.mark.parametrize("name, alpha, c, s, rho, weight", CASES)
def test_known_values(name, alpha, c, s, rho, weight):
    loss = RobustLoss(name, c, alpha)
    value, w = loss(torch.tensor([s], dtype=torch.float64))
    assert value.item() == pytest.approx(rho, rel=1e-12, abs=1e-14)
    assert w.item() == pytest.approx(weight, rel=1e-12)


@pytest.mark.parametrize("name, alpha", ALL_LOSSES)
@pytest.mark.parametrize("c", [0.5, 1.0, 3.0])
def test_irls_weight_is_derivative(name, alpha, c):
    s = torch.cat([torch.logspace(-4, 2, 40, dtype=torch.float64), torch.tensor([0.3, 17.0])])
    s = (s * c**2).requires_grad_()
    rho, w = RobustLoss(name, c, alpha)(s)
    (grad,) = torch.autograd.grad(rho.sum(), s)
    torch.testing.assert_close(w, grad, rtol=1e-10, atol=1e-12)
    assert (w > 0).all() and (w <= 1 + 1e-12).all()  # robust losses only down-weight


@pytest.mark.parametrize("name, alpha", ALL_LOSSES)
@pytest.mark.parametrize("c", [0.1, 1.0, 10.0])
def test_quadratic_for_small_residuals(name, alpha, c):
    s = torch.tensor([1e-6, 1e-5, 1e-4], dtype=torch.float64) * c**2
    rho, w = RobustLoss(name, c, alpha)(s)
    torch.testing.assert_close(rho, s, rtol=1e-4, atol=0.0)
    torch.testing.assert_close(w, torch.ones_like(s), rtol=1e-4, atol=0.0)


@pytest.mark.parametrize("name, alpha", ALL_LOSSES[1:])
def test_tensor_scale_matches_configured_scale(name, alpha):
    s = torch.tensor([[0.5, 4.0, 20.0], [0.5, 4.0, 20.0]], dtype=torch.float64)
    scales = torch.tensor([[0.7], [2.5]], dtype=torch.float64)
    rho, w = RobustLoss(name, 1.0, alpha)(s, scales)
    for i, c in enumerate(scales[:, 0].tolist()):
        rho_i, w_i = RobustLoss(name, c, alpha)(s[i])
        torch.testing.assert_close(rho[i], rho_i)
        torch.testing.assert_close(w[i], w_i)


@pytest.mark.parametrize("name, alpha", [("huber", 0.0), ("cauchy", 0.0), ("barron", -2.0)])
def test_outliers_are_downweighted(name, alpha):
    _, w = RobustLoss(name, 1.0, alpha)(torch.tensor([0.01, 100.0, 1e4], dtype=torch.float64))
    assert w[0] > 0.99 and w[1] < 0.2 and w[2] < w[1]


def test_unknown_name_raises():
    with pytest.raises(ValueError, match="Unknown robust loss 'tukey'"):
        RobustLoss("tukey")
    with pytest.raises(ConfigError, match=r"'loss' = 'l1' must be one of \['squared', 'huber'"):
        FeatureMetricPnP(loss="l1")


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan])
def test_non_positive_scale_raises(scale):
    with pytest.raises(ValueError, match="scale must be positive"):
        RobustLoss("cauchy", scale)
    with pytest.raises(ConfigError, match="'loss_scale' = .* must be a number > 0 or null"):
        FeatureMetricPnP(loss="huber", loss_scale=scale)


def test_unknown_solver_option_raises():
    with pytest.raises(
        ConfigError, match=r"unknown setting 'max_iters'; valid keys: .*'max_iterations'"
    ):
        FeatureMetricPnP(max_iters=3)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"max_iterations": "5"}, "'max_iterations' must be of type int"),
        ({"max_iterations": 5.5}, "'max_iterations' must be of type int"),
        ({"differentiable": "yes"}, "'differentiable' must be of type bool"),
        ({"lambda_init": "x"}, "'lambda_init' must be of type float"),
        ({"backend": "cuda"}, r"'backend' = 'cuda' must be one of \['auto', 'torch', 'numba'\]"),
        ({"min_points": 0}, "'min_points' = 0 must be >= 1"),
        ({"lambda_down": 2.0}, "'lambda_down' = 2.0 must be <= 1"),
    ],
)
def test_solver_settings_are_typed_and_range_checked(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        FeatureMetricPnP(**kwargs)


def test_solver_settings_keep_their_values():
    conf = FeatureMetricPnP(max_iterations=7, lambda_init=1, loss_scale=2, backend="torch").conf
    assert (conf.max_iterations, conf.lambda_init, conf.loss_scale, conf.backend) == (
        7,
        1.0,
        2,
        "torch",
    )
    assert type(conf.lambda_init) is float
