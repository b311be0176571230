"""Compiled (numba) CPU path of the F-PnP solver, for inference without gradients.

It runs the same Levenberg-Marquardt algorithm as :mod:`s2dloc.fpnp.solver` (same residuals,
central-difference feature gradients, robust IRLS weights, damping, acceptance and stopping
rules) in one pass over the points per iteration, with no tensor temporaries, and reads the
query maps in place whatever their memory layout (small coarse levels aside, see below). The
torch path remains the reference: it is differentiable and runs on any device. Both end in the
same :class:`~s2dloc.fpnp.decision.Outcome` and the same success decision
(:func:`~s2dloc.fpnp.decision.decide`).

What is guaranteed (tested in ``tests/fpnp/test_backends.py`` over models, losses, scales):

- One evaluation (cost, ``J^T r``, ``J^T W J``) agrees with the torch path to round-off
  (relative 1e-9 with float64 maps, 1e-4 with float32) for every camera model and robust loss;
  the compiled losses pass the same hand-computed cases as :class:`~s2dloc.fpnp.RobustLoss`.
- With float64 maps and references: the same iteration counts at every level, poses within
  1e-9 degrees, identical success flags and reasons.
- With float32 maps (the usual case): poses within 1e-4 degrees and 4e-5 of the depth units
  of each other, identical success flags and reasons. Iteration counts are NOT guaranteed
  equal: the torch path accumulates in float32, so a stopping test that compares two nearly
  equal numbers (relative cost decrease, step size, rejections near the optimum) can flip.
- Flags could only differ if a statistic of :mod:`~s2dloc.fpnp.decision` fell within
  round-off of its threshold; none does on the seeded fuzz set (``test_fuzz.py``).

Points are visited in image-row order (sorted once per level), which keeps consecutive reads
close in memory. Maps whose channels are not adjacent in memory (plain ``(C, H, W)``) cost one
cache line per channel and row for each point, and their channel loop cannot be vectorized; a
per-point texel cache (:func:`bind_map`) copies the 12 texels a point reads, all channels,
channels-last when the point enters a pixel cell, and later evaluations in that cell read the
copy. An LM iteration moves most points by less than a pixel, so after the first evaluation of
a level most reads hit the cache. Each level's cache is filled for the start pose before its
first evaluation, in a loop of copies alone (:func:`~s2dloc.fpnp.kernels.prefill_texels`),
where the CPU overlaps more of the scattered reads than inside the evaluation. Coarse
levels, where points cross cells often, are copied whole channels-last when they hold at most
24 pixels per point (:func:`query_map`); larger levels are never copied
(``benchmarks/fpnp.py`` compares the layouts).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields

import numpy as np
import torch

from s2dloc.fpnp.decision import Outcome
from s2dloc.fpnp.kernel_model import CONF_NAMES, LOSS_IDS
from s2dloc.fpnp.kernels import evaluate, match_residuals, prefill_texels, row_order
from s2dloc.fpnp.lm_kernels import solve_level
from s2dloc.utils.threads import worker_pool


def conf_vector(conf, scale: float | None) -> np.ndarray:
    """Pack an :class:`~s2dloc.fpnp.solver.FPnPConfig` into the kernels' float64 vector.

    ``scale`` is the fixed loss scale, or None for the automatic per-level scale.
    """
    values = {name: getattr(conf, name, None) for name in CONF_NAMES}
    values.update(
        loss=LOSS_IDS[conf.loss],
        alpha=conf.barron_alpha,
        scale=-1.0 if scale is None else scale,  # <= 0 selects the automatic scale
    )
    return np.array([float(values[name]) for name in CONF_NAMES])


def camera_vector(camera) -> np.ndarray:
    """``(B, 10)`` float64 ``(fx, fy, cx, cy, k1, k2, p1, p2, width, height)`` of a camera batch."""
    parts = [camera.f, camera.c, camera.dist, camera.size]
    return np.concatenate([t.detach().double().cpu().numpy() for t in parts], -1)


def map_layout(maps: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A flat numpy view of the storage of ``maps (B, C, H, W)`` (any strides, never copied)
    and per query ``(offset, stride_h, stride_w, stride_c, H, W)`` in elements ``(B, 6)``."""
    maps = maps.detach()
    span = 1 + sum((n - 1) * s for n, s in zip(maps.shape, maps.stride(), strict=True))
    flat = maps.as_strided((span if maps.numel() else 0,), (1,)).numpy()
    sb, sc, sh, sw = maps.stride()
    B, _, H, W = maps.shape
    layout = [[b * sb, sh, sw, sc, H, W] for b in range(B)]
    return flat, np.array(layout, dtype=np.int64).reshape(B, 6)


