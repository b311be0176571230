"""A PnP pose checked against a RANSAC at the noise of its own inliers (``tighten_pose``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from s2dloc.geometry import Camera, Pose
from s2dloc.localization.config import DEFAULTS
from s2dloc.localization.pnp import (
    RAYLEIGH_MEDIAN,
    estimate_pose,
    noise_threshold,
    reprojection_errors,
    tighten_pose,
)
from s2dloc.localization.pose_stages import rank_pnp
from s2dloc.localization.query import Query, QueryResult
from s2dloc.localization.s2d import RefMatches

CAM = Camera("PINHOLE", torch.tensor([640, 480]), torch.tensor([500.0, 500.0, 320.0, 240.0]))
TRUTH = Pose.exp(torch.tensor([0.3, -0.2, 0.5, 0.05, -0.1, 0.02], dtype=torch.float64))
PNP = {**DEFAULTS["pnp"], "max_error": 6.0, "noise_factor": 3.0, "min_threshold": 1.0}


def _orbit(theta_deg: float, depth: float) -> Pose:
    """TRUTH turned by ``theta_deg`` about its camera's y axis through the point ``depth`` ahead:
    the direction a narrow band of points at that depth hardly constrains."""
    th = math.radians(theta_deg)
    c, s = math.cos(th), math.sin(th)
    R = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)
    centre = torch.tensor([0.0, 0.0, depth], dtype=torch.float64)
    return Pose(R, centre - R @ centre) @ TRUTH


def _seen(pose: Pose, g, n: int, zlim, noise: float, lo=(250, 180), hi=(390, 300)):
    """``n`` world points at depths ``zlim`` that ``pose`` sees in the pixel box ``lo``-``hi``,
    and their pixels plus Gaussian noise of ``noise`` px."""
    p = g.uniform(lo, hi, (n, 2))
    z = g.uniform(*zlim, n)
    X_cam = torch.from_numpy(np.c_[(p - [320, 240]) / 500 * z[:, None], z])
    return p + g.normal(0, noise, p.shape), pose.inv().transform(X_cam).numpy()


def _narrow_band_with_wrong_matches():
    """150 right matches in a narrow far band (0.3 px noise) and 15 wrong ones that a pose 2
    degrees around the band fits: within 6 px that pose explains all 165."""
    g = np.random.default_rng(0)
    p_ok, X_ok = _seen(TRUTH, g, 150, (38, 44), 0.3)
    p_bad, X_bad = _seen(_orbit(2.0, 41.0), g, 15, (15, 25), 0.3)
    return np.r_[p_ok, p_bad], np.r_[X_ok, X_bad]


def _centre_error(pose: Pose) -> float:
    return float(pose.center_distance_to(TRUTH))


def test_a_pose_that_takes_in_wrong_matches_is_replaced_by_the_tight_fit():
    p2d, X = _narrow_band_with_wrong_matches()
    assert np.median(reprojection_errors(p2d[150:], X[150:], CAM, TRUTH)) > 10  # really wrong
    loose = estimate_pose(p2d, X, CAM, PNP)
    assert loose.success and loose.num_inliers == 165 and _centre_error(loose.pose) > 1.0

    tight = tighten_pose(loose, p2d, X, CAM, PNP)
    assert _centre_error(tight.pose) < 0.1 and float(tight.pose.angle_to(TRUTH)) < 0.15
    # the inliers are those within max_error at the new pose: the right matches only
    err = reprojection_errors(p2d, X, CAM, tight.pose)
    np.testing.assert_array_equal(tight.inliers, err < PNP["max_error"])
    assert tight.inliers[:150].all() and not tight.inliers[150:].any()


def test_off_keeps_the_pose():
    p2d, X = _narrow_band_with_wrong_matches()
    loose = estimate_pose(p2d, X, CAM, PNP)
    assert tighten_pose(loose, p2d, X, CAM, {**PNP, "noise_factor": 0.0}) is loose


def test_noisy_inliers_keep_the_pose():
    """Inliers whose noise puts the tight threshold above 0.75 max_error are left alone."""
    g = np.random.default_rng(1)
    p2d, X = _seen(TRUTH, g, 200, (5, 15), 2.0, lo=(10, 10), hi=(630, 470))
    pnp = estimate_pose(p2d, X, CAM, PNP)
    assert tighten_pose(pnp, p2d, X, CAM, PNP) is pnp


def test_a_well_constrained_pose_stays_right():
    g = np.random.default_rng(2)
    p2d, X = _seen(TRUTH, g, 200, (5, 15), 0.3, lo=(10, 10), hi=(630, 470))
    pnp = estimate_pose(p2d, X, CAM, PNP)
    out = tighten_pose(pnp, p2d, X, CAM, PNP)
    assert _centre_error(out.pose) <= _centre_error(pnp.pose) + 1e-3
    assert _centre_error(out.pose) < 0.02 and out.num_inliers == 200


def test_a_failed_pose_is_returned_as_is():
    p2d, X = _narrow_band_with_wrong_matches()
    failed = estimate_pose(p2d[:5], X[:5], CAM, PNP)
    assert not failed.success
    assert tighten_pose(failed, p2d[:5], X[:5], CAM, PNP) is failed


def test_rank_pnp_tightens_the_top_references_and_records_their_inliers():
    p2d, X = _narrow_band_with_wrong_matches()
    ids = np.arange(len(p2d), dtype=np.int64)
    ones, nan = np.ones(len(p2d)), np.full(len(p2d), np.nan)
    per_ref = {"narrow": RefMatches(p2d, ids, ids, X, ones, nan)}
    res = QueryResult("q")
    (name, pnp), *_ = rank_pnp(Query("q", CAM), per_ref, res, PNP)
    assert name == "narrow" and _centre_error(pnp.pose) < 0.1
    np.testing.assert_array_equal(per_ref["narrow"].inliers, pnp.inliers)
    assert res.inliers == {"narrow": 150} and res.matches == {"narrow": 165}


def test_noise_threshold_is_the_factor_times_the_rayleigh_noise_within_its_bounds():
    err = np.array([0.2, 0.5, 0.6, 0.7, 3.0])  # median 0.6
    assert noise_threshold(err, PNP) == pytest.approx(3.0 * 0.6 / RAYLEIGH_MEDIAN)
    assert noise_threshold(err / 10, PNP) == PNP["min_threshold"]
    assert noise_threshold(err * 10, PNP) == PNP["max_error"]
    assert noise_threshold(err, {**PNP, "noise_factor": 0.0}) == PNP["max_error"]
    assert noise_threshold(np.empty(0), PNP) == PNP["max_error"]
    # Rayleigh: the median error norm of isotropic 2D Gaussian noise of std 1
    g = np.random.default_rng(0)
    assert np.median(np.linalg.norm(g.normal(size=(200_000, 2)), axis=1)) == pytest.approx(
        RAYLEIGH_MEDIAN, abs=0.005
    )
