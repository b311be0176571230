"""5x5 convolutions by Winograd's minimal filtering F(6x6, 5x5) (inference, float32 CPUs).

A 5x5 convolution of ``Ci`` to ``Co`` channels costs ``25 Ci Co`` multiply-adds per output
pixel. Winograd's algorithm (Lavin and Gray, "Fast algorithms for convolutional neural
networks", CVPR 2016) computes a 6x6 block of outputs from the 10x10 input tile around it as
``A^T [(G g G^T) * (B^T d B)] A``: the channel sums become 100 matrix products, one per
transformed position, with ``100 / 36 Ci Co`` multiply-adds per output pixel (9x fewer), and
the transforms are a few multiply-adds per value. The interpolation points are 0, +-1, +-2,
+-1/2, +-3/4 and infinity: every coefficient of the transforms is exact in float32, and the
results stay within about 1e-4 of the direct convolution's largest output (the tests bound
it; the points +-4, +-3 or +-1/4 in place of +-3/4 give 5-7x that).

Here the input is channels-last float32 and so is the output. Each step takes whole tile rows
of the output (6 image rows each): the input transform of their input rows (compiled,
vectorised over channels), one batched matrix product ``(100, tiles, Ci) @ (100, Ci, Co)``
(torch; the bias enters as the product's initial value at the one position whose output
transform is constant), then the output transform. The steps are split over
``torch.get_num_threads()`` workers of the calling thread's pool, each with its own buffers;
every step is computed the same way whatever the split, so the result does not depend on the
number of threads.

Where the CPU has native bfloat16 the DISK decoder convolves in bfloat16 instead
(:func:`s2dloc.features.fused.native_bf16`); elsewhere (AVX2 without AVX-512) a 5x5
convolution of 80 to 32 channels at 640x480 takes about 0.35-0.4x the direct float32 time,
and the decoder's smaller ones 0.23-0.31x.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from numba import njit

from s2dloc.features.fused import in_threads, workspace

# The interpolation points: 0, then pairs +-p, and infinity (not listed).
POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 0.75, -0.75)
PAIRS = POINTS[1::2]
TILE, TAPS = 6, 5  # outputs per tile side, filter size
SIDE = TILE + TAPS - 1  # transformed positions per tile side
# The output transform's position whose 6x6 output is all ones (point 1 in both directions).
BIAS_POSITION = SIDE * POINTS.index(1.0) + POINTS.index(1.0)
# Tiles per batched matrix product: whole tile rows up to about this many (fewer calls, each of
# which may wait for the GIL while another thread runs Python; larger products are no faster).
TILES_PER_PRODUCT = 160
COLUMNS_PER_PASS = 512  # values per row in each step of the vertical input transform
FM = {"contract"}  # let multiply-adds fuse; no other reordering


def _even_coefficients(squares) -> list[float]:
    """Coefficients (low to high) of ``prod (y - s)`` over ``squares``."""
    return list(np.polynomial.polynomial.polyfromroots(squares))


def input_matrix() -> np.ndarray:
    """``B^T (10, 10)``: row ``j`` holds the coefficients (low to high) of the product of
    ``x - q`` over the points ``q`` other than point ``j``; the last row (infinity) the product
    over all points."""
    bt = np.zeros((SIDE, SIDE))
    for j in range(len(POINTS)):
        others = POINTS[:j] + POINTS[j + 1 :]
        bt[j, : SIDE - 1] = np.polynomial.polynomial.polyfromroots(others)
    bt[SIDE - 1] = np.polynomial.polynomial.polyfromroots(POINTS)
    return bt


def output_matrix() -> np.ndarray:
    """``A^T (6, 10)``: row ``i`` is the points to the power ``i``; infinity adds to the last."""
    at = np.zeros((TILE, SIDE))
    for j, p in enumerate(POINTS):
        at[:, j] = [p**i for i in range(TILE)]
    at[TILE - 1, SIDE - 1] = 1.0
    return at


def filter_matrix() -> np.ndarray:
    """``G (10, 5)``: the filter evaluated at each point over the product of its distances to
    the other points (Lagrange interpolation); infinity takes the last coefficient."""
    g = np.zeros((SIDE, TAPS))
    for j, p in enumerate(POINTS):
        scale = np.prod([p - q for q in POINTS if q != p])
        g[j] = [p**k / scale for k in range(TAPS)]
    g[SIDE - 1, TAPS - 1] = 1.0
    return g


class WinogradWeights(NamedTuple):
    """A 5x5 convolution's weights in the transformed domain."""

    weight: torch.Tensor  # (100, Ci, Co) float32: G w G^T per input and output channel
    bias: torch.Tensor  # (100, 1, Co) float32: the bias at BIAS_POSITION, zero elsewhere


