"""Tests of bilinear sampling of feature maps with gradients (s2dloc.geometry.interpolation)."""

from __future__ import annotations

import torch

from s2dloc.geometry.interpolation import (
    feature_gradients,
    sample,
    sample_with_gradients,
    stack_with_gradients,
)

from ._helpers import assert_close, gen, randn

B, C, H, W = 2, 3, 9, 13


def _centres(h: int, w: int, dtype=torch.float64, device=None) -> tuple[torch.Tensor, ...]:
    """Pixel-centre coordinates ``u = j + 0.5``, ``v = i + 0.5`` as ``(h, w)`` grids."""
    rows = torch.arange(h, dtype=dtype, device=device) + 0.5
    cols = torch.arange(w, dtype=dtype, device=device) + 0.5
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    return u, v


def _affine_map(dtype=torch.float64, device=None):
    """Maps ``(B, C, H, W)`` with ``F[b, c](u, v) = a u + b v + c0`` and their coefficients."""
    coef = randn(B, C, 3, seed=0).to(device, dtype)
    u, v = _centres(H, W, dtype, device)
    fmap = coef[..., 0, None, None] * u + coef[..., 1, None, None] * v + coef[..., 2, None, None]
    return fmap, coef


def _inside_points(
    n: int, lo: float = 0.5, seed: int = 1, dtype=torch.float64, device=None
) -> torch.Tensor:
    """Random points ``(B, n, 2)`` in ``[lo, size - lo]``."""
    r = torch.rand(B, n, 2, generator=gen(seed), dtype=torch.float64).to(device, dtype)
    size = torch.tensor([W, H], dtype=dtype, device=device)
    return lo + r * (size - 2 * lo)


def test_affine_map_is_sampled_exactly(device, dtype):
    fmap, coef = _affine_map(dtype, device)
    pts = _inside_points(200, dtype=dtype, device=device)
    values, valid = sample(fmap, pts)
    assert values.shape == (B, 200, C) and valid.shape == (B, 200) and values.dtype == dtype
    assert values.device == valid.device == device
    expected = (pts[:, :, None, :] * coef[:, None, :, :2]).sum(-1) + coef[:, None, :, 2]
    assert_close(values, expected, dtype=dtype, atol=1e-5 if dtype == torch.float32 else 1e-12)
    assert valid.all()


def test_pixel_centres_return_the_pixel_values():
    fmap = randn(B, C, H, W, seed=2)
    u, v = _centres(H, W)
    pts = torch.stack([u, v], -1).reshape(1, -1, 2).expand(B, -1, 2)
    values, _ = sample(fmap, pts)
    assert_close(values, fmap.flatten(2).transpose(1, 2), atol=1e-14)
    # midway between two horizontal centres is their mean
    values, _ = sample(fmap, torch.tensor([[[2.0, 0.5]]], dtype=torch.float64).expand(B, 1, 2))
    assert_close(values[:, 0], fmap[:, :, 0, 1:3].mean(-1), atol=1e-14)


def test_affine_map_gradients_are_exact(device, dtype):
    fmap, coef = _affine_map(dtype, device)
    pts = _inside_points(200, lo=1.5, seed=3, dtype=dtype, device=device)  # off the borders
    values, grads, valid = sample_with_gradients(fmap, pts)
    assert grads.shape == (B, 200, C, 2) and values.shape == (B, 200, C)
    assert grads.device == values.device == valid.device == device
    expected = coef[:, None, :, :2].expand(B, 200, C, 2)
    assert_close(grads, expected, dtype=dtype, atol=1e-5 if dtype == torch.float32 else 1e-12)
    assert_close(values, sample(fmap, pts)[0], dtype=dtype)
    assert valid.all()


def test_border_mask():
    fmap = randn(1, C, H, W, seed=4)
    pts = torch.tensor(
        [
            [
                [0.5, 0.5],
                [W - 0.5, H - 0.5],
                [0.49, 3.0],
                [3.0, 0.49],
                [W - 0.49, 3.0],
                [3.0, H - 0.49],
                [-1.0, 2.0],
                [W / 2, H / 2],
            ]
        ],
        dtype=torch.float64,
    )
    _, valid = sample(fmap, pts)
    assert valid[0].tolist() == [True, True, False, False, False, False, False, True]
    _, valid = sample(fmap, pts, margin=2.0)
    assert valid[0].tolist() == [False] * 7 + [True]
    _, valid = sample(fmap, pts, margin=0.0)
    assert valid[0].tolist() == [True] * 6 + [False, True]
    _, _, valid_g = sample_with_gradients(fmap, pts, stacked=False)
    # Shifted samples need 1.5 px of clearance for an exact central difference.
    assert valid_g[0].tolist() == [False] * 7 + [True]
    edge = torch.tensor([[[1.5, 1.5], [W - 1.5, H - 1.5], [1.49, 3.0]]], dtype=torch.float64)
    assert sample_with_gradients(fmap, edge)[2][0].tolist() == [True, True, False]
    _, _, valid_s = sample_with_gradients(stack_with_gradients(fmap), pts, stacked=True)
    assert valid_s[0].tolist() == [True, True, False, False, False, False, False, True]


