"""PnP-RANSAC per reference in two passes: the poses max_trials gives, for less."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import s2dloc.localization.pose_stages as stages
from s2dloc.geometry import Camera, Pose
from s2dloc.localization.config import DEFAULTS
from s2dloc.localization.pnp import estimate_pose, settled, trials_needed
from s2dloc.localization.pose_stages import rank_pnp
from s2dloc.localization.query import Query, QueryResult
from s2dloc.localization.s2d import RefMatches

CAM = Camera("PINHOLE", torch.tensor([640, 480]), torch.tensor([500.0, 500.0, 320.0, 240.0]))
TRUTH = Pose.exp(torch.tensor([0.3, -0.2, 0.5, 0.05, -0.1, 0.02], dtype=torch.float64))
# The two passes alone: no second RANSAC at the inliers' noise (tests/localization/
# test_tighten_pose.py checks that rank_pnp applies it to the top two references).
PNP = {
    **DEFAULTS["pnp"],
    "max_error": 6.0,
    "min_inliers": 12,
    "seed": 0,
    "max_trials": 10000,
    "first_trials": 500,
    "noise_factor": 0.0,
}


def _reference(g, inliers: int, outliers: int) -> RefMatches:
    """``inliers`` matches of TRUTH (0.5 px noise) and ``outliers`` random ones, shuffled."""
    p = g.uniform([0, 0], [640, 480], (inliers + outliers, 2))
    z = g.uniform(5, 20, len(p))
    X = TRUTH.inv().transform(torch.from_numpy(np.c_[(p - [320, 240]) / 500 * z[:, None], z]))
    X = X.numpy()
    p[:inliers] += g.normal(0, 0.5, (inliers, 2))
    X[inliers:] = g.uniform(-20, 20, (outliers, 3)) + [0, 0, 30]  # elsewhere
    order = g.permutation(len(p))
    ids = np.arange(len(p), dtype=np.int64)
    return RefMatches(p[order], ids, ids, X[order], np.ones(len(p)), np.full(len(p), np.nan))


def _refs() -> dict[str, RefMatches]:
    g = np.random.default_rng(0)
    return {
        "clear": _reference(g, 300, 200),  # settles in the first pass
        # 8% inliers: 500 trials miss them, 10000 find them; it could hold a rival
        "large": _reference(g, 120, 1380),
        # 14 inliers of 150 (found by 10000 trials only), too few matches to hold a rival
        "weak": _reference(g, 14, 136),
    }


def _masks(per_ref: dict[str, RefMatches]) -> dict[str, np.ndarray]:
    return {name: m.inliers.copy() for name, m in per_ref.items()}


def _alone(m: RefMatches, trials: int) -> np.ndarray:
    pnp = estimate_pose(m.p2d, m.points3d, CAM, {**PNP, "max_trials": trials}, refine=False)
    return pnp.inliers if pnp.success else np.zeros(len(m), bool)


def test_trials_needed_and_settled_follow_ransac_confidence():
    assert trials_needed(0.5) < trials_needed(0.2) < trials_needed(0.05)
    assert trials_needed(0.2, multiplier=False) == pytest.approx(trials_needed(0.2) / 3)
    assert trials_needed(0.0) == np.inf and trials_needed(1.0) == 1.0
    m = _refs()["clear"]
    clear = estimate_pose(m.p2d, m.points3d, CAM, {**PNP, "max_trials": 500}, refine=False)
    assert settled(clear, len(m), 500) and not settled(clear, len(m), 2)


def test_two_passes_give_max_trials_poses_except_for_references_that_cannot_compete():
    per_ref = _refs()
    res = QueryResult("q")
    ranked = rank_pnp(Query("q", CAM), per_ref, res, PNP, rival_support=0.7)
    got = _masks(per_ref)
    assert [name for name, _ in ranked][0] == "clear"
    assert np.array_equal(got["clear"], _alone(per_ref["clear"], 10000))
    assert not _alone(per_ref["large"], 500).any()  # the first pass alone misses it
    assert np.array_equal(got["large"], _alone(per_ref["large"], 10000))
    assert got["large"].sum() >= 120
    # The weak reference kept its first pass: it could never reach 0.7 x 300 inliers.
    assert _alone(per_ref["weak"], 10000).sum() >= 14 and not got["weak"].any()
    assert res.matches == {name: len(m) for name, m in per_ref.items()}


def test_without_a_rival_bound_every_unsettled_reference_runs_max_trials():
    per_ref = _refs()
    rank_pnp(Query("q", CAM), per_ref, QueryResult("q"), PNP, rival_support=0.0)
    for name, mask in _masks(per_ref).items():
        assert np.array_equal(mask, _alone(per_ref[name], 10000)), name


def test_the_first_pass_best_runs_max_trials_unless_settled(monkeypatch):
    """A best reference at 45% inliers has not settled after 500 trials (pycolmap asks for
    about 1260 at that ratio): it runs again, whatever a rival bound would allow."""
    runs = []

    def counted(p2d, p3d, cam, conf, refine=True):
        runs.append((len(p2d), conf["max_trials"]))
        return estimate_pose(p2d, p3d, cam, conf, refine)

    monkeypatch.setattr(stages, "estimate_pose", counted)
    g = np.random.default_rng(3)
    per_ref = {"lead": _reference(g, 225, 275), "other": _reference(g, 0, 300)}
    rank_pnp(Query("q", CAM), per_ref, QueryResult("q"), PNP, rival_support=0.7)
    assert sorted(runs) == [(300, 500), (500, 500), (500, 10000)]
