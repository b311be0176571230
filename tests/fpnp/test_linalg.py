"""SE(3) exponential as a matrix, and the damped 6x6 solve that must never fail.

Every test runs on each ``device`` (inputs drawn on the CPU from seeded generators, then moved).
"""

from __future__ import annotations

import math

import torch

from s2dloc.fpnp.linalg import damped_solve, se3_exp_matrix
from s2dloc.geometry import Pose


def _spd(B: int, seed: int, device: torch.device, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(B, 6, 6, generator=g, dtype=torch.float64)
    return (A @ A.transpose(1, 2) + 0.5 * torch.eye(6, dtype=torch.float64)).to(device, dtype)


def test_se3_exp_matrix_matches_pose_exp(device, dtype, tol):
    g = torch.Generator().manual_seed(0)
    xi = torch.randn(16, 6, generator=g, dtype=torch.float64)
    xi[:, 3:] *= 0.8
    xi[0] = 0
    xi[1, 3:] = 1e-9  # near-identity rotation
    xi[2, 3:] = torch.tensor([0.0, 0.0, math.pi - 1e-3])  # near pi
    xi = xi.to(device, dtype)
    M = se3_exp_matrix(xi)
    assert M.device == xi.device and M.dtype == dtype
    torch.testing.assert_close(M, Pose.exp(xi).matrix(), **tol)


def test_se3_exp_matrix_known_values(device, tol):
    xi = torch.tensor([[1.0, 2.0, 3.0, 0, 0, 0], [0, 0, 0, 0, 0, math.pi / 2]], dtype=torch.float64)
    M = se3_exp_matrix(xi.to(device)).cpu()
    torch.testing.assert_close(M[0, :3, 3], xi[0, :3], **tol)  # pure translation
    torch.testing.assert_close(M[0, :3, :3], torch.eye(3, dtype=torch.float64), **tol)
    Rz = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(M[1, :3, :3], Rz, atol=1e-14, rtol=0)
    torch.testing.assert_close(M[:, 3], torch.tensor([[0.0, 0, 0, 1]] * 2, dtype=torch.float64))


def test_damped_solve_small_lambda_is_newton_step(device, dtype, tol):
    H = _spd(8, 0, device, dtype)
    g = torch.randn(8, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g = g.to(device, dtype)
    lam = torch.full((8,), 1e-12, dtype=dtype, device=device)
    # The reference solve in the same dtype: both agree up to round-off in it.
    expected = torch.linalg.solve(H, -g[..., None])[..., 0]
    step = damped_solve(H, g, lam)
    assert step.device == H.device and step.dtype == dtype
    torch.testing.assert_close(step, expected, **tol)


def test_damped_solve_known_system(device):
    # diag(H) = (2, 4, ...), so (H + lam diag(H)) x = -g is solvable by hand for a diagonal H.
    H = torch.diag(torch.tensor([2.0, 4.0, 1.0, 8.0, 0.5, 10.0], dtype=torch.float64))[None]
    g = torch.tensor([[2.0, -4.0, 3.0, 8.0, 1.0, -5.0]], dtype=torch.float64)
    lam = torch.tensor([1.0], dtype=torch.float64)
    step = damped_solve(H.to(device), g.to(device), lam.to(device)).cpu()
    expected = -g / (2 * H.diagonal(dim1=1, dim2=2))
    # rtol: D is diag(H) plus a tiny floor relative to its largest entry.
    torch.testing.assert_close(step, expected, rtol=1e-7, atol=0.0)


def test_damped_solve_large_lambda_shrinks_step(device):
    H, g = _spd(4, 2, device), torch.ones(4, 6, dtype=torch.float64, device=device)
    norms = [
        damped_solve(H, g, torch.full((4,), lam, dtype=torch.float64, device=device)).norm(dim=-1)
        for lam in (1e-6, 1.0, 1e3)
    ]
    assert (norms[1] < norms[0]).all() and (norms[2] < 1e-2 * norms[0]).all()
    # The step is always a descent direction.
    for lam in (1e-6, 1.0, 1e3):
        step = damped_solve(H, g, torch.full((4,), lam, dtype=torch.float64, device=device))
        assert ((step * g).sum(-1) < 0).all()


def test_damped_solve_degenerate_inputs(device, dtype, tol):
    """Each row is broken differently; good rows must be solved and bad ones get zero steps."""
    nan = math.nan
    eye = torch.eye(6, dtype=dtype)
    H = torch.stack([eye * 2] * 9)
    g = torch.ones(9, 6, dtype=dtype)
    H[1] = -eye  # negative definite
    H[2] = torch.diag(torch.tensor([1.0, 1, 1, 1, 1, -1e6], dtype=dtype))  # indefinite
    H[3] = 0  # no information at all
    H[4, 0, 0] = nan  # NaN on the diagonal
    H[5, 0, 1] = nan  # NaN off the diagonal, upper triangle (Cholesky does not read it)
    H[6, 4, 2] = math.inf
    g[7, 2] = nan
    g[8] = 0  # zero gradient: zero step, not NaN
    lam = torch.full((9,), 1e-3, dtype=dtype)
    step = damped_solve(H.to(device), g.to(device), lam.to(device)).cpu()
    assert torch.isfinite(step).all()
    torch.testing.assert_close(step[0], -g[0] / (2 * (1 + 1e-3)), **tol)
    for i in range(3, 9):
        assert (step[i] == 0).all(), f"row {i}: {step[i]}"
    # Indefinite rows: whatever is returned is finite and no larger than the undamped scale.
    assert step[1:3].abs().max() < 1e3


def test_damped_solve_indefinite_rescued_by_damping(device):
    # Slightly indefinite (eigenvalue -1e-4 against diag 1): the raised damping makes it PD.
    Q, _ = torch.linalg.qr(
        torch.randn(6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    )
    H = (Q @ torch.diag(torch.tensor([3.0, 2, 1, 1, 0.5, -1e-4], dtype=torch.float64)) @ Q.T)[None]
    g = torch.ones(1, 6, dtype=torch.float64)
    lam = torch.tensor([1e-8], dtype=torch.float64)
    step = damped_solve(H.to(device), g.to(device), lam.to(device)).cpu()
    assert torch.isfinite(step).all() and (step != 0).any()
    assert (step * g).sum() < 0  # still a descent direction


def test_damped_solve_never_raises_on_random_garbage(device):
    g = torch.Generator().manual_seed(4)
    H = torch.randn(64, 6, 6, generator=g, dtype=torch.float64) * 10 ** torch.randint(
        -30, 30, (64, 1, 1), generator=g
    )
    grad = torch.randn(64, 6, generator=g, dtype=torch.float64)
    H[::5, 1, 1] = math.nan
    grad[::7, 0] = math.inf
    lam = 10 ** torch.randint(-12, 6, (64,), generator=g).double()
    step = damped_solve(H.to(device), grad.to(device), lam.to(device))
    assert step.shape == (64, 6) and torch.isfinite(step).all()
