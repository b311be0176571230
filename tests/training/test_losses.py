"""Tests of the GN-Net losses (s2dloc.training.losses) on hand-computed cases.

Each test runs on every ``device``; random inputs come from seeded CPU generators.
"""

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


def _ramp(device: torch.device, dtype=torch.float64) -> torch.Tensor:
    """A 2-channel linear ramp ``F(u, v) = (ALPHA u, BETA v)`` sampled at pixel centres,
    ``(1, 2, H, W)`` on ``device``."""
    v, u = torch.meshgrid(
        torch.arange(H, dtype=dtype) + 0.5, torch.arange(W, dtype=dtype) + 0.5, indexing="ij"
    )
    return torch.stack([ALPHA * u, BETA * v])[None].to(device)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


U_B = torch.tensor([[[5.3, 6.1], [7.0, 4.4], [3.6, 8.2]]], dtype=torch.float64)
DELTA = torch.tensor([[[0.7, -0.4], [-1.2, 0.9], [0.25, 1.5]]], dtype=torch.float64)


def test_gn_step_lands_on_the_true_point_of_a_linear_ramp(device):
    """Without damping one GN step on a linear map is exact: e1 = 0, e2 = log 2pi - log(ab)."""
    F, u, delta = _ramp(device), U_B.to(device), DELTA.to(device)
    out = gauss_newton_terms(F, F, u, u, u + delta, eps=0.0)
    assert out["valid"].all()
    torch.testing.assert_close(out["mu"], u, atol=1e-12, rtol=0)
    zeros = torch.zeros(1, 3, dtype=torch.float64, device=device)
    torch.testing.assert_close(out["e1"], zeros, atol=1e-20, rtol=0)
    e2 = math.log(2 * math.pi) - math.log(ALPHA * BETA)
    torch.testing.assert_close(out["e2"], torch.full_like(zeros, e2))


def test_damped_gn_terms_match_hand_computation(device):
    """With H = diag(a^2 + eps, b^2 + eps): mu - u_b = eps / (a^2 + eps) * delta per axis."""
    eps = 0.3
    F, u = _ramp(device), U_B.to(device)
    out = gauss_newton_loss(F, F, u, u, eps=eps, x_s=u + DELTA.to(device), w1=2.0, w2=0.5)
    out = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in out.items()}
    h = torch.tensor([ALPHA**2 + eps, BETA**2 + eps], dtype=torch.float64)
    e1 = (0.5 * eps**2 * DELTA**2 / h).sum(-1).mean()
    e2 = math.log(2 * math.pi) - 0.5 * torch.log(h.prod())
    torch.testing.assert_close(out["e1"], e1)
    torch.testing.assert_close(out["e2"], e2)
    torch.testing.assert_close(out["total"], 2.0 * e1 + 0.5 * e2)
    assert out["num_valid"] == 3
    norms = (torch.stack([ALPHA * U_B[..., 0], BETA * U_B[..., 1]], -1)).norm(dim=-1).mean()
    torch.testing.assert_close(out["feature_norm"], norms)


def test_invalid_matches_are_ignored(device):
    F, u_b, x_b = _ramp(device), U_B.to(device), (U_B + DELTA).to(device)
    u = torch.cat([U_B, torch.tensor([[[0.6, 5.0], [5.0, 5.0]]], dtype=torch.float64)], 1)
    x_s = torch.cat([U_B + DELTA, torch.tensor([[[1.0, 5.0], [5.5, 5.5]]])], 1)
    u, x_s = u.to(device), x_s.to(device)
    mask = torch.tensor([[True, True, True, True, False]], device=device)
    ref = gauss_newton_loss(F, F, u_b, u_b, eps=0.1, x_s=x_b)
    out = gauss_newton_loss(F, F, u, u, mask, eps=0.1, x_s=x_s)
    assert out["num_valid"] == 3  # one start point too close to the border, one masked
    for k in ("total", "e1", "e2"):
        torch.testing.assert_close(out[k], ref[k])
    nothing = torch.zeros(1, 5, dtype=torch.bool, device=device)
    none = gauss_newton_loss(F, F, u, u, nothing, x_s=x_s)
    assert none["total"] == 0 and none["num_valid"] == 0


def test_start_points_are_seeded_and_within_the_vicinity(device):
    u = U_B.expand(4, -1, -1).to(device)
    a, b = start_points(u, 2.5, _gen(1)), start_points(u, 2.5, _gen(1))
    assert a.device == u.device and torch.equal(a, b)
    assert ((a - u).abs() <= 2.5).all() and ((a - u).abs() > 1.0).any()
    # The same draws on every device (the generator lives on the CPU).
    torch.testing.assert_close(a.cpu(), start_points(u.cpu(), 2.5, _gen(1)))
    x = torch.rand(1, 3, H, W, dtype=torch.float64, generator=_gen(2)).to(device)
    u_b = U_B.to(device)
    l1 = gauss_newton_loss(x, x, u_b, u_b, vicinity=2.0, generator=_gen(5))
    l2 = gauss_newton_loss(x, x, u_b, u_b, vicinity=2.0, generator=_gen(5))
    assert torch.equal(l1["total"], l2["total"])


