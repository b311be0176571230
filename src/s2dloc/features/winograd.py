"""5x5 convolutions by Winograd's minimal filtering F(4x4, 5x5) (inference, float32 CPUs).

A 5x5 convolution of ``Ci`` to ``Co`` channels costs ``25 Ci Co`` multiply-adds per output
pixel. Winograd's algorithm (Lavin and Gray, "Fast algorithms for convolutional neural
networks", CVPR 2016) computes a 4x4 block of outputs from the 8x8 input tile around it as
``A^T [(G g G^T) * (B^T d B)] A``: the channel sums become 64 matrix products, one per
transformed position, with ``4 Ci Co`` multiply-adds per output pixel (6.25x fewer), and the
transforms are a few additions per value. The interpolation points are 0, +-1, +-2, +-1/2
and infinity, whose transforms are exact in binary and keep float32 results within about
1e-5 of the direct convolution's largest output (the tests bound it).

Here the input is channels-last float32 and so is the output. Each tile row of the output (4
image rows) is one step: the input transform of its 8 input rows (compiled, vectorised over
channels), one batched matrix product ``(64, tiles, Ci) @ (64, Ci, Co)`` (torch; the bias
enters as the product's initial value at the one position whose output transform is
constant), then the output transform. Tile rows are split over ``torch.get_num_threads()``
workers of the calling thread's pool, each with its own buffers; every tile row is computed
the same way whatever the split, so the result does not depend on the number of threads.

Where the CPU has native bfloat16 the DISK decoder convolves in bfloat16 instead
(:func:`s2dloc.features.fused.native_bf16`); elsewhere (AVX2 without AVX-512) a 5x5
convolution of 80 to 32 channels at 640x480 takes about 0.35x the direct float32 time.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from numba import njit

from s2dloc.features.fused import in_threads, workspace

POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5)  # and infinity
# B^T of F(4, 5) for these points (the input transform below computes its rows).
BT = np.array([
    [-1,    0, 5.25,     0, -5.25,     0, 1, 0],
    [ 0,    1,    1, -4.25, -4.25,     1, 1, 0],
    [ 0,   -1,    1,  4.25, -4.25,    -1, 1, 0],
    [ 0,  0.5, 0.25,  -2.5, -1.25,     2, 1, 0],
    [ 0, -0.5, 0.25,   2.5, -1.25,    -2, 1, 0],
    [ 0,    2,    4,  -2.5,    -5,   0.5, 1, 0],
    [ 0,   -2,    4,   2.5,    -5,  -0.5, 1, 0],
    [ 0,   -1,    0,  5.25,     0, -5.25, 0, 1],
], dtype=np.float64)  # fmt: skip
# The output transform's position whose 4x4 output is all ones (point 1 in both directions).
BIAS_POSITION = 9
FM = {"contract"}  # let multiply-adds fuse; no other reordering
# The transforms' coefficients in float32 (float64 literals would widen the arithmetic).
K0125, K025, K05, K125, K2, K25, K4, K425, K5, K525, K8 = (
    np.float32(v) for v in (0.125, 0.25, 0.5, 1.25, 2.0, 2.5, 4.0, 4.25, 5.0, 5.25, 8.0)
)


def output_matrix() -> np.ndarray:
    """``A^T (4, 8)``: row ``i`` is the points to the power ``i``; infinity adds to the last."""
    at = np.zeros((4, 8))
    for j, p in enumerate(POINTS):
        at[:, j] = [p**i for i in range(4)]
    at[3, 7] = 1.0
    return at


def filter_matrix() -> np.ndarray:
    """``G (8, 5)``: the filter evaluated at each point over the product of its distances to
    the other points (Lagrange interpolation); infinity takes the last coefficient."""
    g = np.zeros((8, 5))
    for j, p in enumerate(POINTS):
        scale = np.prod([p - q for q in POINTS if q != p])
        g[j] = [p**k / scale for k in range(5)]
    g[7, 4] = 1.0
    return g


class WinogradWeights(NamedTuple):
    """A 5x5 convolution's weights in the transformed domain."""

    weight: torch.Tensor  # (64, Ci, Co) float32: G w G^T per input and output channel
    bias: torch.Tensor  # (64, 1, Co) float32: the bias at BIAS_POSITION, zero elsewhere


def winograd_weights(weight: torch.Tensor, bias: torch.Tensor | None) -> WinogradWeights:
    """The transformed ``weight (Co, Ci, 5, 5)`` and ``bias (Co,)`` (None: zero), computed in
    float64."""
    Co, Ci = weight.shape[:2]
    if weight.shape[2:] != (5, 5):
        raise ValueError(f"expected a 5x5 weight, got {tuple(weight.shape)}")
    g = torch.from_numpy(filter_matrix())
    u = torch.einsum("ak,oikl,bl->abio", g, weight.detach().cpu().double(), g)
    b = torch.zeros(64, 1, Co)
    if bias is not None:
        b[BIAS_POSITION, 0] = bias.detach().cpu().float()
    return WinogradWeights(u.reshape(64, Ci, Co).float().contiguous(), b)


