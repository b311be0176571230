"""The pose stages of the localization pipeline (:class:`~s2dloc.localization.pipeline.Localizer`):
PnP-RANSAC per reference, the best pose refined on every reference's matches it explains, the
verdict on the best PnP pose, the points F-PnP refines with and the verdict on F-PnP's update.
Each stage records its figures in the query's result."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from functools import partial

import numpy as np
import torch

from s2dloc.fpnp import FPnPResult
from s2dloc.geometry import Pose
from s2dloc.localization import verify as V
from s2dloc.localization.cache import RefFeatures
from s2dloc.localization.evidence import FPnPRecord
from s2dloc.localization.map import Map
from s2dloc.localization.pnp import (
    RAYLEIGH_MEDIAN,
    PnPResult,
    estimate_pose,
    refine_pose,
    reprojection_errors,
    settled,
    tighten_pose,
    trials_needed,
)
from s2dloc.localization.query import Query, QueryResult
from s2dloc.localization.s2d import RefMatches
from s2dloc.localization.stages import observations_seen_at
from s2dloc.utils.threads import worker_pool


@dataclasses.dataclass
class PnPCheck:
    """The best PnP pose's ``covariance (6, 6)`` and the median depth of its inliers."""

    covariance: torch.Tensor
    depth: float


def rank_pnp(
    query: Query,
    per_ref: dict[str, RefMatches],
    res: QueryResult,
    conf: dict,
    rival_support: float = 0.0,
) -> list[tuple[str, PnPResult]]:
    """PnP-RANSAC per reference with the ``pnp`` settings ``conf`` (sets counts in ``res`` and
    the references' inlier masks); successes, most inliers first, as ``[(name, PnPResult)]``.

    RANSAC first runs at most ``first_trials`` trials on each reference. A reference whose run
    did not stop by its confidence (:func:`~s2dloc.localization.pnp.settled`) runs again with
    ``max_trials``, unless it is not the first pass's best and those first trials would have
    found, with RANSAC's confidence, a pose with ``rival_support`` x the best's inliers (the
    verdict's ``agree_min_support``) among its matches: such a reference is neither the best
    nor a rival the verdict compares with it, and keeps the first pass's pose and inliers.
    Every other reference gets the pose and inliers that ``max_trials`` alone gives (same
    seed).

    Only the two poses used later (the best's, and the second's for the agreement check) get
    the non-linear refinement, which costs more than RANSAC itself when inliers are many, and
    the check against a RANSAC at their inliers' noise
    (:func:`~s2dloc.localization.pnp.tighten_pose`), which sets their inliers again."""
    names = list(per_ref)
    most = int(conf["max_trials"])
    first = min(int(conf["first_trials"]), most)

    def ransac(name: str, trials: int) -> PnPResult:
        m = per_ref[name]
        return estimate_pose(
            m.p2d, m.points3d, query.camera, {**conf, "max_trials": trials}, refine=False
        )

    # pycolmap releases the GIL: the references run in parallel on the caller's workers.
    pool = worker_pool()
    poses = list(pool.map(lambda n: ransac(n, first), names))
    counts = [p.num_inliers if p.success else 0 for p in poses]
    lead = int(np.argmax(counts)) if counts else -1  # the first pass's best reference

    def rerun(i: int) -> bool:
        n = len(per_ref[names[i]])
        if first == most or settled(poses[i], n, first):
            return False
        rival = rival_support * counts[lead] / max(n, 1)
        return i == lead or trials_needed(rival, multiplier=False) > first

    again = [i for i in range(len(names)) if rerun(i)]
    full = pool.map(lambda i: ransac(names[i], most), again)
    for i, pnp in zip(again, full):
        poses[i] = pnp
    ranked = _record_ranked(dict(zip(names, poses)), per_ref, res)
    ranked[:2] = list(pool.map(partial(_refine, query, per_ref, conf), ranked[:2]))
    for name, pnp in ranked[:2]:
        per_ref[name].inliers = np.asarray(pnp.inliers, bool)
        res.inliers[name] = pnp.num_inliers
    return ranked


def _refine(
    query: Query, per_ref: dict[str, RefMatches], conf: dict, item: tuple[str, PnPResult]
) -> tuple[str, PnPResult]:
    """A reference's RANSAC pose ``item`` refined, then checked against a RANSAC at its
    inliers' noise (:func:`~s2dloc.localization.pnp.tighten_pose`)."""
    m = per_ref[item[0]]
    pnp = refine_pose(item[1], m.p2d, m.points3d, query.camera)
    return item[0], tighten_pose(pnp, m.p2d, m.points3d, query.camera, conf)