def winograd_weights(weight: torch.Tensor, bias: torch.Tensor | None) -> WinogradWeights:
    """The transformed ``weight (Co, Ci, 5, 5)`` and ``bias (Co,)`` (None: zero), computed in
    float64."""
    Co, Ci = weight.shape[:2]
    if weight.shape[2:] != (TAPS, TAPS):
        raise ValueError(f"expected a 5x5 weight, got {tuple(weight.shape)}")
    g = torch.from_numpy(filter_matrix())
    u = torch.einsum("ak,oikl,bl->abio", g, weight.detach().cpu().double(), g)
    b = torch.zeros(SIDE * SIDE, 1, Co)
    if bias is not None:
        b[BIAS_POSITION, 0] = bias.detach().cpu().float()
    return WinogradWeights(u.reshape(SIDE * SIDE, Ci, Co).float().contiguous(), b)


# The compiled transforms' float32 constants (every one exact in binary). Point 0's row of B^T
# and infinity's are the polynomial in x^2 whose roots are the pairs' squares (E0..E3, monic),
# on the even and on the odd values. Each pair's two rows share the polynomial of the other
# pairs' squares (A, B, C, D: three coefficients, monic), times x^2 on the even values and
# p x on the odd (P0..P3 = 1, 2, 1/2, 3/4).
E0, E1, E2, E3 = (np.float32(v) for v in _even_coefficients([p * p for p in PAIRS])[:4])
(A0, A1, A2, P0), (B0, B1, B2, P1), (C0, C1, C2, P2), (D0, D1, D2, P3) = (
    tuple(np.float32(v) for v in [*_even_coefficients([q * q for q in PAIRS if q != p])[:3], p])
    for p in PAIRS
)
# A^T: powers 1..5 of the pairs' points 2, 1/2 and 3/4 (those of point 1 are all 1).
(W11, W12, W13, W14, W15), (W21, W22, W23, W24, W25), (W31, W32, W33, W34, W35) = (
    tuple(np.float32(p**i) for i in range(1, TILE)) for p in PAIRS[1:]
)


@njit(cache=True, nogil=True, fastmath=FM, inline="always")
def _bt_pairs(d1, d2, d3, d4, d5, d6, d7, d8):
    """Rows 1-8 of ``B^T d`` (the pairs' points; :func:`input_matrix`, sharing common
    terms)."""
    ea, oa = A0 * d2 + A1 * d4 + A2 * d6 + d8, P0 * (A0 * d1 + A1 * d3 + A2 * d5 + d7)
    eb, ob = B0 * d2 + B1 * d4 + B2 * d6 + d8, P1 * (B0 * d1 + B1 * d3 + B2 * d5 + d7)
    ec, oc = C0 * d2 + C1 * d4 + C2 * d6 + d8, P2 * (C0 * d1 + C1 * d3 + C2 * d5 + d7)
    ed, od = D0 * d2 + D1 * d4 + D2 * d6 + d8, P3 * (D0 * d1 + D1 * d3 + D2 * d5 + d7)
    return ea + oa, ea - oa, eb + ob, eb - ob, ec + oc, ec - oc, ed + od, ed - od


@njit(cache=True, nogil=True, fastmath=FM, inline="always")
def _bt_ends(d0, d1, d2, d3, d4, d5, d6, d7, d8, d9):
    """Rows 0 and 9 of ``B^T d`` (points 0 and infinity)."""
    return E0 * d0 + E1 * d2 + E2 * d4 + E3 * d6 + d8, E0 * d1 + E1 * d3 + E2 * d5 + E3 * d7 + d9


