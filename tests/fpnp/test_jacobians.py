"""Analytic Jacobians of the F-PnP residuals against autograd (float64).

The feature maps in the gradient/Hessian checks are chosen in span{1, u, v, uv}: bilinear
interpolation reproduces them exactly and their central differences are exact derivatives, so
the solver's sampled gradients must equal autograd of the continuous functions to round-off.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.fpnp.jacobians import project_with_pose_jacobian
from s2dloc.fpnp.levels import Level
from s2dloc.geometry import Camera, Pose

D = torch.float64
W, H = 64, 48

CAMERAS = {
    "SIMPLE_PINHOLE": [50.0, 31.0, 25.0],
    "PINHOLE": [52.0, 47.0, 33.0, 23.5],
    "SIMPLE_RADIAL": [50.0, 31.0, 25.0, -0.12],
    "RADIAL": [50.0, 32.0, 24.0, -0.1, 0.03],
    "OPENCV": [52.0, 47.0, 33.0, 23.5, -0.08, 0.02, 1e-3, -2e-3],
}


def _pose(seed: int = 0) -> Pose:
    g = torch.Generator().manual_seed(seed)
    xi = torch.randn(6, generator=g, dtype=D) * torch.tensor([0.3, 0.3, 0.3, 0.1, 0.1, 0.1])
    return Pose.exp(xi)


def _points_in_view(T: Pose, camera: Camera, n: int, seed: int = 0, margin: float = 4.0):
    """World points ``(n, 3)`` whose projections under ``T`` fall inside ``camera``'s image."""
    g = torch.Generator().manual_seed(seed)
    size = camera.size
    p = margin + torch.rand(n, 2, generator=g, dtype=D) * (size - 2 * margin)
    depth = 3 + 3 * torch.rand(n, generator=g, dtype=D)
    Xc = camera.unproject(p[None], depth[None])[0]
    return T.inv().transform(Xc)


def _bilinear_functions(p: torch.Tensor) -> torch.Tensor:
    """Channels in span{1, u, v, uv} at continuous pixels ``(..., 2)`` -> ``(..., 4)``."""
    u, v = p[..., 0], p[..., 1]
    return torch.stack(
        [0.1 * u, 0.05 * v - 1, 0.002 * u * v, 0.3 * u - 0.2 * v + 0.001 * u * v + 1], -1
    )


def _bilinear_maps() -> torch.Tensor:
    """The functions above sampled at pixel centres (COLMAP: ``+0.5``): ``(1, 4, H, W)``."""
    v, u = torch.meshgrid(
        torch.arange(H, dtype=D) + 0.5, torch.arange(W, dtype=D) + 0.5, indexing="ij"
    )
    return _bilinear_functions(torch.stack([u, v], -1)).permute(2, 0, 1)[None]


@pytest.mark.parametrize("model", list(CAMERAS))
def test_pose_jacobian_matches_autograd(model):
    camera = Camera.from_colmap(model, W, H, CAMERAS[model])
    T = _pose(1)
    X = _points_in_view(T, camera, 20, seed=2)
    Xc = T.transform(X)
    cam_b = Camera(model, camera.size[None], camera.params[None])
    p, valid, J = project_with_pose_jacobian(cam_b, Xc[None])
    assert valid.all()

    def pixels(delta):
        return camera.project((Pose.exp(delta) @ T).transform(X))[0]

    J_auto = jacobian(pixels, torch.zeros(6, dtype=D))  # (N, 2, 6)
    torch.testing.assert_close(p[0], pixels(torch.zeros(6, dtype=D)), rtol=0, atol=1e-10)
    torch.testing.assert_close(J[0], J_auto, rtol=1e-9, atol=1e-9)


def test_pose_jacobian_validity():
    camera = Camera.from_colmap("PINHOLE", W, H, CAMERAS["PINHOLE"])
    cam_b = Camera("PINHOLE", camera.size[None], camera.params[None])
    Xc = torch.tensor(
        [[[0.0, 0, 5], [0, 0, -5], [0, 0, 1e-4], [10, 0, 1], [0.5, 0.0, 1.0]]], dtype=D
    )
    p, valid, J = project_with_pose_jacobian(cam_b, Xc, margin=1.0)
    # in front and centred; behind; too close; far outside; u = 52*0.5 + 33 = 59 <= 64 - 1
    assert valid[0].tolist() == [True, False, False, False, True]
    torch.testing.assert_close(p[0, 0], torch.tensor([33.0, 23.5], dtype=D))
    assert torch.isfinite(J).all()
    _, valid, _ = project_with_pose_jacobian(cam_b, Xc, margin=6.0)
    assert not valid[0, 4]  # 59 > 64 - 6