def _record_ranked(
    poses: dict[str, PnPResult], per_ref: dict[str, RefMatches], res: QueryResult
) -> list[tuple[str, PnPResult]]:
    """Record each reference's match and inlier counts in ``res`` and a success's inlier mask
    in ``per_ref``; the successes, most inliers first (retrieval order breaks ties)."""
    ranked = []
    for name, pnp in poses.items():
        res.matches[name] = len(per_ref[name])
        res.inliers[name] = pnp.num_inliers if pnp.success else 0
        if pnp.success:
            per_ref[name].inliers = np.asarray(pnp.inliers, bool)
            ranked.append((name, pnp))
    ranked.sort(key=lambda x: -x[1].num_inliers)  # stable: retrieval order breaks ties
    return ranked


def refine_on_all_references(
    query: Query,
    per_ref: dict[str, RefMatches],
    pose: Pose,
    max_error: float,
    rounds: int = 2,
) -> Pose:
    """A reference's PnP ``pose`` refined on the matches of every reference in ``per_ref``
    that it explains within ``max_error`` pixels (chosen again after each of ``rounds``
    refinements).

    One reference's points often cover a narrow band of depth and image, where rotation and a
    sideways shift trade off; the other references see the scene from elsewhere along the
    route and add the parallax that fixes that direction. Matches of a reference of another
    place do not fit the pose and take no part. The verdict still judges the best reference's
    own pose and matches (:class:`Evidence`): its thresholds are of single-reference fits."""
    cam = query.camera
    p2d = np.concatenate([m.p2d for m in per_ref.values()])
    p3d = np.concatenate([m.points3d for m in per_ref.values()])
    for _ in range(rounds):
        fit = reprojection_errors(p2d, p3d, cam, pose) < max_error
        pose = refine_pose(PnPResult(pose, fit, True), p2d, p3d, cam).pose
    return pose


@dataclasses.dataclass
class PoseJudge:
    """What a query's verdict is judged on: its PnP results ``ranked`` (best first, as from
    :func:`rank_pnp`) and their matches ``per_ref``, with the RANSAC threshold ``max_error``
    (pixels) and the verdict's ``thresholds``."""

    query: Query
    per_ref: dict[str, RefMatches]
    ranked: list[tuple[str, PnPResult]]
    max_error: float
    thresholds: V.VerifyThresholds

    def stats_at(self, pose: Pose, inliers: np.ndarray | None = None) -> V.PnPStats:
        """The evidence of the best reference's matches for ``pose``: its ``inliers (K,)``
        (None: the matches within ``max_error`` pixels at ``pose``), and the second
        reference's PnP pose and matches against ``pose``."""
        cam, e = self.query.camera, self.max_error
        m = self.per_ref[self.ranked[0][0]]
        if inliers is None:
            err_all = reprojection_errors(m.p2d, m.points3d, cam, pose)
            inliers = err_all < e
            err = err_all[inliers]
        else:
            err = reprojection_errors(m.p2d[inliers], m.points3d[inliers], cam, pose)
        p3d = m.points3d[inliers]
        X = pose.double().transform(torch.from_numpy(np.asarray(p3d, np.float64)))
        depth = float(X[:, 2].median()) if len(X) else math.nan
        size = (float(cam.size[0]), float(cam.size[1]))
        stats = V.pnp_stats(m.p2d[inliers], err, len(m), size, depth, e)
        if len(self.ranked) > 1:
            name2, second = self.ranked[1]
            stats.second_support = second.num_inliers / max(stats.num_inliers, 1)
            m2 = self.per_ref[name2]
            fit = reprojection_errors(m2.p2d, m2.points3d, cam, pose) < e
            stats.second_cross = int(fit.sum()) / max(second.num_inliers, 1)
            rot, trans = V.pose_difference(pose, second.pose, depth)
            stats.second_rotation, stats.second_translation = rot, trans
        return stats

    def judge_pnp(self, res: QueryResult) -> PnPCheck:
        """Judge the best reference's PnP pose (sets ``res.verify.pnp``, ``res.reason``)."""
        name, pnp = self.ranked[0]
        stats = self.stats_at(pnp.pose, pnp.inliers)
        res.verify.pnp = stats
        decided = V.rerank_decided(res.verify, self.thresholds)
        res.reason = V.check_pnp(stats, self.thresholds, decided)
        # Pixel noise from the median inlier error (Rayleigh), >= 0.5 px.
        sigma = max(stats.residual_median / RAYLEIGH_MEDIAN, 0.5)
        p3d = self.per_ref[name].points3d[pnp.inliers]
        cov = V.pnp_covariance(p3d, self.query.camera, pnp.pose, sigma)
        return PnPCheck(cov, stats.depth)

    def judge_final(self, res: QueryResult, fpnp_pose: Pose) -> None:
        """After F-PnP (its pose ``fpnp_pose``, judged by :func:`accept_fpnp`), judge the best
        reference's matches at that pose (``res.verify.final``) and take the verdict of
        :func:`verify.judge_record`: ``res.reason``, and F-PnP's pose as the answer (``res.pose``,
        ``res.fpnp_success``) when trusted."""
        if res.verify.fpnp.solver_success:
            res.verify.final = self.stats_at(fpnp_pose)
        res.reason, use_fpnp = V.judge_record(res.verify, res.fpnp, self.thresholds)
        if use_fpnp and not res.fpnp_success:  # its move is supported by the matches
            res.fpnp_success, res.pose = True, fpnp_pose
            res.fpnp.message = ""


