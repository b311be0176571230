"""Dense re-ranking of PnP hypotheses: of the two references' PnP poses with the most inliers,
keep first the one whose map points' features fit the query's dense features better.

Inlier counts rank sparse matches. A pose with many coherent but wrong matches can outnumber
the right one, and the dense features the whole method rests on can tell them apart: the map
points the top references see, projected at each pose, are compared with their reference
features on the finest query level (the median over the points valid at both poses of the
squared residual norm). The rival is put first only when its median is clearly lower, at most
:data:`MARGIN` times the best's: two poses that fit about as well are both near the truth, or
both wrong, and the inlier count stays the better guide between them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from s2dloc.fpnp.config import FPnPConfig
from s2dloc.fpnp.levels import prepare_levels
from s2dloc.geometry import Camera, Pose
from s2dloc.localization import verify as V
from s2dloc.localization.cache import RefFeatures
from s2dloc.localization.evidence import RerankRecord
from s2dloc.localization.map import Map
from s2dloc.localization.pnp import PnPResult
from s2dloc.localization.pose_stages import gather_points
from s2dloc.localization.query import Query
from s2dloc.localization.stages import observations_seen_at

# Poses closer than this (degrees and fraction of the scene depth) are the same hypothesis.
SAME_ROTATION_DEG = 0.5
SAME_CENTRE = 0.01
MARGIN = V.DENSE_MARGIN


def residual_medians(
    points: torch.Tensor,
    ref: torch.Tensor,
    fmap: torch.Tensor,
    camera: Camera,
    poses: list[Pose],
    margin: float = FPnPConfig.margin,
) -> list[float]:
    """Median squared residual norm ``||F(pi(T X_i)) - f_i||^2`` at each of ``poses``, over the
    points valid at all of them: ``points (N, 3)``, reference features ``ref (N, C)``, one
    query level ``fmap (C, H, W)`` and the full-resolution ``camera``. NaN without such points."""
    cam = Camera(camera.model, camera.size[None], camera.params[None]).float()
    X = points.float()[None]
    (level,), _ = prepare_levels(
        X, [ref.float()[None]], [fmap.float()[None]], cam, poses[0].float()[None], None, None
    )
    sq, valid = [], torch.ones(X.shape[1], dtype=torch.bool)
    for pose in poses:
        r = level.residuals(X, pose.float().matrix()[None], margin, FPnPConfig.min_depth)
        sq.append(r.sq[0])
        valid &= r.valid[0]
    if not valid.any():
        return [float("nan")] * len(poses)
    return [float(s[valid].median()) for s in sq]


def rerank_by_features(
    query: Query,
    levels: list[torch.Tensor],
    ranked: list[tuple[str, PnPResult]],
    refs: Mapping[str, RefFeatures],
    map_: Map,
    num_refs: int,
    max_points: int,
) -> tuple[list[tuple[str, PnPResult]], RerankRecord | None]:
    """``ranked`` (PnP results, most inliers first) with its first two swapped when the second
    pose's features fit clearly better (see the module), and a record of the comparison (None when
    there is no distinct second pose). The points: those of the ``num_refs`` references with most
    inliers that project into the query at the best pose, at most ``max_points``; ``levels``:
    the query's F-PnP levels ``(C_l, H_l, W_l)``."""
    if len(ranked) < 2:
        return ranked, None
    (name_a, a), (name_b, b) = ranked[:2]
    X_a = a.pose.double().transform(torch.from_numpy(map_.xyz(map_[name_a].point3D_ids)))
    depth = float(X_a[:, 2].abs().median()) if len(X_a) else 1.0
    rotation, centre = V.pose_difference(a.pose, b.pose, depth)
    if rotation < SAME_ROTATION_DEG and centre < SAME_CENTRE:
        return ranked, None
    cam = query.camera
    obs = {n: observations_seen_at(map_, n, cam, a.pose) for n, _ in ranked[:num_refs]}
    obs = {n: o for n, o in obs.items() if len(o)}
    if not obs:
        return ranked, None
    X, F = gather_points(refs, map_, obs, len(levels), max_points)
    finest = int(np.argmax([m.shape[-1] * m.shape[-2] for m in levels]))
    fit_a, fit_b = residual_medians(X, F[finest], levels[finest], cam, [a.pose, b.pose])
    swapped = bool(fit_b < MARGIN * fit_a)  # False when either is NaN
    record = RerankRecord([name_a, name_b], [fit_a, fit_b], rotation, centre, swapped)
    if swapped:
        ranked = [ranked[1], ranked[0], *ranked[2:]]
    return ranked, record