def level_arrays(
    level,
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray, torch.Tensor]:
    """Numpy views of a prepared level: maps as :func:`map_layout`, references ``(B, N, C)``
    in the maps' dtype, cameras ``(B, 10)``, and the maps ``(B, C, H, W)`` themselves."""
    flat, layout = map_layout(level.maps)
    ref = np.ascontiguousarray(level.ref.detach().numpy().astype(flat.dtype, copy=False))
    return (flat, layout), ref, camera_vector(level.camera), level.maps


@dataclass
class QueryStats:
    """One query's entries of an :class:`Outcome` (numpy; ``N`` points, ``L`` levels).

    Attributes:
        iterations: ``L`` LM iterations per level.
        ok: enough valid points at the start of every level.
        cost_init, cost: robust cost at the initial and final pose (finest level, final scale).
        depth: mean valid depth at the initial pose.
        H: ``(6, 6)`` Gauss-Newton matrix at the final pose.
        num_valid, res_var, num_res: valid points, weighted residual sum, residual count.
        sq_match, sq_null, sq_grad: ``(N,)`` as :class:`~s2dloc.fpnp.levels.MatchResiduals`.
    """

    iterations: list[int]
    ok: bool
    cost_init: float
    cost: float
    depth: float
    H: np.ndarray
    num_valid: int
    res_var: float
    num_res: int
    sq_match: np.ndarray
    sq_null: np.ndarray
    sq_grad: np.ndarray


_thread_scratch = threading.local()


def _scratch(size: int, dtype, name: str = "texels") -> np.ndarray:
    """This thread's buffer ``name`` (the texel cache, or a small level's copy): ``(size,)``
    values of ``dtype``, kept and reused between calls (a fresh buffer per level costs its
    page faults every time)."""
    if size == 0:
        return np.empty(0, dtype=dtype)
    buf = getattr(_thread_scratch, name, None)
    if buf is None or buf.dtype != dtype or buf.size < size:
        buf = np.empty(size, dtype=dtype)
        setattr(_thread_scratch, name, buf)
    return buf[:size]


# A plain level of at most this many pixels per point is copied channels-last: twice the 12
# texels per point that the texel cache holds (see :func:`query_map`).
SMALL_LEVEL_PIXELS_PER_POINT = 24


def query_map(maps: torch.Tensor, flat: np.ndarray, layout: np.ndarray, N: int):
    """One query's map ``maps (C, H, W)`` as the kernels read it: ``(flat, layout (6,))`` in
    place (its level's :func:`map_layout`), or a channels-last copy in this thread's scratch
    when the channels are not adjacent and the level holds at most
    :data:`SMALL_LEVEL_PIXELS_PER_POINT` pixels per point.

    On a coarse level points cross many pixel cells, and each crossing refills the point's
    12 texels x ``C`` channels from scattered cache lines; copying a level that small reads it
    once, sequentially, into at most twice the texel cache's memory. Larger levels are read
    in place (copying a full-resolution level costs more than refining on it).
    """
    C, H, W = maps.shape
    if layout[3] == 1 or H * W > SMALL_LEVEL_PIXELS_PER_POINT * N:
        return flat, layout
    out = _scratch(H * W * C, flat.dtype, "level")
    torch.from_numpy(out).view(H, W, C).copy_(maps.detach().permute(1, 2, 0))
    return out, np.array([0, W * C, C, 1, H, W], dtype=np.int64)


