"""A coarse search for a start pose before F-PnP, for starts far from the optimum.

The start is rotated about its camera centre by a grid of yaw and pitch angles (``steps`` x
``step_deg`` either way: rotations about the centre move the image of the whole scene, the
hardest part of a large error). Each candidate is scored on the coarsest level by a truncated
feature-metric cost: per point ``min(|F_q(pi(T X)) - f|^2, null)``, ``null`` for points outside
the image, where ``null`` is the median squared distance to other points' reference features
at the start (what an unrelated match costs). The lowest score per query wins
(:func:`start_candidates` ranks them); F-PnP then refines from it
(:meth:`~s2dloc.fpnp.FeatureMetricPnP.refine_batch`).

The coarse score can prefer a wrong candidate (a repeated facade, a dark image), so
:func:`search_and_refine` refines the ``keep`` best candidates (:func:`start_candidates`) and
keeps, per query, the successful refinement whose features match their references best (the
lowest :attr:`~s2dloc.fpnp.FPnPResult.match_ratio`).
"""

from __future__ import annotations

import math

import torch

from s2dloc.fpnp.levels import map_camera
from s2dloc.fpnp.result import FPnPResult
from s2dloc.geometry import Camera, Pose, sample
from s2dloc.geometry.lie import so3_exp


def yaw_pitch_grid(step_deg: float, steps: int, dtype=torch.float64) -> torch.Tensor:
    """Rotations ``(K, 3, 3)``, ``K = (2 steps + 1)^2``, about the camera's y then x axis; the
    identity first."""
    if steps < 0 or not step_deg > 0:
        raise ValueError(f"need steps >= 0 and step_deg > 0, got {steps}, {step_deg}")
    r = torch.arange(-steps, steps + 1, dtype=dtype) * math.radians(step_deg)
    yaw, pitch = torch.meshgrid(r, r, indexing="ij")
    order = (yaw.flatten().abs() + pitch.flatten().abs()).argsort(stable=True)
    zeros = torch.zeros_like(yaw.flatten())
    R_yaw = so3_exp(torch.stack([zeros, yaw.flatten(), zeros], -1))
    R_pitch = so3_exp(torch.stack([pitch.flatten(), zeros, zeros], -1))
    return (R_pitch @ R_yaw)[order]


def candidate_scores(
    points3d: torch.Tensor,
    ref: torch.Tensor,
    fmap: torch.Tensor,
    camera: Camera,
    poses: Pose,
) -> torch.Tensor:
    """Truncated costs ``(B, K)`` of candidate poses ``(B, K)`` on one level.

    ``points3d (B, N, 3)``, ``ref (B, N, C)``, ``fmap (B, C, H_l, W_l)``; ``camera`` batch
    ``(B,)`` at full resolution.
    """
    B, K = poses.R.shape[:2]
    Xc = poses.transform(points3d[:, None].to(poses.dtype))  # (B, K, N, 3)
    uv, valid = _project(map_camera(camera, fmap), Xc)
    feats, inside = sample(fmap, uv.reshape(B, -1, 2).to(fmap.dtype))
    feats = feats.reshape(B, K, -1, fmap.shape[1])
    valid = valid & inside.reshape(B, K, -1)
    sq = (feats - ref[:, None].to(feats.dtype)).square().sum(-1)
    other = ref.roll(ref.shape[1] // 2, dims=1)
    null = (feats[:, :1] - other[:, None].to(feats.dtype)).square().sum(-1)
    null = null.masked_fill(~valid[:, :1], float("nan")).nanmedian(-1).values
    null = torch.nan_to_num(null, nan=float(sq.max()) if sq.numel() else 1.0)
    cost = torch.where(valid, torch.minimum(sq, null[:, :, None]), null[:, :, None])
    return cost.mean(-1)


def _project(camera: Camera, Xc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels ``(B, K, N, 2)`` and validity of camera points ``(B, K, N, 3)``."""
    B, K, N, _ = Xc.shape
    uv, valid = camera.project(Xc.reshape(B, K * N, 3).to(camera.dtype))
    return uv.reshape(B, K, N, 2), valid.reshape(B, K, N)


def start_candidates(
    points3d: torch.Tensor,
    ref_features: list[torch.Tensor],
    query_features: list[torch.Tensor],
    camera: Camera,
    init_pose: Pose,
    step_deg: float = 10.0,
    steps: int = 2,
    keep: int = 1,
) -> Pose:
    """The ``keep`` best rotated starts ``(B, keep)`` on the coarsest level, best first.

    Arguments as for :meth:`~s2dloc.fpnp.FeatureMetricPnP.refine_batch`: ``points3d (B, N, 3)``,
    per level ``ref_features (B, N, C_l)`` and ``query_features (B, C_l, H_l, W_l)``.
    """
    grid = yaw_pitch_grid(step_deg, steps, init_pose.dtype).to(init_pose.R.device)
    if not 1 <= keep <= len(grid):
        raise ValueError(f"keep must be between 1 and {len(grid)} (the grid), got {keep}")
    coarsest = min(range(len(query_features)), key=lambda i: query_features[i].shape[-1])
    R = grid[None] @ init_pose.R[:, None]  # rotation about the camera centre
    t = (grid[None] @ init_pose.t[:, None, :, None])[..., 0]
    with torch.no_grad():
        scores = candidate_scores(
            points3d, ref_features[coarsest], query_features[coarsest], camera, Pose(R, t)
        )
    best = scores.argsort(dim=-1, stable=True)[:, :keep]  # (B, keep)
    idx = torch.arange(len(best), device=best.device)[:, None]
    return Pose(R[idx, best], t[idx, best])


def search_and_refine(
    solver,
    points3d: torch.Tensor,
    ref_features: list[torch.Tensor],
    query_features: list[torch.Tensor],
    camera: Camera,
    init_pose: Pose,
    step_deg: float = 10.0,
    steps: int = 2,
    keep: int = 3,
    **refine_kwargs,
) -> FPnPResult:
    """Refine each query ``(B,)`` from its ``keep`` best rotated starts and keep the best
    result (module doc); ``solver`` is a :class:`~s2dloc.fpnp.FeatureMetricPnP`, the other
    arguments as for its ``refine_batch`` (``refine_kwargs``: ``weights``, ``mask``).

    When no refinement of a query succeeds, its result is that of the best-scored start (its
    pose is that start, ``success`` False).
    """
    starts = start_candidates(
        points3d, ref_features, query_features, camera, init_pose, step_deg, steps, keep
    )
    results = [
        solver.refine_batch(
            points3d, ref_features, query_features, camera, starts[:, k], **refine_kwargs
        )
        for k in range(keep)
    ]
    return FPnPResult.pick(results, best_result(results))


def best_result(results: list[FPnPResult]) -> torch.Tensor:
    """Per query ``(B,)``, the index of the successful result with the lowest match ratio
    (the first on ties; 0 when none succeeded)."""
    ratio = torch.stack([r.match_ratio.double().cpu() for r in results])  # (K, B)
    ok = torch.stack([r.success.cpu() for r in results]) & ~ratio.isnan()
    score = torch.where(ok, ratio, torch.full_like(ratio, math.inf))
    index = score.argmin(0)
    return torch.where(ok.any(0), index, torch.zeros_like(index))
