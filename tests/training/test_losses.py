"""Tests of the GN-Net losses (s2dloc.training.losses) on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from s2dloc.training.losses import (
    contrastive_loss,
    gauss_newton_loss,
    gauss_newton_terms,
    start_points,
)

torch.set_num_threads(1)

H, W = 12, 14
ALPHA, BETA = 2.0, 0.5


def _ramp(dtype=torch.float64) -> torch.Tensor:
    """A 2-channel linear ramp ``F(u, v) = (ALPHA u, BETA v)`` sampled at pixel centres."""
    v, u = torch.meshgrid(torch.arange(H, dtype=dtype) + 0.5, torch.arange(W, dtype=dtype) + 0.5,
                          indexing="ij")  # fmt: skip
    return torch.stack([ALPHA * u, BETA * v])[None]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


U_B = torch.tensor([[[5.3, 6.1], [7.0, 4.4], [3.6, 8.2]]], dtype=torch.float64)
DELTA = torch.tensor([[[0.7, -0.4], [-1.2, 0.9], [0.25, 1.5]]], dtype=torch.float64)


def test_gn_step_lands_on_the_true_point_of_a_linear_ramp():
    """Without damping one GN step on a linear map is exact: e1 = 0, e2 = log 2pi - log(ab)."""
    F = _ramp()
    out = gauss_newton_terms(F, F, U_B, U_B, U_B + DELTA, eps=0.0)
    assert out["valid"].all()
    torch.testing.assert_close(out["mu"], U_B, atol=1e-12, rtol=0)
    torch.testing.assert_close(
        out["e1"], torch.zeros(1, 3, dtype=torch.float64), atol=1e-20, rtol=0
    )
    e2 = math.log(2 * math.pi) - math.log(ALPHA * BETA)
    torch.testing.assert_close(out["e2"], torch.full((1, 3), e2, dtype=torch.float64))


def test_damped_gn_terms_match_hand_computation():
    """With H = diag(a^2 + eps, b^2 + eps): mu - u_b = eps / (a^2 + eps) * delta per axis."""
    eps = 0.3
    F = _ramp()
    out = gauss_newton_loss(F, F, U_B, U_B, eps=eps, x_s=U_B + DELTA, w1=2.0, w2=0.5)
    h = torch.tensor([ALPHA**2 + eps, BETA**2 + eps], dtype=torch.float64)
    e1 = (0.5 * eps**2 * DELTA**2 / h).sum(-1).mean()
    e2 = math.log(2 * math.pi) - 0.5 * torch.log(h.prod())
    torch.testing.assert_close(out["e1"], e1)
    torch.testing.assert_close(out["e2"], e2)
    torch.testing.assert_close(out["total"], 2.0 * e1 + 0.5 * e2)
    assert out["num_valid"] == 3
    norms = (torch.stack([ALPHA * U_B[..., 0], BETA * U_B[..., 1]], -1)).norm(dim=-1).mean()
    torch.testing.assert_close(out["feature_norm"], norms)


def test_invalid_matches_are_ignored():
    F = _ramp()
    u = torch.cat([U_B, torch.tensor([[[0.6, 5.0], [5.0, 5.0]]], dtype=torch.float64)], 1)
    x_s = torch.cat([U_B + DELTA, torch.tensor([[[1.0, 5.0], [5.5, 5.5]]])], 1)
    mask = torch.tensor([[True, True, True, True, False]])
    ref = gauss_newton_loss(F, F, U_B, U_B, eps=0.1, x_s=U_B + DELTA)
    out = gauss_newton_loss(F, F, u, u, mask, eps=0.1, x_s=x_s)
    assert out["num_valid"] == 3  # one start point too close to the border, one masked
    for k in ("total", "e1", "e2"):
        torch.testing.assert_close(out[k], ref[k])
    none = gauss_newton_loss(F, F, u, u, torch.zeros(1, 5, dtype=torch.bool), x_s=x_s)
    assert none["total"] == 0 and none["num_valid"] == 0


def test_start_points_are_seeded_and_within_the_vicinity():
    u = U_B.expand(4, -1, -1)
    a, b = start_points(u, 2.5, _gen(1)), start_points(u, 2.5, _gen(1))
    assert torch.equal(a, b)
    assert ((a - u).abs() <= 2.5).all() and ((a - u).abs() > 1.0).any()
    x = torch.rand(1, 3, H, W, dtype=torch.float64, generator=_gen(2))
    l1 = gauss_newton_loss(x, x, U_B, U_B, vicinity=2.0, generator=_gen(5))
    l2 = gauss_newton_loss(x, x, U_B, U_B, vicinity=2.0, generator=_gen(5))
    assert torch.equal(l1["total"], l2["total"])


def test_both_directions_average_the_two_losses():
    F_a = torch.rand(1, 3, H, W, dtype=torch.float64, generator=_gen(3))
    F_b = torch.rand(1, 3, H, W, dtype=torch.float64, generator=_gen(4))
    u_a = U_B + 0.3
    g = _gen(7)
    ab = gauss_newton_loss(F_a, F_b, u_a, U_B, x_s=start_points(U_B, 1.5, g))
    ba = gauss_newton_loss(F_b, F_a, U_B, u_a, x_s=start_points(u_a, 1.5, g))
    both = gauss_newton_loss(F_a, F_b, u_a, U_B, vicinity=1.5, both_directions=True,
                             generator=_gen(7))  # fmt: skip
    for k in ("total", "e1", "e2", "feature_norm"):
        torch.testing.assert_close(both[k], (ab[k] + ba[k]) / 2)


def test_gn_loss_gradcheck_wrt_feature_maps():
    F_a = torch.rand(1, 2, 6, 7, dtype=torch.float64, generator=_gen(8), requires_grad=True)
    F_b = torch.rand(1, 2, 6, 7, dtype=torch.float64, generator=_gen(9), requires_grad=True)
    u_a = torch.tensor([[[2.2, 3.1], [4.6, 2.4]]], dtype=torch.float64)
    u_b = torch.tensor([[[3.1, 2.7], [4.0, 3.3]]], dtype=torch.float64)
    x_s = u_b + torch.tensor([[[0.4, -0.3], [-0.6, 0.2]]], dtype=torch.float64)

    def fn(fa, fb):
        return gauss_newton_loss(fa, fb, u_a, u_b, eps=1e-2, x_s=x_s)["total"]

    assert torch.autograd.gradcheck(fn, (F_a, F_b))


def _contrastive_maps():
    """Features at a's pixel (1, 1) and b's pixels: match (2, 1), negatives (0, 3), (3, 3)."""
    F_a = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    F_b = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    F_a[0, :, 1, 1] = torch.tensor([0.3, 0.4])
    F_b[0, :, 1, 2] = torch.tensor([0.3, 1.0])  # d_pos = 0.6
    F_b[0, :, 3, 0] = torch.tensor([0.6, 0.0])  # d_neg = 0.5
    F_b[0, :, 3, 3] = torch.tensor([0.3, 2.4])  # d_neg = 2.0
    u_a = torch.tensor([[[1.5, 1.5]]], dtype=torch.float64)
    u_b = torch.tensor([[[2.5, 1.5]]], dtype=torch.float64)
    u_neg = torch.tensor([[[[0.5, 3.5], [3.5, 3.5]]]], dtype=torch.float64)
    return F_a, F_b, u_a, u_b, u_neg


@pytest.mark.parametrize(
    ("margin", "positive", "negative"),
    [
        (1.0, 0.36, 0.125),  # 0.6^2; mean((1 - 0.5)^2, 0)
        ((0.2, 1.5), 0.16, 0.5),  # (0.6 - 0.2)^2; mean((1.5 - 0.5)^2, 0)
        ((0.7, 0.4), 0.0, 0.0),  # both inside their margins
    ],
)
def test_contrastive_margins_match_hand_computation(margin, positive, negative):
    out = contrastive_loss(*_contrastive_maps(), margin=margin)
    torch.testing.assert_close(out["positive"], torch.tensor(positive, dtype=torch.float64))
    torch.testing.assert_close(out["negative"], torch.tensor(negative, dtype=torch.float64))
    torch.testing.assert_close(out["total"], torch.tensor(positive + negative, dtype=torch.float64))
    torch.testing.assert_close(out["d_pos"], torch.tensor(0.6, dtype=torch.float64))
    torch.testing.assert_close(out["d_neg"], torch.tensor(1.25, dtype=torch.float64))


def test_contrastive_masks_and_finite_gradients():
    F_a, F_b, u_a, u_b, u_neg = _contrastive_maps()
    F_b = F_b.clone()
    F_b[0, :, 1, 2] = F_a[0, :, 1, 1]  # d_pos = 0: the double margin's sqrt must stay finite
    F_a.requires_grad_(True)
    F_b.requires_grad_(True)
    out = contrastive_loss(F_a, F_b, u_a, u_b, u_neg, valid_neg=torch.tensor([[[False, True]]]),
                           margin=(0.1, 3.0))  # fmt: skip
    torch.testing.assert_close(out["negative"], torch.tensor(1.0, dtype=torch.float64))
    assert out["active_neg"] == 1.0
    out["total"].backward()
    assert torch.isfinite(F_a.grad).all() and torch.isfinite(F_b.grad).all()
    masked = contrastive_loss(F_a, F_b, u_a, u_b, u_neg, torch.tensor([[False]]))
    assert masked["total"] == 0