@njit(cache=True, nogil=True, fastmath=FM, inline="always")
def _at(m0, m1, m2, m3, m4, m5, m6, m7, m8, m9):
    """``A^T m`` of 10 values (:func:`output_matrix`, sharing common terms)."""
    s0, t0, s1, t1 = m1 + m2, m1 - m2, m3 + m4, m3 - m4
    s2, t2, s3, t3 = m5 + m6, m5 - m6, m7 + m8, m7 - m8
    return (
        m0 + s0 + s1 + s2 + s3,
        t0 + W11 * t1 + W21 * t2 + W31 * t3,
        s0 + W12 * s1 + W22 * s2 + W32 * s3,
        t0 + W13 * t1 + W23 * t2 + W33 * t3,
        s0 + W14 * s1 + W24 * s2 + W34 * s3,
        t0 + W15 * t1 + W25 * t2 + W35 * t3 + m9,
    )


@njit(cache=True, nogil=True, fastmath=FM)
def _rows_of(x, y0, zero):
    """Rows ``y0 .. y0 + 9`` of ``x (H, n)``, ``zero`` for those outside."""
    H = x.shape[0]
    r = [zero] * SIDE
    for i in range(SIDE):
        if 0 <= y0 + i < H:
            r[i] = x[y0 + i]
    return r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9]


@njit(cache=True, nogil=True, fastmath=FM)
def _input_rows(x, zero, T, U, C, tr0):
    """Tile rows ``tr0 .. tr0 + k - 1`` of ``x (H, W C)`` (channels-last rows of ``C``
    channels) into ``U (100, k, ntx C)``: per tile row, first ``B^T`` down its 10 input rows
    into ``T (10, (6 ntx + 10) C)`` (columns ``0:2C`` and from ``2C + W C`` must be zero: the
    padding), then ``B^T`` along each tile's 10 columns.

    Every loop runs over contiguous values of arrays taken once, and computes at most 8 of the
    10 rows: with more arrays than that the compiler does not vectorise the loop (it cannot
    rule out that they overlap)."""
    WC, ntx, off = x.shape[1], U.shape[2] // C, 2 * C
    for j in range(U.shape[1]):
        rows = _rows_of(x, TILE * (tr0 + j) - 2, zero)
        for k0 in range(0, WC, COLUMNS_PER_PASS):
            _vertical(rows, T, off + k0, k0, min(COLUMNS_PER_PASS, WC - k0))
        for a in range(SIDE):
            _horizontal(T[a], U, SIDE * a, j, C, ntx)


@njit(cache=True, nogil=True, fastmath=FM, inline="always")
def _vertical(rows, T, t0, k0, n):
    """``B^T`` down the 10 ``rows`` at columns ``k0 : k0 + n`` into ``T[:, t0 : t0 + n]``."""
    x0, x1, x2, x3, x4 = rows[0][k0:], rows[1][k0:], rows[2][k0:], rows[3][k0:], rows[4][k0:]
    x5, x6, x7, x8, x9 = rows[5][k0:], rows[6][k0:], rows[7][k0:], rows[8][k0:], rows[9][k0:]
    T0, T1, T2, T3, T4 = T[0, t0:], T[1, t0:], T[2, t0:], T[3, t0:], T[4, t0:]
    T5, T6, T7, T8, T9 = T[5, t0:], T[6, t0:], T[7, t0:], T[8, t0:], T[9, t0:]
    for k in range(n):
        v = _bt_pairs(x1[k], x2[k], x3[k], x4[k], x5[k], x6[k], x7[k], x8[k])
        T1[k], T2[k], T3[k], T4[k], T5[k], T6[k], T7[k], T8[k] = v
    for k in range(n):
        v = _bt_ends(x0[k], x1[k], x2[k], x3[k], x4[k], x5[k], x6[k], x7[k], x8[k], x9[k])
        T0[k], T9[k] = v


