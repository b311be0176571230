"""The torch path's evaluation of one level: robust cost and IRLS normal equations.

For residual statistics :class:`~s2dloc.fpnp.levels.Residuals` at poses ``M (B, 4, 4)``, point
weights ``w (B, N)`` and robust loss ``rho``, the cost is ``sum_i w_i rho(||r_i||^2) / sum_i w_i``
over the valid points, and the normal equations are ``H = sum_i w_i rho'_i J_i^T G_i^T G_i J_i``
and ``g = sum_i w_i rho'_i J_i^T G_i^T r_i``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from s2dloc.fpnp.levels import Residuals
from s2dloc.fpnp.losses import RobustLoss


@dataclass
class Evaluation:
    """Cost (and normal equations) of a batch of ``B`` queries at one level.

    Attributes:
        cost: ``(B,)`` weight-normalised robust cost.
        num_valid: ``(B,)`` valid points with positive weight.
        depth: ``(B,)`` weighted mean depth of those points.
        wsum: ``(B,)`` sum of their weights (at least 1e-12).
        H: ``(B, 6, 6)`` IRLS Gauss-Newton matrix ``J^T W J`` (None without the system).
        g: ``(B, 6)`` gradient ``J^T W r`` (None without the system).
        res_var: ``(B,)`` IRLS-weighted sum of squared residual norms (None without the system).
        num_res: ``(B,)`` residual count, valid points x channels (None without the system).
    """

    cost: torch.Tensor
    num_valid: torch.Tensor
    depth: torch.Tensor
    wsum: torch.Tensor
    H: torch.Tensor | None = None
    g: torch.Tensor | None = None
    res_var: torch.Tensor | None = None
    num_res: torch.Tensor | None = None

    def where(self, mask: torch.Tensor, other: Evaluation) -> Evaluation:
        """This evaluation for the queries where ``mask (B,)`` holds, ``other`` elsewhere."""
        picked = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            picked[f.name] = None if a is None else _select(mask, a, b)
        return replace(self, **picked)


def evaluate_residuals(
    res: Residuals,
    point_weights: torch.Tensor,
    loss: RobustLoss,
    scale: torch.Tensor | float,
    system: bool = True,
) -> Evaluation:
    """Robust cost of ``res`` (and, if ``system``, the IRLS normal equations).

    ``point_weights (B, N)``; ``scale`` a float or ``(B, 1)`` loss scale.
    """
    w = point_weights * res.valid
    sq = res.sq
    rho, irls = loss(sq, scale)
    wsum = w.sum(-1).clamp_min(1e-12)
    num_valid = (w > 0).sum(-1)
    out = Evaluation(
        cost=(w * rho).sum(-1) / wsum,
        num_valid=num_valid,
        depth=(res.Xc[..., 2] * w).sum(-1) / wsum,
        wsum=wsum,
    )
    if not system:
        return out
    B, N = sq.shape
    ww = (w * irls)[..., None, None]
    A = (res.gram[..., :2, :2] @ res.J).reshape(B, 2 * N, 6)  # G^T G dp/ddelta
    Jw = (res.J * ww).reshape(B, 2 * N, 6).transpose(1, 2)
    out.H = Jw @ A
    out.g = (Jw @ res.gram[..., :2, 2].reshape(B, 2 * N, 1))[..., 0]
    out.res_var = (ww[..., 0, 0] * sq).sum(-1)
    out.num_res = num_valid * res.channels
    return out


def _select(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.where`` with ``mask (B,)`` broadcast over the trailing dims of ``a`` and ``b``."""
    return torch.where(mask.view(-1, *([1] * (a.dim() - 1))), a, b)