def test_outside_points_are_finite():
    fmap = randn(1, C, H, W, seed=5)
    pts = torch.tensor([[[-100.0, 5.0], [1e4, -3.0]]], dtype=torch.float64)
    values, grads, valid = sample_with_gradients(fmap, pts)
    assert torch.isfinite(values).all() and torch.isfinite(grads).all() and not valid.any()


def test_stacked_equals_unstacked(device):
    """Both paths agree wherever p +- 1 stays inside the span of pixel centres."""
    fmap = randn(B, C, H, W, seed=6, device=device)
    pts = _inside_points(50, lo=1.5, seed=7, device=device)
    stacked = stack_with_gradients(fmap)
    assert stacked.shape == (B, 3 * C, H, W)
    assert_close(stacked[:, :C], fmap, atol=0, rtol=0)
    a = sample_with_gradients(fmap, pts)
    b = sample_with_gradients(stacked, pts, stacked=True)
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape
        assert_close(x, y, atol=1e-12)


def test_stacked_affine_gradients_exact_up_to_the_border():
    """The stacked maps hold one-sided differences on the border, exact for an affine map."""
    fmap, coef = _affine_map()
    pts = _inside_points(200, lo=0.5, seed=11)
    pts[:, :4] = torch.tensor(
        [[0.5, 0.5], [W - 0.5, H - 0.5], [0.7, H - 0.6], [W - 1.0, 1.0]], dtype=torch.float64
    )
    _, grads, valid = sample_with_gradients(stack_with_gradients(fmap), pts, stacked=True)
    assert valid.all()
    assert_close(grads, coef[:, None, :, :2].expand(B, 200, C, 2), atol=1e-12)


def test_quadratic_map_central_differences_exact_at_centres():
    u, v = _centres(H, W)
    fmap = (0.3 * u**2 - 0.2 * u * v + 0.7 * v**2 + u)[None, None]
    grads = feature_gradients(fmap)
    assert grads.shape == (1, 2, 1, H, W)
    du, dv = 0.6 * u - 0.2 * v + 1, -0.2 * u + 1.4 * v
    inner = (slice(1, -1), slice(1, -1))
    assert_close(grads[0, 0, 0][inner], du[inner])
    assert_close(grads[0, 1, 0][inner], dv[inner])
    # borders use one-sided differences
    f = fmap[0, 0]
    assert_close(grads[0, 0, 0][:, 0], f[:, 1] - f[:, 0])
    assert_close(grads[0, 0, 0][:, -1], f[:, -1] - f[:, -2])
    assert_close(grads[0, 1, 0][0], f[1] - f[0])
    assert_close(grads[0, 1, 0][-1], f[-1] - f[-2])
    # sampled at interior centres, the gradients are the analytic ones
    pts = torch.stack([u, v], -1)[inner].reshape(1, -1, 2)
    _, g, _ = sample_with_gradients(fmap, pts)
    assert_close(g[0, :, 0], torch.stack([du[inner], dv[inner]], -1).reshape(-1, 2), atol=1e-12)


def test_gradcheck_sample(device):
    fmap = randn(1, 2, 5, 6, seed=8, device=device).requires_grad_()
    pts = (_inside_points(4, lo=0.7, seed=9, device=device)[:1] + 0.013).requires_grad_()

    def f(fmap, pts):
        values, grads, _ = sample_with_gradients(fmap, pts)
        return values, grads

    assert torch.autograd.gradcheck(f, (fmap, pts))


def test_sample_gradient_agrees_with_autograd_wrt_points(device):
    """For bilinear interpolation of a smooth (affine) map, d sample / d point = map gradient."""
    fmap, coef = _affine_map(device=device)
    pts = _inside_points(10, lo=1.5, seed=10, device=device).requires_grad_()
    values, _ = sample(fmap, pts)
    (g,) = torch.autograd.grad(values[..., 0].sum(), pts)
    assert_close(g, coef[:, None, 0, :2].expand(B, 10, 2), atol=1e-12)