@njit(cache=True, nogil=True, fastmath=FM, inline="always")
def _horizontal(Ta, U, b, j, C, ntx):
    """``B^T`` along each tile's 10 columns of the padded row ``Ta`` into ``U[b : b + 10, j]``."""
    # s_i[t * 6C + c]: column 6t + i of the padded row (channel c)
    s0, s1, s2, s3, s4 = Ta[0:], Ta[C:], Ta[2 * C :], Ta[3 * C :], Ta[4 * C :]
    s5, s6, s7, s8, s9 = Ta[5 * C :], Ta[6 * C :], Ta[7 * C :], Ta[8 * C :], Ta[9 * C :]
    o0, o1, o2, o3, o4 = U[b, j], U[b + 1, j], U[b + 2, j], U[b + 3, j], U[b + 4, j]
    o5, o6, o7, o8, o9 = U[b + 5, j], U[b + 6, j], U[b + 7, j], U[b + 8, j], U[b + 9, j]
    for t in range(ntx):
        i0, k0 = TILE * C * t, C * t
        for c in range(C):
            i, k = i0 + c, k0 + c
            v = _bt_pairs(s1[i], s2[i], s3[i], s4[i], s5[i], s6[i], s7[i], s8[i])
            o1[k], o2[k], o3[k], o4[k], o5[k], o6[k], o7[k], o8[k] = v
        for c in range(C):
            i, k = i0 + c, k0 + c
            v = _bt_ends(s0[i], s1[i], s2[i], s3[i], s4[i], s5[i], s6[i], s7[i], s8[i], s9[i])
            o0[k], o9[k] = v


@njit(cache=True, nogil=True, fastmath=FM)
def _output_rows(M, y, R, Z, Co, tr0):
    """``A^T M A`` of tile rows ``tr0 .. tr0 + k - 1`` from ``M (100, k, ntx Co)`` into the
    rows of ``y (H, W Co)`` (channels-last; tiles past the image's edge are cut): per tile row,
    ``A^T`` over each tile's 10 columns into ``R (10, 6, ntx Co)``, then, per output column
    ``j`` of the tiles, down their 10 rows into ``Z (6, ntx Co)`` and from there into ``y``."""
    for r in range(M.shape[1]):
        for a in range(SIDE):
            _columns(M, R[a], SIDE * a, r)
        for j in range(TILE):
            _rows(R, j, Z)
            _scatter(Z, y, Co, tr0 + r, j)


@njit(cache=True, nogil=True, fastmath=FM, inline="always")
def _columns(M, Ra, b, j):
    """``A^T`` over the 10 columns of each tile of ``M[b : b + 10, j]`` into ``Ra (6, ntx Co)``."""
    m0, m1, m2, m3, m4 = M[b, j], M[b + 1, j], M[b + 2, j], M[b + 3, j], M[b + 4, j]
    m5, m6, m7, m8, m9 = M[b + 5, j], M[b + 6, j], M[b + 7, j], M[b + 8, j], M[b + 9, j]
    q0, q1, q2, q3, q4, q5 = Ra[0], Ra[1], Ra[2], Ra[3], Ra[4], Ra[5]
    for k in range(M.shape[2]):
        v = _at(m0[k], m1[k], m2[k], m3[k], m4[k], m5[k], m6[k], m7[k], m8[k], m9[k])
        q0[k], q1[k], q2[k], q3[k], q4[k], q5[k] = v


@njit(cache=True, nogil=True, fastmath=FM, inline="always")
def _rows(R, j, Z):
    """``A^T`` down the 10 rows of column ``j`` of the tiles in ``R`` into ``Z (6, ntx Co)``."""
    p0, p1, p2, p3, p4 = R[0, j], R[1, j], R[2, j], R[3, j], R[4, j]
    p5, p6, p7, p8, p9 = R[5, j], R[6, j], R[7, j], R[8, j], R[9, j]
    z0, z1, z2, z3, z4, z5 = Z[0], Z[1], Z[2], Z[3], Z[4], Z[5]
    for k in range(Z.shape[1]):
        v = _at(p0[k], p1[k], p2[k], p3[k], p4[k], p5[k], p6[k], p7[k], p8[k], p9[k])
        z0[k], z1[k], z2[k], z3[k], z4[k], z5[k] = v


