"""Compiled (numba) Levenberg-Marquardt loop of one level, for :mod:`s2dloc.fpnp.fast`.

Mirrors :meth:`s2dloc.fpnp.solver.FeatureMetricPnP._solve_level` and
:mod:`s2dloc.fpnp.linalg` (damped Cholesky solve, SE(3) exponential).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from s2dloc.fpnp.kernel_model import (
    C_COST_TOL,
    C_GRAD_TOL,
    C_LAMBDA_DOWN,
    C_LAMBDA_INIT,
    C_LAMBDA_MAX,
    C_LAMBDA_MIN,
    C_LAMBDA_UP,
    C_MAX_ITERS,
    C_MAX_REJ,
    C_MIN_POINTS,
    C_ROT_TOL,
    C_SCALE,
    C_TRANS_TOL,
)
from s2dloc.fpnp.kernels import evaluate


@njit(cache=True, inline="always")
def _cholesky(H, damping, floor, L):
    """Lower Cholesky factor of ``H + damping (diag(H)^+ + floor)`` into ``L``; False if not PD."""
    for a in range(6):
        for b in range(a + 1):
            s = H[a, b] + (damping * (max(H[a, a], 0.0) + floor) if a == b else 0.0)
            for k in range(b):
                s -= L[a, k] * L[b, k]
            if a == b:
                if not s > 0:
                    return False
                L[a, a] = math.sqrt(s)
            else:
                L[a, b] = s / L[b, b]
    return True


@njit(cache=True, inline="always")
def _cholesky_solve(L, g, out):
    """``out = -(L L^T)^-1 g``; zero if any entry is not finite."""
    y = np.empty(6)
    for a in range(6):
        s = -g[a]
        for k in range(a):
            s -= L[a, k] * y[k]
        y[a] = s / L[a, a]
    for a in range(5, -1, -1):
        s = y[a]
        for k in range(a + 1, 6):
            s -= L[k, a] * out[k]
        out[a] = s / L[a, a]
    for a in range(6):
        if not math.isfinite(out[a]):
            out[:] = 0.0


@njit(cache=True)
def damped_step(H, g, lam, out):
    """Solve ``(H + lam D) d = -g`` by Cholesky, raising damping on failure; zero if impossible."""
    dmax = 0.0
    for a in range(6):
        dmax = max(dmax, abs(H[a, a]))
    out[:] = 0.0
    if not dmax > 0 or not np.isfinite(H).all() or not np.isfinite(g).all():
        return
    L = np.empty((6, 6))
    damping = lam
    for _ in range(5):
        if _cholesky(H, damping, 1e-9 * dmax + 1e-30, L):
            _cholesky_solve(L, g, out)
            return
        damping *= 10.0


@njit(cache=True)
def exp_left(delta, M):
    """``exp(delta) @ M`` for ``delta = (rho, phi)`` (Rodrigues, with the SO(3) left Jacobian)."""
    wx, wy, wz = delta[3], delta[4], delta[5]
    th2 = wx * wx + wy * wy + wz * wz
    if th2 < 1e-8:
        A, B, Cc = 1 - th2 / 6, 0.5 - th2 / 24, 1.0 / 6 - th2 / 120
    else:
        th = math.sqrt(th2)
        A, B, Cc = math.sin(th) / th, (1 - math.cos(th)) / th2, (th - math.sin(th)) / (th2 * th)
    K = np.array([[0.0, -wz, wy], [wz, 0.0, -wx], [-wy, wx, 0.0]])
    K2 = K @ K
    E = np.eye(4)
    E[:3, :3] += A * K + B * K2
    V = np.eye(3) + B * K + Cc * K2
    E[:3, 3] = V @ delta[:3]
    return E @ M


@njit(cache=True)
def auto_scale(points, M, fmap, ref, weights, cam, has_dist, conf, order):
    """1.4826 x the (lower, as torch) median valid residual norm at ``M``; 1 if none."""
    sq = np.empty(points.shape[0])
    H, g = np.empty((6, 6)), np.empty(6)
    evaluate(points, M, fmap, ref, weights, cam, has_dist, conf, 1.0, H, g, sq, order)
    valid = np.sort(sq[sq >= 0])
    med = math.sqrt(valid[(valid.size - 1) // 2]) if valid.size > 0 else 1.0
    return max(1.4826 * med, 1e-6)


@njit(cache=True, inline="always")
def _converged(delta, g, cost, depth0, stalled, rejections, lam, conf):
    """The stopping tests of the torch path, after one (accepted or rejected) step."""
    rot = math.sqrt(delta[3] ** 2 + delta[4] ** 2 + delta[5] ** 2)
    tra = math.sqrt(delta[0] ** 2 + delta[1] ** 2 + delta[2] ** 2)
    small_step = rot < conf[C_ROT_TOL] and tra < conf[C_TRANS_TOL] * depth0
    small_grad = np.abs(g).max() <= conf[C_GRAD_TOL] * max(cost, 1e-30)
    stuck = rejections >= conf[C_MAX_REJ]
    return small_step or small_grad or stalled or stuck or not lam < conf[C_LAMBDA_MAX]


@njit(cache=True, nogil=True)
def solve_level(points, M, fmap, ref, weights, cam, has_dist, conf, H, g, order):
    """LM at one level for one query; updates ``M (4, 4)``, ``H``, ``g`` in place. Points are
    visited in ``order`` (:func:`~s2dloc.fpnp.kernels.row_order` at the level's start).

    Returns ``(iterations, ok, scale, cost, wsum, num_valid, res_var, num_res)``.
    """
    sq = np.empty(points.shape[0])
    scale = conf[C_SCALE]
    if scale <= 0:  # automatic: 1.4826 x median residual norm at the level's start
        scale = auto_scale(points, M, fmap, ref, weights, cam, has_dist, conf, order)
    ev = evaluate(points, M, fmap, ref, weights, cam, has_dist, conf, scale, H, g, sq, order)
    cost, wsum, nvalid, depth, res_var, nres = ev
    ok = active = nvalid >= conf[C_MIN_POINTS]
    lam, depth0 = conf[C_LAMBDA_INIT], max(depth, 1e-9)
    iters = rejections = 0
    delta, Hn, gn = np.zeros(6), np.empty((6, 6)), np.empty(6)
    for _ in range(int(conf[C_MAX_ITERS])):
        if not active:
            break
        damped_step(H, g, lam, delta)
        Mn = exp_left(delta, M)
        new = evaluate(
            points, Mn, fmap, ref, weights, cam, has_dist, conf, scale, Hn, gn, sq, order
        )
        accept = new[0] < cost and new[2] >= conf[C_MIN_POINTS]
        # Achieved (if accepted) or IRLS-model-predicted (if rejected) decrease of the cost.
        gain = cost - new[0] if accept else -((2.0 * g + H @ delta) * delta).sum() / wsum
        stalled = gain <= conf[C_COST_TOL] * cost
        if accept:
            M[:], H[:], g[:] = Mn, Hn, gn
            cost, wsum, nvalid, _, res_var, nres = new
            lam, rejections = lam * conf[C_LAMBDA_DOWN], 0
        else:
            lam, rejections = lam * conf[C_LAMBDA_UP], rejections + 1
        lam = min(max(lam, conf[C_LAMBDA_MIN]), conf[C_LAMBDA_MAX])
        iters += 1
        active = not _converged(delta, g, cost, depth0, stalled, rejections, lam, conf)
    return iters, ok, scale, cost, wsum, nvalid, res_var, nres