@njit(cache=True, nogil=True, fastmath=FM, inline="always")
def _bt(d0, d1, d2, d3, d4, d5, d6, d7):
    """``B^T d`` of 8 values (the rows of :data:`BT`, sharing their common terms)."""
    p, q = d2 + d6 - K425 * d4, d1 + d5 - K425 * d3
    r, s = K025 * d2 + d6 - K125 * d4, K05 * d1 - K25 * d3 + K2 * d5
    t, u = K4 * d2 + d6 - K5 * d4, K2 * d1 - K25 * d3 + K05 * d5
    first, last = d6 - d0 + K525 * (d2 - d4), d7 - d1 + K525 * (d3 - d5)
    return first, p + q, p - q, r + s, r - s, t + u, t - u, last


@njit(cache=True, nogil=True, fastmath=FM, inline="always")
def _at(m0, m1, m2, m3, m4, m5, m6, m7):
    """``A^T m`` of 8 values (:func:`output_matrix`, sharing common terms)."""
    e1, f1, e2, f2, e3, f3 = m1 + m2, m1 - m2, m3 + m4, m3 - m4, m5 + m6, m5 - m6
    return (
        m0 + e1 + e2 + e3,
        f1 + K2 * f2 + K05 * f3,
        e1 + K4 * e2 + K025 * e3,
        f1 + K8 * f2 + K0125 * f3 + m7,
    )


@njit(cache=True, nogil=True, fastmath=FM)
def _rows_of(x, y0, zero):
    """Rows ``y0 .. y0 + 7`` of ``x (H, n)``, ``zero`` for those outside."""
    H = x.shape[0]
    r = [zero] * 8
    for i in range(8):
        if 0 <= y0 + i < H:
            r[i] = x[y0 + i]
    return r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]


@njit(cache=True, nogil=True, fastmath=FM)
def _input_rows(x, zero, T, U, C, tr):
    """Tile row ``tr`` of ``x (H, W C)`` (channels-last rows of ``C`` channels) into
    ``U (64, ntx C)``: first ``B^T`` down its 8 input rows into ``T (8, (4 ntx + 8) C)``
    (columns ``0:2C`` and from ``2C + W C`` must be zero: the padding), then ``B^T`` along
    each tile's 8 columns. Every loop runs over contiguous values of arrays taken once."""
    WC, ntx, off = x.shape[1], U.shape[1] // C, 2 * C
    x0, x1, x2, x3, x4, x5, x6, x7 = _rows_of(x, 4 * tr - 2, zero)
    T0, T1, T2, T3 = T[0, off:], T[1, off:], T[2, off:], T[3, off:]
    T4, T5, T6, T7 = T[4, off:], T[5, off:], T[6, off:], T[7, off:]
    for k in range(WC):
        v = _bt(x0[k], x1[k], x2[k], x3[k], x4[k], x5[k], x6[k], x7[k])
        T0[k], T1[k], T2[k], T3[k], T4[k], T5[k], T6[k], T7[k] = v
    for a in range(8):
        # s_j[t * 4C + c]: column 4t + j of the padded row a (channel c)
        s0, s1, s2, s3 = T[a, 0:], T[a, C:], T[a, 2 * C :], T[a, 3 * C :]
        s4, s5, s6, s7 = T[a, 4 * C :], T[a, 5 * C :], T[a, 6 * C :], T[a, 7 * C :]
        o0, o1, o2, o3 = U[8 * a], U[8 * a + 1], U[8 * a + 2], U[8 * a + 3]
        o4, o5, o6, o7 = U[8 * a + 4], U[8 * a + 5], U[8 * a + 6], U[8 * a + 7]
        for t in range(ntx):
            i0, k0 = 4 * C * t, C * t
            for c in range(C):
                i, k = i0 + c, k0 + c
                v = _bt(s0[i], s1[i], s2[i], s3[i], s4[i], s5[i], s6[i], s7[i])
                o0[k], o1[k], o2[k], o3[k], o4[k], o5[k], o6[k], o7[k] = v


