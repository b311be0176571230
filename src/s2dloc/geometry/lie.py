"""SO(3) and SE(3) exponential and logarithm maps on batched torch tensors.

Tangent vectors of SE(3) are ordered ``xi = (rho, phi)``: translation part first,
rotation part second. All functions broadcast over leading dimensions.
"""

from __future__ import annotations

import torch

_EPS = {torch.float16: 1e-2, torch.bfloat16: 1e-2, torch.float32: 1e-4, torch.float64: 1e-7}


def _small(dtype: torch.dtype) -> float:
    return _EPS.get(dtype, 1e-7)


def skew(v: torch.Tensor) -> torch.Tensor:
    """Skew-symmetric matrix ``[v]_x`` of vectors ``(..., 3)`` -> ``(..., 3, 3)``."""
    z = torch.zeros_like(v[..., 0])
    x, y, w = v.unbind(-1)
    return torch.stack([z, -w, y, w, z, -x, -y, x, z], dim=-1).reshape(*v.shape[:-1], 3, 3)


def _sinc_terms(theta2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``A = sin(t)/t``, ``B = (1-cos t)/t^2``, ``C = (t - sin t)/t^3`` for ``t^2``.

    Uses Taylor expansions near zero so that values and gradients stay finite.
    """
    small = theta2 < _small(theta2.dtype)
    t2 = torch.where(small, torch.ones_like(theta2), theta2)
    t = t2.sqrt()
    a = torch.where(small, 1 - theta2 / 6 + theta2**2 / 120, torch.sin(t) / t)
    b = torch.where(small, 0.5 - theta2 / 24 + theta2**2 / 720, (1 - torch.cos(t)) / t2)
    c = torch.where(small, 1 / 6 - theta2 / 120 + theta2**2 / 5040, (t - torch.sin(t)) / (t2 * t))
    return a, b, c


def _poly_skew(phi: torch.Tensor, c1, c2) -> torch.Tensor:
    """``I + c1 [phi]_x + c2 [phi]_x^2`` ``(..., 3, 3)``: the form of exp and its Jacobians."""
    K = skew(phi)
    eye = torch.eye(3, dtype=phi.dtype, device=phi.device)
    return eye + c1 * K + c2 * (K @ K)


def so3_exp(phi: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` from axis-angle vectors ``(..., 3)`` (Rodrigues)."""
    a, b, _ = _sinc_terms((phi * phi).sum(-1)[..., None, None])
    return _poly_skew(phi, a, b)


def so3_log(R: torch.Tensor) -> torch.Tensor:
    """Axis-angle vectors ``(..., 3)`` of rotation matrices ``(..., 3, 3)``.

    Accurate for all angles in [0, pi], including the neighbourhood of pi.
    """
    trace = R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2]
    cos = ((trace - 1) / 2).clamp(-1.0, 1.0)
    vee = torch.stack(
        [R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1
    )
    sin = 0.5 * vee.norm(dim=-1)
    theta = torch.atan2(sin, cos)
    small = theta < _small(R.dtype) ** 0.5
    near_pi = cos < -0.99
    # Generic case: phi = theta / (2 sin theta) * vee.
    denom = torch.where(small | near_pi, torch.ones_like(sin), 2 * sin)
    factor = torch.where(small, 0.5 + theta**2 / 12, theta / denom)
    phi = factor[..., None] * vee
    # Near pi: axis from the diagonal of R = cos I + (1-cos) a a^T + sin [a]_x.
    if near_pi.any():
        sym = (R + R.transpose(-1, -2)) / 2
        eye = torch.eye(3, dtype=R.dtype, device=R.device)
        aat = (sym - cos[..., None, None] * eye) / (1 - cos)[..., None, None].clamp_min(1e-12)
        idx = torch.diagonal(aat, dim1=-2, dim2=-1).argmax(-1)
        col = torch.gather(aat, -1, idx[..., None, None].expand(*aat.shape[:-1], 1))[..., 0]
        axis = col / col.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        sign = torch.where((axis * vee).sum(-1) < 0, -1.0, 1.0).to(R.dtype)
        phi = torch.where(near_pi[..., None], axis * (sign * theta)[..., None], phi)
    return phi


def so3_left_jacobian(phi: torch.Tensor) -> torch.Tensor:
    """Left Jacobian ``V(phi) = I + B [phi]_x + C [phi]_x^2`` of SO(3), ``(..., 3, 3)``."""
    _, b, c = _sinc_terms((phi * phi).sum(-1)[..., None, None])
    return _poly_skew(phi, b, c)


def so3_left_jacobian_inv(phi: torch.Tensor) -> torch.Tensor:
    """Inverse of the SO(3) left Jacobian, ``(..., 3, 3)``."""
    theta2 = (phi * phi).sum(-1)[..., None, None]
    a, b, _ = _sinc_terms(theta2)
    small = theta2 < _small(phi.dtype)
    safe = torch.where(small, torch.ones_like(theta2), theta2)
    d = torch.where(small, 1 / 12 + theta2 / 720, (1 - a / (2 * b)) / safe)
    return _poly_skew(phi, -0.5, d)


def se3_exp(xi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation ``(..., 3, 3)`` and translation ``(..., 3)`` of ``exp(xi)``, ``xi = (rho, phi)``."""
    rho, phi = xi[..., :3], xi[..., 3:]
    R = so3_exp(phi)
    t = (so3_left_jacobian(phi) @ rho[..., None])[..., 0]
    return R, t


def se3_log(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Tangent vector ``(..., 6) = (rho, phi)`` of the transform ``(R, t)``."""
    phi = so3_log(R)
    rho = (so3_left_jacobian_inv(phi) @ t[..., None])[..., 0]
    return torch.cat([rho, phi], -1)
