"""Compiled (numba) per-point kernels of the F-PnP residual model, for :mod:`s2dloc.fpnp.fast`.

Feature maps are read through a flat view of their storage and their strides (any memory
layout: channels-first, channels-last, slices), so no input map is ever copied. The maths mirrors
:mod:`s2dloc.fpnp.levels`, :mod:`s2dloc.fpnp.jacobians` and :mod:`s2dloc.fpnp.losses`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from s2dloc.fpnp.kernel_model import (
    C_ALPHA,
    C_LOSS,
    C_MARGIN,
    C_MIN_DEPTH,
    project,
    robust_loss,
    transform,
)


@njit(cache=True, inline="always")
def _clamp(i, size):
    return min(max(i, 0), size - 1)


@njit(cache=True, inline="always")
def _taps(u, v, Hm, Wm):
    """Clamped column/row indices ``x0-1 .. x0+2``, ``y0-1 .. y0+2`` and bilinear weights.

    Clamping the indices reproduces ``grid_sample``'s border padding.
    """
    fu, fv = u - 0.5, v - 0.5
    x0, y0 = int(math.floor(fu)), int(math.floor(fv))
    wx, wy = fu - x0, fv - y0
    xs = (_clamp(x0 - 1, Wm), _clamp(x0, Wm), _clamp(x0 + 1, Wm), _clamp(x0 + 2, Wm))
    ys = (_clamp(y0 - 1, Hm), _clamp(y0, Hm), _clamp(y0 + 1, Hm), _clamp(y0 + 2, Hm))
    return xs, ys, (1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy


@njit(cache=True, inline="always")
def _gram_loop(flat, rows, cols, weights, sc, ref, i):
    """Gram entries over channels at channel stride ``sc`` (see :func:`sample_gram`)."""
    ra, rb, rm, rp = rows
    cm, ca, cb, cp = cols
    a, b, c_, d = weights
    # Unsigned indices (all are >= 0) skip negative-index handling, which blocks vectorization.
    sq = guu = guv = gvv = gur = gvr = 0.0
    for c in range(ref.shape[1]):
        k = c * sc
        p_am, p_aa = flat[np.uint64(ra + cm + k)], flat[np.uint64(ra + ca + k)]
        p_ab, p_ap = flat[np.uint64(ra + cb + k)], flat[np.uint64(ra + cp + k)]
        p_bm, p_ba = flat[np.uint64(rb + cm + k)], flat[np.uint64(rb + ca + k)]
        p_bb, p_bp = flat[np.uint64(rb + cb + k)], flat[np.uint64(rb + cp + k)]
        p_ma, p_mb = flat[np.uint64(rm + ca + k)], flat[np.uint64(rm + cb + k)]
        p_pa, p_pb = flat[np.uint64(rp + ca + k)], flat[np.uint64(rp + cb + k)]
        r = a * p_aa + b * p_ab + c_ * p_ba + d * p_bb - ref[i, c]
        gu = 0.5 * (a * (p_ab - p_am) + b * (p_ap - p_aa) + c_ * (p_bb - p_bm) + d * (p_bp - p_ba))
        gv = 0.5 * (a * (p_ba - p_ma) + b * (p_bb - p_mb) + c_ * (p_pa - p_aa) + d * (p_pb - p_ab))
        sq += r * r
        guu += gu * gu
        guv += gu * gv
        gvv += gv * gv
        gur += gu * r
        gvr += gv * r
    return sq, guu, guv, gvv, gur, gvr


@njit(cache=True, inline="always")
def sample_gram(fmap, u, v, ref, i):
    """Gram entries of ``[dF/du, dF/dv, r]`` at pixel ``(u, v)`` for point ``i``.

    ``fmap = (flat, layout)``: a flat buffer and ``(offset, stride_h, stride_w, stride_c, H,
    W)`` in elements, so maps of any memory layout are read in place. The five bilinear
    samples at p, p +- e_u, p +- e_v share their fractional weights, so they read 12 pixels.
    Returns ``(||r||^2, gu.gu, gu.gv, gv.gv, gu.r, gv.r)``.
    """
    flat, lay = fmap
    off, sh, sw, sc = lay[0], lay[1], lay[2], lay[3]
    (xm, xa, xb, xp), (ym, ya, yb, yp), a, b, c_, d = _taps(u, v, lay[4], lay[5])
    rows = (off + ya * sh, off + yb * sh, off + ym * sh, off + yp * sh)
    cols = (xm * sw, xa * sw, xb * sw, xp * sw)
    if sc == 1:  # channels-last: a unit stride the compiler can vectorize
        return _gram_loop(flat, rows, cols, (a, b, c_, d), 1, ref, i)
    return _gram_loop(flat, rows, cols, (a, b, c_, d), sc, ref, i)


@njit(cache=True, inline="always")
def sample_value(fmap, u, v, c):
    """Bilinear value of channel ``c`` at pixel ``(u, v)`` (border padding), as above."""
    flat, lay = fmap
    off, sh, sw, sc = lay[0], lay[1], lay[2], lay[3]
    (_, xa, xb, _), (_, ya, yb, _), a, b, c_, d = _taps(u, v, lay[4], lay[5])
    ra, rb, ca, cb = off + ya * sh + c * sc, off + yb * sh + c * sc, xa * sw, xb * sw
    u64 = np.uint64
    return (
        a * flat[u64(ra + ca)]
        + b * flat[u64(ra + cb)]
        + c_ * flat[u64(rb + ca)]
        + d * flat[u64(rb + cb)]
    )


@njit(cache=True, inline="always")
def point_residual(points, i, M, fmap, ref, cam, has_dist, conf, J):
    """Project point ``i`` and sample its Gram entries; ``(ok, Z, gram tuple)``."""
    X, Y, Z = transform(M, points, i)
    ok, u, v = project(X, Y, Z, cam, has_dist, conf[C_MARGIN], conf[C_MIN_DEPTH], J)
    if not ok:
        return False, Z, (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    gram = sample_gram(fmap, u, v, ref, i)
    sq, guu, guv, gvv, gur, gvr = gram
    finite = math.isfinite(sq) and math.isfinite(guu + guv + gvv + gur + gvr)
    return finite, Z, gram


@njit(cache=True, inline="always")
def _accumulate(H, g, J, ww, gram):
    """``H += ww J^T G^T G J`` (upper triangle) and ``g += ww J^T G^T r``."""
    _, guu, guv, gvv, gur, gvr = gram
    for a in range(6):
        A0 = guu * J[0, a] + guv * J[1, a]
        A1 = guv * J[0, a] + gvv * J[1, a]
        g[a] += ww * (J[0, a] * gur + J[1, a] * gvr)
        for b in range(a, 6):
            H[a, b] += ww * (A0 * J[0, b] + A1 * J[1, b])


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def evaluate(points, M, fmap, ref, weights, cam, has_dist, conf, scale, H, g, sq_out, order):
    """Cost and IRLS normal equations at pose ``M (4, 4)`` for one query and level.

    ``points (N, 3)``, ``fmap`` as in :func:`sample_gram`, ``ref (N, C)``, ``weights (N,)``;
    points are visited in ``order (N,)`` (see :func:`row_order`). Fills ``H (6, 6)``,
    ``g (6,)`` and squared residual norms ``sq_out (N,)`` (-1 where invalid). Returns
    ``(cost, wsum, num_valid, mean depth, weighted residual sum, channels x num_valid)``.
    """
    loss_id, alpha, c2 = int(conf[C_LOSS]), conf[C_ALPHA], scale * scale
    H[:], g[:], sq_out[:] = 0.0, 0.0, -1.0
    cost = wsum = depth = res_var = 0.0
    nvalid = 0
    J = np.empty((2, 6))
    for i in order:
        w = weights[i]
        if not w > 0:
            continue
        ok, Z, gram = point_residual(points, i, M, fmap, ref, cam, has_dist, conf, J)
        if not ok:
            continue
        sq = gram[0]
        sq_out[i] = sq
        rho, irls = robust_loss(sq, c2, loss_id, alpha)
        cost, wsum, depth, nvalid = cost + w * rho, wsum + w, depth + w * Z, nvalid + 1
        res_var += w * irls * sq
        _accumulate(H, g, J, w * irls, gram)
    for a in range(6):
        for b in range(a):
            H[a, b] = H[b, a]
    denom = max(wsum, 1e-12)
    return cost / denom, wsum, nvalid, depth / denom, res_var, ref.shape[1] * nvalid


@njit(cache=True, nogil=True)
def row_order(points, M, fmap, cam, has_dist, conf):
    """Points ``(N,)`` sorted by the image row they project to at ``M`` (invalid ones last).

    Visiting points row by row keeps the pixels (and memory pages) of consecutive points close,
    which matters most when the channels of a pixel are far apart in memory.
    """
    J = np.empty((2, 6))
    key = np.empty(points.shape[0])
    for i in range(points.shape[0]):
        X, Y, Z = transform(M, points, i)
        ok, _, v = project(X, Y, Z, cam, has_dist, conf[C_MARGIN], conf[C_MIN_DEPTH], J)
        key[i] = math.floor(v) * fmap[1][5] if ok else np.inf
    return np.argsort(key, kind="mergesort")


@njit(cache=True, nogil=True)
def match_residuals(points, M, fmap, ref, weights, cam, has_dist, conf, sq, sq_null, sq_grad):
    """Squared residuals of valid points against their own and another point's reference.

    Valid points are those of :func:`evaluate`; the ``k``-th of ``n`` is paired with the
    ``(k + n // 2) % n``-th. Fills ``sq (N,)``, ``sq_null (N,)`` and the squared feature
    gradient norms ``sq_grad (N,)`` (NaN where invalid).
    """
    N, C = ref.shape
    J = np.empty((2, 6))
    values = np.empty((N, C))
    order = np.empty(N, dtype=np.int64)
    n = 0
    sq[:] = np.nan
    sq_null[:] = np.nan
    sq_grad[:] = np.nan
    for i in range(N):
        if not weights[i] > 0:
            continue
        X, Y, Z = transform(M, points, i)
        ok, u, v = project(X, Y, Z, cam, has_dist, conf[C_MARGIN], conf[C_MIN_DEPTH], J)
        valid, _, gram = point_residual(points, i, M, fmap, ref, cam, has_dist, conf, J)
        if not (ok and valid):
            continue
        sq_grad[i] = gram[1] + gram[3]
        order[n] = i
        n += 1
        for c in range(C):
            values[i, c] = sample_value(fmap, u, v, c)
    for k in range(n):
        i, j = order[k], order[(k + n // 2) % n]
        s = s_null = 0.0
        for c in range(C):
            s += (values[i, c] - ref[i, c]) ** 2
            s_null += (values[i, c] - ref[j, c]) ** 2
        sq[i], sq_null[i] = s, s_null