@njit(cache=True, nogil=True, fastmath=FM)
def _output_rows(M, y, R, Co, tr):
    """``A^T M A`` of tile row ``tr`` from ``M (64, ntx Co)`` into the rows of ``y (H, W Co)``
    (channels-last; tiles past the image's edge are cut): ``A^T`` over each tile's 8 columns
    into ``R (8, 4, ntx Co)``, then down its 8 rows."""
    H, WCo, n = y.shape[0], y.shape[1], M.shape[1]
    for a in range(8):
        m0, m1, m2, m3 = M[8 * a], M[8 * a + 1], M[8 * a + 2], M[8 * a + 3]
        m4, m5, m6, m7 = M[8 * a + 4], M[8 * a + 5], M[8 * a + 6], M[8 * a + 7]
        q0, q1, q2, q3 = R[a, 0], R[a, 1], R[a, 2], R[a, 3]
        for k in range(n):
            q0[k], q1[k], q2[k], q3[k] = _at(m0[k], m1[k], m2[k], m3[k], m4[k], m5[k], m6[k], m7[k])
    rows, y0 = min(4, H - 4 * tr), 4 * tr
    for j in range(4):
        p0, p1, p2, p3 = R[0, j], R[1, j], R[2, j], R[3, j]
        p4, p5, p6, p7 = R[4, j], R[5, j], R[6, j], R[7, j]
        if rows == 4 and WCo == 4 * n:  # a whole tile row: four output rows at once
            jc = j * Co
            r0, r1, r2, r3 = y[y0, jc:], y[y0 + 1, jc:], y[y0 + 2, jc:], y[y0 + 3, jc:]
            for t in range(n // Co):
                k0, i0 = Co * t, 4 * Co * t
                for c in range(Co):
                    k, i = k0 + c, i0 + c
                    v = _at(p0[k], p1[k], p2[k], p3[k], p4[k], p5[k], p6[k], p7[k])
                    r0[i], r1[i], r2[i], r3[i] = v
            continue
        for t in range(n // Co):
            col = (4 * t + j) * Co
            if col >= WCo:
                break
            for c in range(Co):
                k = Co * t + c
                v = _at(p0[k], p1[k], p2[k], p3[k], p4[k], p5[k], p6[k], p7[k])
                for i in range(rows):
                    y[y0 + i, col + c] = v[i]


def conv5x5(x: torch.Tensor, weights: WinogradWeights, into: str | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=2)`` of the channels-last float32 ``x (B, Ci, H, W)``
    with :func:`winograd_weights` ``(weight, bias)``: channels-last float32 ``(B, Co, H, W)``,
    a new tensor, or with ``into`` in this thread's :func:`~s2dloc.features.fused.workspace` of
    that name (overwritten by the next call). No gradients (CPU inference)."""
    B, Ci, H, W = x.shape
    if x.dtype != torch.float32 or not x.is_contiguous(memory_format=torch.channels_last):
        raise ValueError(f"expected a channels-last float32 map, got {x.dtype} {x.stride()}")
    if weights.weight.shape[:2] != (64, Ci):
        raise ValueError(f"weights {tuple(weights.weight.shape)} do not take {Ci} channels")
    Co = weights.weight.shape[2]
    shape = (B, H, W, Co)
    out = torch.empty(shape) if into is None else workspace(shape, torch.float32, into)
    src = x.detach().permute(0, 2, 3, 1).reshape(B, H, W * Ci).numpy()
    dst = out.view(B, H, W * Co).numpy()
    in_threads(_tile_rows, B * -(-H // 4), src, weights, dst)
    return out.permute(0, 3, 1, 2)


def _tile_rows(src: np.ndarray, weights: WinogradWeights, dst: np.ndarray, r0: int, r1: int):
    """Tile rows ``r0:r1`` (``b * ceil(H / 4) + row``) of :func:`conv5x5`, with this thread's
    buffers."""
    B, H, WC = src.shape
    Ci, Co = weights.weight.shape[1:]
    W = WC // Ci
    ntx, nty = -(-W // 4), -(-H // 4)
    T = workspace((8, (4 * ntx + 8) * Ci), torch.float32, "winograd_rows").numpy()
    T[:, : 2 * Ci] = 0.0
    T[:, 2 * Ci + WC :] = 0.0
    U = workspace((64, ntx, Ci), torch.float32, "winograd_in")
    M = workspace((64, ntx, Co), torch.float32, "winograd_out")
    R = workspace((8, 4, ntx * Co), torch.float32, "winograd_cols").numpy()
    zero = np.zeros(WC, dtype=np.float32)
    u, m = U.numpy().reshape(64, ntx * Ci), M.numpy().reshape(64, ntx * Co)
    for r in range(r0, r1):
        b, row = divmod(r, nty)
        _input_rows(src[b], zero, T, u, Ci, row)
        torch.baddbmm(weights.bias, U, weights.weight, out=M)
        _output_rows(m, dst[b], R, Co, row)