def _level(seed: int = 0, n: int = 15):
    camera = Camera.from_colmap("PINHOLE", W, H, CAMERAS["PINHOLE"])
    cam_b = Camera("PINHOLE", camera.size[None], camera.params[None])
    T = _pose(seed)
    X = _points_in_view(T, camera, n, seed=seed + 10)
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(1, n, 4, generator=g, dtype=D)
    return Level(_bilinear_maps(), ref, cam_b), camera, T, X


def test_level_residuals_gradcheck(device):
    T = _pose(0)
    g = torch.Generator().manual_seed(5)
    maps = torch.randn(1, 2, 10, 12, generator=g, dtype=D)  # non-bilinear, tiny
    ref = torch.randn(1, 6, 2, generator=g, dtype=D)
    cam = Camera(
        "PINHOLE",
        torch.tensor([[12.0, 10.0]], dtype=D),
        torch.tensor([[10.0, 10.0, 6.0, 5.0]], dtype=D),
    )
    X = _points_in_view(T, cam[0], 6, seed=3, margin=2.5)
    cam = cam.to(device)

    def fn(maps, ref, points, M):
        res = Level(maps, ref, cam).residuals(points, M, 0.0, 1e-3)
        assert res.valid.all()
        return res.J, res.gram

    inputs = (maps, ref, X[None], T.matrix()[None])
    inputs = tuple(x.to(device).clone().requires_grad_() for x in inputs)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_residuals_match_continuous_functions():
    level, camera, T, X = _level(1)
    res = level.residuals(X[None], T.matrix()[None], 1.0, 1e-3)
    assert res.channels == 4 and res.valid.all()
    p = camera.project(res.Xc[0])[0]
    r = _bilinear_functions(p) - level.ref[0]
    torch.testing.assert_close(res.sq[0], (r * r).sum(-1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss, scale", [("squared", None), ("cauchy", 0.7), ("huber", 0.5)])
def test_solver_gradient_and_hessian_match_autograd(loss, scale):
    """``g = d/d delta 0.5 sum w rho(||r||^2)`` and ``H = J^T diag(w rho') J`` at ``delta = 0``."""
    level, camera, T, X = _level(2, n=25)
    g = torch.Generator().manual_seed(7)
    weights = 1.0 if loss == "squared" else 0.2 + torch.rand(1, 25, generator=g, dtype=D)
    solver = FeatureMetricPnP(loss=loss, loss_scale=scale)
    point_weights = torch.ones(1, 25, dtype=D) * weights
    ev = solver._evaluate(level, X[None], point_weights, T.matrix()[None], solver.loss.scale)

    def residuals(delta):
        p = camera.project((Pose.exp(delta) @ T).transform(X))[0]
        return _bilinear_functions(p) - level.ref[0]  # (N, C)

    def cost(delta):
        s = (residuals(delta) ** 2).sum(-1)
        return 0.5 * (point_weights[0] * solver.loss(s)[0]).sum()

    zero = torch.zeros(6, dtype=D)
    g_auto = torch.autograd.functional.jacobian(cost, zero)
    torch.testing.assert_close(ev.g[0], g_auto, rtol=1e-9, atol=1e-10)

    Jr = jacobian(residuals, zero)  # (N, C, 6)
    s = (residuals(zero) ** 2).sum(-1)
    w = point_weights[0] * solver.loss(s)[1]
    H_auto = torch.einsum("n,nci,ncj->ij", w, Jr, Jr)
    torch.testing.assert_close(ev.H[0], H_auto, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(ev.H[0], ev.H[0].T)
    # The reported cost is the weight-normalised robust cost.
    expected_cost = (point_weights[0] * solver.loss(s)[0]).sum() / point_weights[0].sum()
    torch.testing.assert_close(ev.cost[0], expected_cost, rtol=1e-12, atol=0.0)
    assert ev.num_valid.item() == 25
