"""Compiled (numba) CPU path of the F-PnP solver, for inference without gradients.

It runs the same Levenberg-Marquardt algorithm as :mod:`s2dloc.fpnp.solver` (same residuals,
central-difference feature gradients, robust IRLS weights, damping, acceptance and stopping
rules) in one pass over the points per iteration, with no tensor temporaries, and reads the
query maps in place whatever their memory layout. The torch path remains the reference: it is
differentiable and runs on any device. Both end in the same :class:`~s2dloc.fpnp.decision.Outcome`
and the same success decision (:func:`~s2dloc.fpnp.decision.decide`).

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
close in memory; maps whose channels are not adjacent in memory (plain ``(C, H, W)``) are
still about 2x slower to sample than channels-last ones (see ``benchmarks/fpnp.py``): each
point then touches one cache line per channel and row, and the channel loop cannot be
vectorized. Copying each point's texels into a channels-last cache, refilled only when the
point leaves it, measured no faster: the transposing copy costs about as much as the reads it
saves (plane strides that are multiples of 4 KiB make it conflict in the L1 cache).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

import numpy as np
import torch

from s2dloc.fpnp.decision import Outcome
from s2dloc.fpnp.kernel_model import CONF_NAMES, LOSS_IDS
from s2dloc.fpnp.kernels import evaluate, match_residuals, row_order
from s2dloc.fpnp.lm_kernels import solve_level


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


def level_arrays(level) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
    """Numpy views of a prepared level: maps as :func:`map_layout`, references ``(B, N, C)``
    in the maps' dtype and cameras ``(B, 10)``."""
    flat, layout = map_layout(level.maps)
    ref = np.ascontiguousarray(level.ref.detach().numpy().astype(flat.dtype, copy=False))
    return (flat, layout), ref, camera_vector(level.camera)


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


def _solve_query(b: int, levels: list, pts, w, M, conf_v: np.ndarray, has_dist: bool) -> QueryStats:
    """Coarse-to-fine LM for query ``b`` (updates ``M[b]``)."""
    H, g = np.zeros((6, 6)), np.zeros(6)
    M0 = M[b].copy()
    iters, ok = [], True
    for (flat, layout), ref, cam in levels:
        fmap = (flat, layout[b])
        args = (pts[b], M[b], fmap, ref[b], w[b], cam[b], has_dist, conf_v)
        order = row_order(pts[b], M[b], fmap, cam[b], has_dist, conf_v)
        it, ok_l, scale, cost, _, nvalid, res_var, nres = solve_level(*args, H, g, order)
        iters.append(it)
        ok = ok and ok_l
    N = pts.shape[1]
    sq, sq_match, sq_null, sq_grad = np.empty(N), np.empty(N), np.empty(N), np.empty(N)
    args = (pts[b], M0, fmap, ref[b], w[b], cam[b], has_dist, conf_v)
    ev0 = evaluate(*args, scale, np.empty((6, 6)), np.empty(6), sq, order)  # same sums
    match_residuals(pts[b], M[b], *args[2:], sq_match, sq_null, sq_grad)
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
    weights: torch.Tensor,
    M0: torch.Tensor,
    conf,
    scale: float | None,
) -> Outcome:
    """Refine a batch on prepared levels (coarse to fine, CPU tensors of any layout).

    ``points (B, N, 3)`` finite, ``weights (B, N)``, initial poses ``M0 (B, 4, 4)``. Queries run
    in parallel threads (the kernels release the GIL).
    """
    arrays = [level_arrays(lv) for lv in levels]
    pts = np.ascontiguousarray(points.detach().double().numpy())
    w = np.ascontiguousarray(weights.detach().double().numpy())
    M = np.array(M0.detach().double().numpy())
    args = (arrays, pts, w, M, conf_vector(conf, scale), bool(levels[0].camera.has_distortion))
    B = pts.shape[0]
    workers = min(B, max(1, torch.get_num_threads()))
    if workers == 1:
        results = [_solve_query(b, *args) for b in range(B)]
    else:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda b: _solve_query(b, *args), range(B)))
    out = {
        f.name: torch.from_numpy(np.array([getattr(r, f.name) for r in results]))
        for f in fields(QueryStats)
    }
    return Outcome(M0=M0.detach().double(), M=torch.from_numpy(M), **out)