def fpnp_observations(
    query: Query,
    per_ref: dict[str, RefMatches],
    res: QueryResult,
    conf: dict,
    map_: Map | None = None,
) -> dict[str, np.ndarray]:
    """Observation indices ``(N_r,)`` of the top references by PnP inliers (``fpnp`` settings
    ``conf``): their matches that are inliers at the PnP pose (``points="inliers"``), or every
    observation whose point projects into the query at that pose (``"visible"``; needs the
    map, :func:`~s2dloc.localization.stages.observations_seen_at`)."""
    if conf["points"] == "visible" and map_ is None:
        raise ValueError("fpnp.points='visible' needs the references of the map (map_)")
    order = sorted(res.inliers, key=lambda n: -res.inliers[n])[: int(conf["num_refs"])]
    out = {}
    for name in order:
        if res.inliers[name] == 0:
            continue
        if conf["points"] == "visible":
            out[name] = observations_seen_at(map_, name, query.camera, res.pnp_pose)
            continue
        m = per_ref[name]
        err = reprojection_errors(m.p2d, m.points3d, query.camera, res.pnp_pose)
        out[name] = m.obs[err < conf["inlier_threshold"]]
    return out


def gather_points(
    refs: Mapping[str, RefFeatures],
    map_: Map,
    obs: dict[str, np.ndarray],
    num_levels: int,
    max_points: int,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Map points ``(N, 3)`` and their reference features per level ``(N, C_l)`` of the
    observations ``obs``, evenly subsampled to at most ``max_points``."""
    chosen = [refs[n] for n in obs]
    ids = np.concatenate([r.point3D_ids[o] for r, o in zip(chosen, obs.values())])
    X = torch.from_numpy(map_.xyz(ids)).double()
    F = [
        torch.cat([r.features[li][o] for r, o in zip(chosen, obs.values())]).float()
        for li in range(num_levels)
    ]
    if len(X) > max_points:
        sel = torch.from_numpy(np.linspace(0, len(X) - 1, max_points).round()).long()
        X, F = X[sel], [f[sel] for f in F]
    return X, F


def accept_fpnp(
    res: QueryResult,
    init: Pose,
    out: FPnPResult,
    num_points: int,
    depth: float,
    thresholds: V.VerifyThresholds,
    pnp_cov: torch.Tensor | None = None,
) -> None:
    """Judge F-PnP's update ``out`` of ``init`` from ``num_points`` points: record its figures
    and verdict in ``res`` and keep its pose only if :func:`verify.check_fpnp` trusts it."""
    stats = V.fpnp_stats(
        init,
        out.pose,
        out.covariance.reshape(6, 6),
        pnp_cov,
        depth,
        float(out.cost_init),
        float(out.cost_final),
        num_points,
        int(out.num_valid),
        bool(out.success),
        out.message[0] if out.message else "",
        math.nan if out.match_ratio is None else float(out.match_ratio.reshape(-1)[0]),
    )
    why = V.check_fpnp(stats, thresholds)
    res.verify.fpnp = stats
    res.fpnp = FPnPRecord(
        num_points=num_points,
        iterations=out.iterations.tolist(),
        cost_init=float(out.cost_init),
        cost_final=float(out.cost_final),
        rotation_change_deg=stats.rotation_change,
        pose=[*out.pose.quat().tolist(), *out.pose.t.tolist()],
        message=why and f"{why}: rejected",
    )
    if out.history is not None:  # cost per LM iteration, per level (coarse to fine)
        res.fpnp.cost_history = [[float(r.cost) for r in lv] for lv in out.history]
    res.fpnp_success = not why
    if res.fpnp_success:
        res.pose = out.pose
