"""Projection with the analytic Jacobian of pixels w.r.t. a left pose perturbation.

For ``X_c = exp(delta) T X`` with ``delta = (rho, phi)``, ``dX_c/ddelta = [I, -[X_c]_x]``; with
normalized coordinates ``x = X/Z, y = Y/Z`` the product with ``d(x, y)/dX_c`` has the closed form

    d(x, y)/ddelta = [[1/Z, 0, -x/Z, -x y, 1 + x^2, -y],
                      [0, 1/Z, -y/Z, -(1 + y^2), x y, x]]

then distortion (``d distorted / d(x, y)``) and focal lengths are applied on the left.
"""

from __future__ import annotations

import torch

from s2dloc.geometry import Camera
from s2dloc.geometry.distortion import distort, distortion_valid


def project_with_pose_jacobian(
    camera: Camera, Xc: torch.Tensor, margin: float = 0.0, min_depth: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixels ``(B, N, 2)``, validity ``(B, N)`` and ``d pixel / d delta`` ``(B, N, 2, 6)``.

    ``camera`` has batch shape ``(B,)``; ``Xc`` are camera-frame points ``(B, N, 3)``.
    Validity: in front (``Z > min_depth``), distortion valid, inside the image minus ``margin``.
    """
    Z = Xc[..., 2]
    valid = Z > min_depth
    iz = 1 / Z.clamp_min(min_depth)
    x, y = Xc[..., 0] * iz, Xc[..., 1] * iz
    xy_ = x * y
    zero = torch.zeros_like(x)
    J = torch.stack(
        [iz, zero, -x * iz, -xy_, 1 + x * x, -y, zero, iz, -y * iz, -1 - y * y, xy_, x], -1
    ).reshape(*x.shape, 2, 6)
    xy = torch.stack([x, y], -1)
    f = camera.f[:, None, :]
    if camera.has_distortion:
        dist = camera.dist[:, None, :]
        valid = valid & distortion_valid(xy, dist)
        xy, J_dist = distort(xy, dist, with_jacobian=True)
        J = J_dist @ J
    p = torch.addcmul(camera.c[:, None, :], xy, f)
    return p, valid & camera.in_image(p, margin), J * f[..., None]