def test_both_directions_average_the_two_losses(device):
    F_a = torch.rand(1, 3, H, W, dtype=torch.float64, generator=_gen(3)).to(device)
    F_b = torch.rand(1, 3, H, W, dtype=torch.float64, generator=_gen(4)).to(device)
    u_b = U_B.to(device)
    u_a = u_b + 0.3
    g = _gen(7)
    ab = gauss_newton_loss(F_a, F_b, u_a, u_b, x_s=start_points(u_b, 1.5, g))
    ba = gauss_newton_loss(F_b, F_a, u_b, u_a, x_s=start_points(u_a, 1.5, g))
    both = gauss_newton_loss(
        F_a, F_b, u_a, u_b, vicinity=1.5, both_directions=True, generator=_gen(7)
    )
    for k in ("total", "e1", "e2", "feature_norm"):
        torch.testing.assert_close(both[k], (ab[k] + ba[k]) / 2)


def test_gn_loss_gradcheck_wrt_feature_maps(device):
    F_a = torch.rand(1, 2, 6, 7, dtype=torch.float64, generator=_gen(8)).to(device)
    F_b = torch.rand(1, 2, 6, 7, dtype=torch.float64, generator=_gen(9)).to(device)
    F_a, F_b = F_a.requires_grad_(), F_b.requires_grad_()
    u_a = torch.tensor([[[2.2, 3.1], [4.6, 2.4]]], dtype=torch.float64, device=device)
    u_b = torch.tensor([[[3.1, 2.7], [4.0, 3.3]]], dtype=torch.float64, device=device)
    x_s = u_b + torch.tensor([[[0.4, -0.3], [-0.6, 0.2]]], dtype=torch.float64, device=device)

    def fn(fa, fb):
        return gauss_newton_loss(fa, fb, u_a, u_b, eps=1e-2, x_s=x_s)["total"]

    assert torch.autograd.gradcheck(fn, (F_a, F_b))


def _contrastive_maps(device: torch.device) -> tuple[torch.Tensor, ...]:
    """Features at a's pixel (1, 1) and b's pixels: match (2, 1), negatives (0, 3), (3, 3):
    ``F_a, F_b (1, 2, 4, 4)``, ``u_a, u_b (1, 1, 2)``, ``u_neg (1, 1, 2, 2)`` on ``device``."""
    F_a = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    F_b = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    F_a[0, :, 1, 1] = torch.tensor([0.3, 0.4])
    F_b[0, :, 1, 2] = torch.tensor([0.3, 1.0])  # d_pos = 0.6
    F_b[0, :, 3, 0] = torch.tensor([0.6, 0.0])  # d_neg = 0.5
    F_b[0, :, 3, 3] = torch.tensor([0.3, 2.4])  # d_neg = 2.0
    u_a = torch.tensor([[[1.5, 1.5]]], dtype=torch.float64)
    u_b = torch.tensor([[[2.5, 1.5]]], dtype=torch.float64)
    u_neg = torch.tensor([[[[0.5, 3.5], [3.5, 3.5]]]], dtype=torch.float64)
    return tuple(x.to(device) for x in (F_a, F_b, u_a, u_b, u_neg))


@pytest.mark.parametrize(
    ("margin", "positive", "negative"),
    [
        (1.0, 0.36, 0.125),  # 0.6^2; mean((1 - 0.5)^2, 0)
        ((0.2, 1.5), 0.16, 0.5),  # (0.6 - 0.2)^2; mean((1.5 - 0.5)^2, 0)
        ((0.7, 0.4), 0.0, 0.0),  # both inside their margins
    ],
)
def test_contrastive_margins_match_hand_computation(margin, positive, negative, device):
    out = contrastive_loss(*_contrastive_maps(device), margin=margin)
    expected = {
        "positive": positive,
        "negative": negative,
        "total": positive + negative,
        "d_pos": 0.6,
        "d_neg": 1.25,
    }
    for k, v in expected.items():
        torch.testing.assert_close(out[k], torch.tensor(v, dtype=torch.float64, device=device))


def test_contrastive_masks_and_finite_gradients(device):
    F_a, F_b, u_a, u_b, u_neg = _contrastive_maps(device)
    F_b = F_b.clone()
    F_b[0, :, 1, 2] = F_a[0, :, 1, 1]  # d_pos = 0: the double margin's sqrt must stay finite
    F_a.requires_grad_(True)
    F_b.requires_grad_(True)
    valid_neg = torch.tensor([[[False, True]]], device=device)
    out = contrastive_loss(F_a, F_b, u_a, u_b, u_neg, valid_neg=valid_neg, margin=(0.1, 3.0))
    one = torch.tensor(1.0, dtype=torch.float64, device=device)
    torch.testing.assert_close(out["negative"], one)
    assert out["active_neg"] == 1.0
    out["total"].backward()
    assert torch.isfinite(F_a.grad).all() and torch.isfinite(F_b.grad).all()
    masked = contrastive_loss(F_a, F_b, u_a, u_b, u_neg, torch.tensor([[False]], device=device))
    assert masked["total"] == 0
