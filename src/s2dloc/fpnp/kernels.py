"""Compiled (numba) per-point kernels of the F-PnP residual model, for :mod:`s2dloc.fpnp.fast`.

Feature maps are read through a flat view of their storage and their strides (any memory
layout: channels-first, channels-last, slices), so no input map is ever copied whole; maps whose
channels are not adjacent go through a per-point texel cache (:func:`sample_gram`). The maths
mirrors :mod:`s2dloc.fpnp.levels`, :mod:`s2dloc.fpnp.jacobians` and :mod:`s2dloc.fpnp.losses`.
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
    """Clamped column/row indices ``x0-1 .. x0+2``, ``y0-1 .. y0+2``, bilinear weights and the
    cell ``(x0, y0)`` that determines the indices.

    Clamping the indices reproduces ``grid_sample``'s border padding.
    """
    fu, fv = u - 0.5, v - 0.5
    x0, y0 = int(math.floor(fu)), int(math.floor(fv))
    wx, wy = fu - x0, fv - y0
    xs = (_clamp(x0 - 1, Wm), _clamp(x0, Wm), _clamp(x0 + 1, Wm), _clamp(x0 + 2, Wm))
    ys = (_clamp(y0 - 1, Hm), _clamp(y0, Hm), _clamp(y0 + 1, Hm), _clamp(y0 + 2, Hm))
    return xs, ys, (1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy, x0, y0


@njit(cache=True, inline="always")
def _offsets(lay, u, v):
    """Element offsets in a map laid out as ``lay`` (see :func:`sample_gram`) of the 12 texels
    read at ``(u, v)``: ``rows`` (rows 0, 1, -1, 2 of the cell), ``cols`` (columns -1 .. 2),
    the bilinear ``weights`` and the cell ``(x0, y0)``."""
    off, sh, sw = lay[0], lay[1], lay[2]
    (xm, xa, xb, xp), (ym, ya, yb, yp), a, b, c_, d, x0, y0 = _taps(u, v, lay[4], lay[5])
    rows = (off + ya * sh, off + yb * sh, off + ym * sh, off + yp * sh)
    cols = (xm * sw, xa * sw, xb * sw, xp * sw)
    return rows, cols, (a, b, c_, d), x0, y0


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


# A cell's 12 texels in the texel cache: rows -1 and 2 hold only columns 0 and 1.
_ROW_A, _ROW_B, _ROW_M, _ROW_P = 0, 4, 7, 9  # row offsets in units of C; columns add 0..3


@njit(cache=True, inline="always")
def _fill_texels(flat, rows, cols, sc, C, buf, base):
    """Copy the 12 texels of a cell, all channels, to ``buf[base : base + 12 C]``.

    Texel ``(row, col)`` (rows and columns ordered -1, 0, 1, 2 around the cell) holds its
    ``C`` channels contiguously at ``(_ROW_<row> + col) C``: rows 0 and 1 take slots 0-7,
    rows -1 and 2 (columns 0 and 1 only) slots 8-11.
    """
    ra, rb, rm, rp = rows
    cm, ca, cb, cp = cols
    u = np.uint64  # unsigned indices (all are >= 0) skip negative-index handling
    for c in range(C):
        k = c * sc
        o = base + c
        buf[u(o)] = flat[u(ra + cm + k)]
        buf[u(o + C)] = flat[u(ra + ca + k)]
        buf[u(o + 2 * C)] = flat[u(ra + cb + k)]
        buf[u(o + 3 * C)] = flat[u(ra + cp + k)]
        buf[u(o + 4 * C)] = flat[u(rb + cm + k)]
        buf[u(o + 5 * C)] = flat[u(rb + ca + k)]
        buf[u(o + 6 * C)] = flat[u(rb + cb + k)]
        buf[u(o + 7 * C)] = flat[u(rb + cp + k)]
        buf[u(o + 8 * C)] = flat[u(rm + ca + k)]
        buf[u(o + 9 * C)] = flat[u(rm + cb + k)]
        buf[u(o + 10 * C)] = flat[u(rp + ca + k)]
        buf[u(o + 11 * C)] = flat[u(rp + cb + k)]


@njit(cache=True, inline="always")
def sample_gram(fmap, u, v, ref, i):
    """Gram entries of ``[dF/du, dF/dv, r]`` at pixel ``(u, v)`` for point ``i``.

    ``fmap = (flat, layout, texels, cells)``: a flat buffer and ``(offset, stride_h, stride_w,
    stride_c, H, W)`` in elements, so maps of any memory layout are read in place, and a
    per-point texel cache (:func:`s2dloc.fpnp.fast.bind_map`). The five bilinear samples at
    p, p +- e_u, p +- e_v share their fractional weights, so they read 12 pixels. Maps whose
    channels are not adjacent (``stride_c != 1``) are read through the cache: a point's 12
    texels are copied channels-last when it enters a new cell and re-read from there until it
    leaves.
    Returns ``(||r||^2, gu.gu, gu.gv, gv.gv, gu.r, gv.r)``.
    """
    flat, lay, texels, cells = fmap
    sc = lay[3]
    rows, cols, weights, x0, y0 = _offsets(lay, u, v)
    if sc == 1:  # channels-last: a unit stride the compiler can vectorize
        return _gram_loop(flat, rows, cols, weights, 1, ref, i)
    C = ref.shape[1]
    if texels.size == 0:
        return _gram_loop(flat, rows, cols, weights, sc, ref, i)
    base = cells[i, 0] * 12 * C
    if cells[i, 1] != x0 or cells[i, 2] != y0:
        _fill_texels(flat, rows, cols, sc, C, texels, base)
        cells[i, 1], cells[i, 2] = x0, y0
    rows = (base + _ROW_A * C, base + _ROW_B * C, base + _ROW_M * C, base + _ROW_P * C)
    return _gram_loop(texels, rows, (0, C, 2 * C, 3 * C), weights, 1, ref, i)


@njit(cache=True, inline="always")
def sample_values(fmap, u, v, i, out):
    """Bilinear values ``out (C,)`` of all channels at pixel ``(u, v)`` (border padding), read
    from point ``i``'s cached texels when they hold this cell (``fmap`` as in
    :func:`sample_gram`)."""
    flat, lay, texels, cells = fmap
    C = out.shape[0]
    (_, xa, xb, _), (_, ya, yb, _), a, b, c_, d, x0, y0 = _taps(u, v, lay[4], lay[5])
    if texels.size > 0 and cells[i, 1] == x0 and cells[i, 2] == y0:
        base = cells[i, 0] * 12 * C
        flat, sc, ra, rb, ca, cb = texels, 1, base + _ROW_A * C, base + _ROW_B * C, C, 2 * C
    else:
        off, sh, sw, sc = lay[0], lay[1], lay[2], lay[3]
        ra, rb, ca, cb = off + ya * sh, off + yb * sh, xa * sw, xb * sw
    u64 = np.uint64
    for c in range(C):
        k = c * sc
        out[c] = (
            a * flat[u64(ra + ca + k)]
            + b * flat[u64(ra + cb + k)]
            + c_ * flat[u64(rb + ca + k)]
            + d * flat[u64(rb + cb + k)]
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
def row_order(points, M, width, cam, has_dist, conf):
    """Points ``(N,)`` sorted by the image row they project to at ``M`` (invalid ones last).

    Visiting points row by row keeps the pixels (and memory pages) of consecutive points close,
    which matters most when the channels of a pixel are far apart in memory.
    """
    J = np.empty((2, 6))
    key = np.empty(points.shape[0])
    for i in range(points.shape[0]):
        X, Y, Z = transform(M, points, i)
        ok, _, v = project(X, Y, Z, cam, has_dist, conf[C_MARGIN], conf[C_MIN_DEPTH], J)
        key[i] = math.floor(v) * width if ok else np.inf
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
        sample_values(fmap, u, v, i, values[i])
    for k in range(n):
        i, j = order[k], order[(k + n // 2) % n]
        s = s_null = 0.0
        for c in range(C):
            s += (values[i, c] - ref[i, c]) ** 2
            s_null += (values[i, c] - ref[j, c]) ** 2
        sq[i], sq_null[i] = s, s_null


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def prefill_texels(points, M, fmap, C, weights, cam, has_dist, conf, order):
    """Fill the texel cache (``fmap`` as in :func:`sample_gram`, ``C`` channels) of every
    point of positive weight, in ``order``, with the cell it projects to at pose ``M (4, 4)``.

    The same copies the first evaluation at ``M`` would make, but the cells are found first
    and the copies then run in a loop that does nothing else, so the CPU keeps more of their
    scattered reads in flight. Results are unchanged: a point whose cell differs at the first
    evaluation is refilled there.
    """
    flat, lay, texels, cells = fmap
    J = np.empty((2, 6))
    taps = np.empty((order.shape[0], 9), dtype=np.int64)  # row offsets, column offsets, base
    n = 0
    for i in order:
        if not weights[i] > 0:
            continue
        X, Y, Z = transform(M, points, i)
        ok, u, v = project(X, Y, Z, cam, has_dist, conf[C_MARGIN], conf[C_MIN_DEPTH], J)
        if not ok:
            continue
        rows, cols, _, x0, y0 = _offsets(lay, u, v)
        t = taps[n]
        t[0], t[1], t[2], t[3] = rows
        t[4], t[5], t[6], t[7] = cols
        t[8] = cells[i, 0] * 12 * C
        cells[i, 1], cells[i, 2] = x0, y0
        n += 1
    for k in range(n):
        t = taps[k]
        rows, cols = (t[0], t[1], t[2], t[3]), (t[4], t[5], t[6], t[7])
        _fill_texels(flat, rows, cols, lay[3], C, texels, t[8])
