"""Compiled (numba) scalar pieces of the F-PnP residual model, for :mod:`s2dloc.fpnp.kernels`:
the layout of the kernels' settings vector, the robust losses, and projection with the pose
Jacobian (mirroring :mod:`s2dloc.fpnp.losses` and :mod:`s2dloc.fpnp.jacobians`).
"""

from __future__ import annotations

import math

from numba import njit

from s2dloc.fpnp.compiled_cache import drop_stale_kernels

drop_stale_kernels()  # before any kernel is loaded from numba's cache

LOSS_IDS = {"squared": 0, "cauchy": 1, "huber": 2, "barron": 3}
CONF_NAMES = (
    "margin",
    "min_depth",
    "lambda_init",
    "lambda_up",
    "lambda_down",
    "lambda_min",
    "lambda_max",
    "rotation_tol",
    "translation_tol",
    "gradient_tol",
    "cost_tol",
    "max_rejections",
    "max_iterations",
    "min_points",
    "loss",
    "alpha",
    "scale",
)
# Indices into the float64 ``conf`` vector passed to the kernels.
(
    C_MARGIN,
    C_MIN_DEPTH,
    C_LAMBDA_INIT,
    C_LAMBDA_UP,
    C_LAMBDA_DOWN,
    C_LAMBDA_MIN,
    C_LAMBDA_MAX,
    C_ROT_TOL,
    C_TRANS_TOL,
    C_GRAD_TOL,
    C_COST_TOL,
    C_MAX_REJ,
    C_MAX_ITERS,
    C_MIN_POINTS,
    C_LOSS,
    C_ALPHA,
    C_SCALE,
) = range(len(CONF_NAMES))


@njit(cache=True, inline="always")
def robust_loss(s, c2, loss_id, alpha):
    """``rho(s)`` and ``rho'(s)`` as in :class:`~s2dloc.fpnp.losses.RobustLoss`."""
    if loss_id == 0:
        return s, 1.0
    u = s / c2
    if loss_id == 1:
        return c2 * math.log1p(u), 1.0 / (1.0 + u)
    if loss_id == 2:
        if s <= c2:
            return s, 1.0
        root = math.sqrt(max(s, 1e-30))
        c = math.sqrt(c2)
        return 2.0 * c * root - c2, c / root
    if alpha == 2.0:
        return s, 1.0
    if alpha == 0.0:
        return 2.0 * c2 * math.log1p(u / 2.0), 1.0 / (1.0 + u / 2.0)
    if math.isinf(alpha) and alpha < 0:
        w = math.exp(-u / 2.0)
        return 2.0 * c2 * (1.0 - w), w
    b = abs(alpha - 2.0)
    base = u / b + 1.0
    return 2.0 * c2 * (b / alpha) * (base ** (alpha / 2.0) - 1.0), base ** (alpha / 2.0 - 1.0)


@njit(cache=True, inline="always")
def _distort(x, y, J, k1, k2, p1, p2):
    """OPENCV distortion ``(ok, xd, yd)`` of ``(x, y)``, applied to ``J (2, 6)`` in place."""
    r2 = x * x + y * y
    if not 1.0 + r2 * (3.0 * k1 + 5.0 * k2 * r2) > 0:
        return False, x, y
    radial = 1.0 + r2 * (k1 + k2 * r2)
    dr = 2.0 * (k1 + 2.0 * k2 * r2)
    a00 = radial + x * x * dr + 2.0 * p1 * y + 6.0 * p2 * x
    a01 = x * y * dr + 2.0 * p1 * x + 2.0 * p2 * y
    a11 = radial + y * y * dr + 6.0 * p1 * y + 2.0 * p2 * x
    for k in range(6):
        j0, j1 = J[0, k], J[1, k]
        J[0, k] = a00 * j0 + a01 * j1
        J[1, k] = a01 * j0 + a11 * j1
    xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    return True, xd, yd


@njit(cache=True, inline="always")
def project(X, Y, Z, cam, has_dist, margin, min_depth, J):
    """Pixel ``(u, v)`` of a camera-frame point and ``d pixel / d delta`` in ``J (2, 6)``.

    ``cam = (fx, fy, cx, cy, k1, k2, p1, p2, width, height)``. Returns ``(ok, u, v)``, ok False
    behind the camera, where the distortion is not invertible, or outside the image - margin.
    """
    if not Z > min_depth:
        return False, 0.0, 0.0
    iz = 1.0 / Z
    x, y = X * iz, Y * iz
    # d(x, y)/ddelta for the left perturbation (see jacobians.py).
    J[0, 0], J[0, 1], J[0, 2] = iz, 0.0, -x * iz
    J[0, 3], J[0, 4], J[0, 5] = -x * y, 1.0 + x * x, -y
    J[1, 0], J[1, 1], J[1, 2] = 0.0, iz, -y * iz
    J[1, 3], J[1, 4], J[1, 5] = -1.0 - y * y, x * y, x
    if has_dist:
        ok, x, y = _distort(x, y, J, cam[4], cam[5], cam[6], cam[7])
        if not ok:
            return False, 0.0, 0.0
    u, v = cam[0] * x + cam[2], cam[1] * y + cam[3]
    if not (u >= margin and u <= cam[8] - margin and v >= margin and v <= cam[9] - margin):
        return False, u, v
    for k in range(6):
        J[0, k] *= cam[0]
        J[1, k] *= cam[1]
    return True, u, v


@njit(cache=True, inline="always")
def transform(M, points, i):
    """Camera-frame coordinates of point ``i`` at pose ``M (4, 4)``."""
    x, y, z = points[i, 0], points[i, 1], points[i, 2]
    X = M[0, 0] * x + M[0, 1] * y + M[0, 2] * z + M[0, 3]
    Y = M[1, 0] * x + M[1, 1] * y + M[1, 2] * z + M[1, 3]
    Z = M[2, 0] * x + M[2, 1] * y + M[2, 2] * z + M[2, 3]
    return X, Y, Z