@njit(cache=True, nogil=True, fastmath=FM, inline="always")
def _scatter(Z, y, Co, tr, j):
    """Output column ``j`` of the tiles of tile row ``tr`` from ``Z (6, ntx Co)`` into its place
    in ``y (H, W Co)``, cut at the image's edges."""
    H, WCo = y.shape
    y0 = TILE * tr
    for i in range(min(TILE, H - y0)):
        yi, zi = y[y0 + i], Z[i]
        for t in range(Z.shape[1] // Co):
            col = (TILE * t + j) * Co
            if col >= WCo:
                break
            for c in range(Co):
                yi[col + c] = zi[Co * t + c]


def conv5x5(x: torch.Tensor, weights: WinogradWeights, into: str | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=2)`` of the channels-last float32 ``x (B, Ci, H, W)``
    with :func:`winograd_weights` ``(weight, bias)``: channels-last float32 ``(B, Co, H, W)``,
    a new tensor, or with ``into`` in this thread's :func:`~s2dloc.features.fused.workspace` of
    that name (overwritten by the next call). No gradients (CPU inference)."""
    B, Ci, H, W = x.shape
    if x.dtype != torch.float32 or not x.is_contiguous(memory_format=torch.channels_last):
        raise ValueError(f"expected a channels-last float32 map, got {x.dtype} {x.stride()}")
    if weights.weight.shape[:2] != (SIDE * SIDE, Ci):
        raise ValueError(f"weights {tuple(weights.weight.shape)} do not take {Ci} channels")
    Co = weights.weight.shape[2]
    shape = (B, H, W, Co)
    out = torch.empty(shape) if into is None else workspace(shape, torch.float32, into)
    src = x.detach().permute(0, 2, 3, 1).reshape(B, H, W * Ci).numpy()
    dst = out.view(B, H, W * Co).numpy()
    ntx, nty = -(-W // TILE), -(-H // TILE)
    k = max(1, min(nty, TILES_PER_PRODUCT // ntx))  # tile rows per step
    in_threads(_steps, B * -(-nty // k), src, weights, dst, k)
    return out.permute(0, 3, 1, 2)


def _steps(src: np.ndarray, weights: WinogradWeights, dst: np.ndarray, k: int, s0: int, s1: int):
    """Steps ``s0:s1`` of :func:`conv5x5`, with this thread's buffers: step ``s`` is tile rows
    ``k j .. k j + k - 1`` of image ``b`` (``b, j = divmod(s, ceil(ceil(H / 6) / k))``), one
    batched matrix product. The steps do not depend on the number of threads, nor does the
    result."""
    B, H, WC = src.shape
    Ci, Co = weights.weight.shape[1:]
    ntx, nty = -(-(WC // Ci) // TILE), -(-H // TILE)
    T = workspace((SIDE, (TILE * ntx + SIDE) * Ci), torch.float32, "winograd_rows").numpy()
    T[:, : 2 * Ci] = 0.0
    T[:, 2 * Ci + WC :] = 0.0
    R = workspace((SIDE, TILE, ntx * Co), torch.float32, "winograd_cols").numpy()
    Z = workspace((TILE, ntx * Co), torch.float32, "winograd_out_rows").numpy()
    zero = np.zeros(WC, dtype=np.float32)
    for s in range(s0, s1):
        b, j = divmod(s, -(-nty // k))
        row = k * j
        n = min(k, nty - row)  # tile rows in this step
        U = workspace((SIDE * SIDE, n * ntx, Ci), torch.float32, "winograd_in")
        M = workspace((SIDE * SIDE, n * ntx, Co), torch.float32, "winograd_out")
        _input_rows(src[b], zero, T, U.numpy().reshape(-1, n, ntx * Ci), Ci, row)
        torch.baddbmm(weights.bias, U, weights.weight, out=M)
        _output_rows(M.numpy().reshape(-1, n, ntx * Co), dst[b], R, Z, Co, row)
