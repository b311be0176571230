"""Small dense linear algebra for the LM step: SE(3) exponential and a safe damped solve."""

from __future__ import annotations

import torch

from s2dloc.geometry.lie import skew

# Generators of se(3) for xi = (rho, phi): hat(xi) = xi @ _GENERATORS, reshaped to 4x4.
_GENERATORS = torch.zeros(6, 4, 4, dtype=torch.float64)
for _i in range(3):
    _GENERATORS[_i, _i, 3] = 1
    _GENERATORS[3 + _i, :3, :3] = skew(torch.eye(3, dtype=torch.float64)[_i])
_GENERATORS = _GENERATORS.reshape(6, 16)


def se3_exp_matrix(xi: torch.Tensor) -> torch.Tensor:
    """Homogeneous matrices ``(B, 4, 4)`` of ``exp(xi)`` for tangent vectors ``(B, 6)``."""
    twist = (xi @ _GENERATORS.to(xi)).reshape(-1, 4, 4)
    return torch.linalg.matrix_exp(twist)


def damped_solve(H: torch.Tensor, g: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """LM step ``-(H + lam D)^-1 g`` for ``H (B, 6, 6)``, ``g (B, 6)``, ``lam (B,)``.

    ``D`` is ``diag(H)`` floored relative to its largest entry, so the damped matrix is
    positive definite whenever ``lam > 0``. If Cholesky still fails (indefinite or
    non-finite ``H``) the damping is raised tenfold, up to four times; entries that never
    factorize, have an all-zero or non-finite ``H`` or ``g``, or give non-finite steps, get a
    zero step. Never raises, never returns NaN.
    """
    diag = H.diagonal(dim1=-2, dim2=-1)
    floor = 1e-9 * diag.abs().amax(-1, keepdim=True) + 1e-30
    D = torch.diag_embed(diag.clamp_min(0) + floor)
    damping = lam[:, None, None]
    step = torch.zeros_like(g)
    # No curvature (all-zero H: the floor alone would give a ~1e30 step) or non-finite input
    # (Cholesky reads one triangle only, so a NaN elsewhere would pass silently): zero step.
    todo = (diag.abs().amax(-1) > 0) & torch.isfinite(H).flatten(1).all(1)
    todo = todo & torch.isfinite(g).all(-1)
    for _ in range(5):
        L, info = torch.linalg.cholesky_ex(H + damping * D)
        good = todo & (info == 0)
        if bool(good.any()):
            sol = torch.cholesky_solve(-g[..., None], L)[..., 0]
            step = torch.where(good[:, None], sol, step)
        todo = todo & ~good
        if not bool(todo.any()):
            break
        damping = damping * 10
    return torch.where(torch.isfinite(step), step, torch.zeros_like(step))
