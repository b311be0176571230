"""The best reference's PnP pose refined on every reference's matches it explains."""

from __future__ import annotations

import numpy as np
import torch

from s2dloc.geometry import Camera, Pose
from s2dloc.localization.pnp import estimate_pose
from s2dloc.localization.pose_stages import refine_on_all_references
from s2dloc.localization.query import Query
from s2dloc.localization.s2d import RefMatches

CAM = Camera("PINHOLE", torch.tensor([640, 480]), torch.tensor([500.0, 500.0, 320.0, 240.0]))
TRUTH = Pose.exp(torch.tensor([0.3, -0.2, 0.5, 0.05, -0.1, 0.02], dtype=torch.float64))
PNP = {"max_error": 6.0, "min_inliers": 12, "seed": 0, "max_trials": 10000}


def _matches(p2d: np.ndarray, X: np.ndarray) -> RefMatches:
    k = len(p2d)
    ids = np.arange(k, dtype=np.int64)
    return RefMatches(p2d, ids, ids, X, np.ones(k), np.full(k, np.nan))


def _seen(g, n, lo, hi, zlim, noise):
    """``n`` world points at depths ``zlim`` seen by TRUTH in the pixel box ``lo``-``hi``, with
    their pixels plus Gaussian noise of ``noise`` px: ``RefMatches``."""
    p = g.uniform(lo, hi, (n, 2))
    z = g.uniform(*zlim, n)
    X_cam = torch.from_numpy(np.c_[(p - [320, 240]) / 500 * z[:, None], z])
    X = TRUTH.inv().transform(X_cam).numpy()
    return _matches(p + g.normal(0, noise, p.shape), X)


def _error(pose: Pose) -> float:
    return float(pose.center_distance_to(TRUTH))


def test_other_references_fix_a_narrow_reference_and_another_place_takes_no_part():
    g = np.random.default_rng(0)
    narrow = _seen(g, 150, [250, 180], [390, 300], (40, 42), 0.5)  # far, small, noisy
    wide = _seen(g, 150, [10, 10], [630, 470], (15, 30), 0.0)  # nearer, spread, exact
    elsewhere = _matches(g.uniform(0, [640, 480], (100, 2)), g.uniform(-50, 50, (100, 3)))
    query = Query("q", CAM)
    best = estimate_pose(narrow.p2d, narrow.points3d, CAM, PNP)
    assert best.success and _error(best.pose) > 0.05  # the narrow reference alone is off

    per_ref = {"narrow": narrow, "wide": wide, "elsewhere": elsewhere}
    out = refine_on_all_references(query, per_ref, best.pose, PNP["max_error"])
    assert _error(out) < 0.1 * _error(best.pose)
    assert float(out.angle_to(TRUTH)) < 0.02

    without = refine_on_all_references(
        query, {"narrow": narrow, "wide": wide}, best.pose, PNP["max_error"]
    )
    assert torch.allclose(out.matrix(), without.matrix(), atol=1e-9)


def test_a_single_reference_keeps_its_refined_pose():
    g = np.random.default_rng(1)
    only = _seen(g, 200, [10, 10], [630, 470], (5, 15), 0.3)
    best = estimate_pose(only.p2d, only.points3d, CAM, PNP)
    out = refine_on_all_references(Query("q", CAM), {"only": only}, best.pose, 6.0)
    assert torch.allclose(out.matrix(), best.pose.matrix(), atol=1e-6)
