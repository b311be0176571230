"""Absolute pose from 2D-3D matches: LO-RANSAC + refinement (pycolmap) with the query's own
camera model and distortion."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from s2dloc.geometry import Camera, Pose

logger = logging.getLogger(__name__)


@dataclass
class PnPResult:
    """``pose`` (cam_from_world, None on failure), ``inliers (K,)`` bool, ``success``."""

    pose: Pose | None
    inliers: np.ndarray
    success: bool
    message: str = ""

    @property
    def num_inliers(self) -> int:
        return int(self.inliers.sum())


def estimate_pose(
    p2d: np.ndarray, p3d: np.ndarray, camera: Camera, conf: dict, refine: bool = True
) -> PnPResult:
    """Pose of a query with ``camera`` from pixels ``(K, 2)`` and world points ``(K, 3)``:
    LO-RANSAC, then (``refine``) the non-linear refinement of :func:`refine_pose`."""
    import pycolmap

    K = len(p2d)
    none = np.zeros(K, bool)
    min_inliers = int(conf["min_inliers"])
    if K < max(4, min_inliers):
        return PnPResult(None, none, False, f"{K} matches < {max(4, min_inliers)}")
    opts = pycolmap.AbsolutePoseEstimationOptions()
    opts.ransac.max_error = float(conf["max_error"])
    opts.ransac.random_seed = int(conf["seed"])
    opts.ransac.max_num_trials = int(conf["max_trials"])
    ret = pycolmap.estimate_absolute_pose(
        np.ascontiguousarray(p2d, np.float64),
        np.ascontiguousarray(p3d, np.float64),
        camera.to_colmap(),
        opts,
    )
    if ret is None:
        return PnPResult(None, none, False, "RANSAC found no pose")
    inliers = np.asarray(ret["inlier_mask"], bool)
    pose = Pose.from_colmap(ret["cam_from_world"])
    if inliers.sum() < min_inliers:
        return PnPResult(pose, inliers, False, f"{int(inliers.sum())} inliers < {min_inliers}")
    result = PnPResult(pose, inliers, True)
    return refine_pose(result, p2d, p3d, camera) if refine else result


def trials_needed(ratio: float, multiplier: bool = True) -> float:
    """RANSAC trials (P3P samples of 3) after which pycolmap's RANSAC has found a pose of
    inlier ratio ``ratio``, if there is one, with its confidence (times its multiplier of the
    number of trials where ``multiplier``: the number at which it stops); inf for ratio 0."""
    import pycolmap

    ransac = pycolmap.AbsolutePoseEstimationOptions().ransac
    if ratio >= 1.0:
        return 1.0
    miss = math.log1p(-(max(ratio, 0.0) ** 3))
    if miss == 0.0:  # ratio**3 below round-off: no number of trials is enough
        return math.inf
    factor = ransac.dyn_num_trials_multiplier if multiplier else 1.0
    return factor * math.log(1 - ransac.confidence) / miss


def settled(pnp: PnPResult, num_matches: int, trials: int) -> bool:
    """Whether a RANSAC run of at most ``trials`` trials stopped by its confidence, so that one
    allowed more trials (same seed) returns the same pose and inliers: the trials its inlier
    ratio asks for (:func:`trials_needed`) are at most half of ``trials``, a margin for the
    support it counted before its last local optimisation."""
    if not pnp.success or num_matches == 0:
        return False
    return trials_needed(pnp.num_inliers / num_matches) <= trials / 2


def refine_pose(pnp: PnPResult, p2d: np.ndarray, p3d: np.ndarray, camera: Camera) -> PnPResult:
    """``pnp`` with its pose refined on its inliers (pycolmap's robust non-linear refinement,
    what ``estimate_and_refine_absolute_pose`` does after RANSAC); unchanged if it failed."""
    import pycolmap

    if not pnp.success:
        return pnp
    ret = pycolmap.refine_absolute_pose(
        pnp.pose.to_colmap(),
        np.ascontiguousarray(p2d, np.float64),
        np.ascontiguousarray(p3d, np.float64),
        pnp.inliers,
        camera.to_colmap(),
    )
    if ret is None:
        return pnp
    return PnPResult(Pose.from_colmap(ret["cam_from_world"]), pnp.inliers, True, pnp.message)


# Median of the pixel error norm under isotropic 2D Gaussian noise of std sigma (Rayleigh).
RAYLEIGH_MEDIAN = 1.177


def noise_threshold(inlier_errors: np.ndarray, conf: dict) -> float:
    """``noise_factor`` times the noise of inliers with pixel errors ``(K,)`` (their median /
    :data:`RAYLEIGH_MEDIAN`), at least ``min_threshold`` and at most ``max_error`` pixels;
    ``max_error`` when ``noise_factor`` is 0 or there are no inliers."""
    max_error, factor = float(conf["max_error"]), float(conf["noise_factor"])
    if factor <= 0 or len(inlier_errors) == 0:
        return max_error
    sigma = float(np.median(inlier_errors)) / RAYLEIGH_MEDIAN
    return min(max(factor * sigma, float(conf["min_threshold"])), max_error)


def tighten_pose(
    pnp: PnPResult, p2d: np.ndarray, p3d: np.ndarray, camera: Camera, conf: dict
) -> PnPResult:
    """``pnp`` (a refined RANSAC pose of the matches ``p2d (K, 2)``, ``p3d (K, 3)``) checked
    against a RANSAC at the noise of its own inliers.

    RANSAC's ``max_error`` bounds the noise from above. When the inliers fit much tighter, a
    pose off along a poorly constrained direction (points in one band of depth, where a
    rotation and a sideways shift trade off) can take in wrong matches within ``max_error``
    while fitting the right ones only slightly worse. A second RANSAC at ``noise_factor``
    times the noise ``sigma`` (median inlier error / :data:`RAYLEIGH_MEDIAN`, at least
    ``min_threshold`` pixels), refined, gives the pose the tight fit prefers. The pose with the
    lower truncated quadratic cost at that threshold is kept, with the matches within
    ``max_error`` at it as inliers. Unchanged when ``noise_factor`` is 0, when the threshold
    would be above 0.75 ``max_error``, or when the second RANSAC fails."""
    max_error = float(conf["max_error"])
    if not pnp.success or float(conf["noise_factor"]) <= 0:
        return pnp
    err = reprojection_errors(p2d, p3d, camera, pnp.pose)
    threshold = noise_threshold(err[err < max_error], conf)  # max_error without inliers
    if threshold > 0.75 * max_error:
        return pnp
    tight = estimate_pose(p2d, p3d, camera, {**conf, "max_error": threshold})
    if not tight.success:
        return pnp
    err_tight = reprojection_errors(p2d, p3d, camera, tight.pose)
    t2 = threshold * threshold
    if np.minimum(err_tight**2, t2).sum() >= np.minimum(err**2, t2).sum():
        return pnp
    return PnPResult(tight.pose, err_tight < max_error, True, pnp.message)


def reprojection_errors(p2d: np.ndarray, p3d: np.ndarray, camera: Camera, pose: Pose):
    """Pixel errors ``(K,)`` of world points projected at ``pose`` (inf if not projectable)."""
    X = pose.double().transform(torch.from_numpy(np.asarray(p3d, np.float64)))
    p, valid = camera.double().project(X)
    err = (p - torch.from_numpy(np.asarray(p2d, np.float64))).norm(dim=-1)
    return torch.where(valid, err, torch.full_like(err, float("inf"))).numpy()
