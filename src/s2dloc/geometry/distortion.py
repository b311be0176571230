"""OPENCV-style radial-tangential lens distortion on normalized coordinates.

``dist = (k1, k2, p1, p2)``; SIMPLE_RADIAL and RADIAL are special cases with ``p = 0``.
"""

from __future__ import annotations

import torch


def distort(
    xy: torch.Tensor, dist: torch.Tensor, with_jacobian: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Distort normalized points ``(..., N, 2)`` with ``dist (..., 1, 4)``.

    Returns distorted points and, if requested, their Jacobian ``(..., N, 2, 2)``.
    """
    k1, k2, p1, p2 = dist.unbind(-1)
    x, y = xy.unbind(-1)
    x2, y2, xy_ = x * x, y * y, x * y
    r2 = x2 + y2
    radial = 1 + r2 * (k1 + k2 * r2)
    xd = x * radial + 2 * p1 * xy_ + p2 * (r2 + 2 * x2)
    yd = y * radial + p1 * (r2 + 2 * y2) + 2 * p2 * xy_
    out = torch.stack([xd, yd], -1)
    if not with_jacobian:
        return out, None
    dradial = 2 * (k1 + 2 * k2 * r2)  # d radial / d(x or y) divided by x or y
    dxd_dx = radial + x2 * dradial + 2 * p1 * y + 6 * p2 * x
    dxd_dy = xy_ * dradial + 2 * p1 * x + 2 * p2 * y
    dyd_dx = xy_ * dradial + 2 * p1 * x + 2 * p2 * y
    dyd_dy = radial + y2 * dradial + 6 * p1 * y + 2 * p2 * x
    J = torch.stack([dxd_dx, dxd_dy, dyd_dx, dyd_dy], -1).reshape(*xd.shape, 2, 2)
    return out, J


def distortion_valid(xy: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """Mask ``(..., N)`` where the radial distortion is still monotonic in the radius.

    Beyond the first radius where ``d(r * radial(r)) / dr <= 0`` the model folds back and
    projections are meaningless.
    """
    k1, k2 = dist[..., 0], dist[..., 1]
    r2 = (xy * xy).sum(-1)
    # g(u) = 1 + 3 k1 u + 5 k2 u^2 (u = r^2) must stay positive on all of [0, r2], not only at r2:
    # when k2 > 0 the parabola can dip below zero and rise again (fold-over, then a second branch).
    g = 1 + r2 * (3 * k1 + 5 * k2 * r2)
    k2_safe = torch.where(k2 > 0, k2, torch.ones_like(k2))
    u_min = -3 * k1 / (10 * k2_safe)  # vertex of g
    g_min = 1 - 9 * k1 * k1 / (20 * k2_safe)
    folded = (k2 > 0) & (u_min > 0) & (u_min < r2) & (g_min <= 0)
    return (g > 0) & ~folded


def undistort(xy_d: torch.Tensor, dist: torch.Tensor, iterations: int = 20) -> torch.Tensor:
    """Invert :func:`distort` with Newton's method; ``xy_d (..., N, 2)``, ``dist (..., 1, 4)``."""
    xy = xy_d.clone()
    for _ in range(iterations):
        pred, J = distort(xy, dist, with_jacobian=True)
        step = torch.linalg.solve(J, (pred - xy_d)[..., None])[..., 0]
        xy = xy - step
        if step.abs().max() < 1e-12:
            break
    return xy