def bind_map(flat: np.ndarray, layout: np.ndarray, order: np.ndarray, C: int, cache=True):
    """One query's map for the kernels: ``(flat, layout (6,), texels, cells)``.

    Maps whose channels are not adjacent in memory (``layout[3] != 1``) get a texel cache
    (see :func:`~s2dloc.fpnp.kernels.sample_gram`) unless ``cache`` is False: ``texels``
    holds 12 texels x ``C`` channels per point, and ``cells (N, 3)`` int64 rows
    ``(slot, x0, y0)`` say which cell a point's slot holds (none yet). Point ``order[k]``
    gets slot ``k``, so a pass in ``order`` reads and writes the cache sequentially.
    """
    N = order.shape[0] if cache and layout[3] != 1 else 0
    cells = np.full((N, 3), np.iinfo(np.int64).min, dtype=np.int64)
    cells[order[:N], 0] = np.arange(N)
    return flat, layout, _scratch(12 * N * C, flat.dtype), cells


def _solve_query(
    b: int, levels: list, pts, ws, M, conf_v: np.ndarray, has_dist: bool
) -> QueryStats:
    """Coarse-to-fine LM for query ``b`` (updates ``M[b]``); ``ws`` point weights per level."""
    H, g = np.zeros((6, 6)), np.zeros(6)
    M0 = M[b].copy()
    iters, ok = [], True
    N = pts.shape[1]
    for ((flat_all, layout_all), ref, cam, maps), w in zip(levels, ws):
        flat, layout = query_map(maps[b], flat_all, layout_all[b], N)
        order = row_order(pts[b], M[b], layout[5], cam[b], has_dist, conf_v)
        fmap = bind_map(flat, layout, order, ref.shape[-1])
        if fmap[2].size:  # the texels of the cells at the level's start, in one tight pass
            prefill_texels(pts[b], M[b], fmap, ref.shape[-1], w[b], cam[b], has_dist, conf_v, order)
        args = (pts[b], M[b], fmap, ref[b], w[b], cam[b], has_dist, conf_v)
        it, ok_l, scale, cost, _, nvalid, res_var, nres = solve_level(*args, H, g, order)
        iters.append(it)
        ok = ok and ok_l
    sq, sq_match, sq_null, sq_grad = np.empty(N), np.empty(N), np.empty(N), np.empty(N)
    # Same sums as the torch path. Not cached: at M0 the texels would be copied for one read.
    args = (pts[b], M0, bind_map(flat, layout, order, 0, cache=False), *args[3:])
    ev0 = evaluate(*args, scale, np.empty((6, 6)), np.empty(6), sq, order)
    match_residuals(pts[b], M[b], fmap, *args[3:], sq_match, sq_null, sq_grad)
    return QueryStats(
        iterations=iters,
        ok=ok,
        cost_init=ev0[0],
        cost=cost,
        depth=ev0[3],
        H=H,
        num_valid=nvalid,
        res_var=res_var,
        num_res=nres,
        sq_match=sq_match,
        sq_null=sq_null,
        sq_grad=sq_grad,
    )


def solve(
    levels: list,
    points: torch.Tensor,
    weights: list[torch.Tensor],
    M0: torch.Tensor,
    conf,
    scale: float | None,
) -> Outcome:
    """Refine a batch on prepared levels (coarse to fine, CPU tensors of any layout).

    ``points (B, N, 3)`` finite, ``weights`` per level ``(B, N)`` (the finest level's
    also weight the initial and final figures), initial poses ``M0 (B, 4, 4)``. Queries run
    in parallel threads (the kernels release the GIL).
    """
    arrays = [level_arrays(lv) for lv in levels]
    pts = np.ascontiguousarray(points.detach().double().numpy())
    w = [np.ascontiguousarray(lw.detach().double().numpy()) for lw in weights]
    M = np.array(M0.detach().double().numpy())
    args = (arrays, pts, w, M, conf_vector(conf, scale), bool(levels[0].camera.has_distortion))
    B = pts.shape[0]
    workers = min(B, max(1, torch.get_num_threads()))
    if workers == 1:
        results = [_solve_query(b, *args) for b in range(B)]
    else:
        results = list(worker_pool().map(lambda b: _solve_query(b, *args), range(B)))
    out = {
        f.name: torch.from_numpy(np.array([getattr(r, f.name) for r in results]))
        for f in fields(QueryStats)
    }
    return Outcome(M0=M0.detach().double(), M=torch.from_numpy(M), **out)
