"""The verdict: each check on constructed cases with known answers, and the pipeline's use of it."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from s2dloc.geometry import Camera, Pose
from s2dloc.localization import verify as V
from s2dloc.localization.config import resolve
from s2dloc.localization.evidence import Evidence, FPnPRecord
from s2dloc.utils.config import ConfigError, parse_overrides

SIZE = (640.0, 480.0)
TH = V.VerifyThresholds()


def _camera() -> Camera:
    return Camera("PINHOLE", torch.tensor(SIZE), torch.tensor([500.0, 500.0, 320.0, 240.0]))


def _scene(n: int = 300, seed: int = 0):
    """World points seen by a camera at a known pose: (pose, world points (n, 3), pixels)."""
    g = np.random.default_rng(seed)
    pose = Pose.exp(torch.tensor([0.3, -0.2, 0.5, 0.05, -0.1, 0.02], dtype=torch.float64))
    p = g.uniform([10, 10], [630, 470], (n, 2))
    z = g.uniform(8, 12, n)
    cam = _camera().double()
    X_cam = torch.from_numpy(np.c_[(p - [320, 240]) / 500 * z[:, None], z])
    X = pose.inv().transform(X_cam).numpy()
    return pose, X, cam.project(pose.transform(torch.from_numpy(X)))[0].numpy()


def _pnp(**kw) -> V.PnPStats:
    pose, X, p = _scene()
    s = V.pnp_stats(p, np.full(len(p), 0.8), 400, SIZE, 10.0, 6.0)
    return dataclasses.replace(s, **kw)


def test_grid_coverage_and_hull():
    corner = np.random.default_rng(0).uniform([0, 0], [100, 100], (50, 2))
    assert V.grid_coverage(corner, SIZE) == 1 / 16
    assert V.hull_fraction(corner, SIZE) < 100 * 100 / (640 * 480)
    full = np.array([[0, 0], [640, 0], [640, 480], [0, 480], [320, 240]], float)
    assert V.hull_fraction(full, SIZE) == pytest.approx(1.0)
    assert V.hull_fraction(full[[0, 1, 2]], SIZE) == pytest.approx(0.5)
    assert V.grid_coverage(np.zeros((0, 2)), SIZE) == 0.0 and V.hull_fraction(full[:2], SIZE) == 0


@pytest.mark.parametrize("seed", range(4))
def test_hull_fraction_is_the_convex_hull_area(seed):
    from scipy.spatial import ConvexHull

    g = np.random.default_rng(seed)
    p = g.uniform([0, 0], SIZE, (int(g.integers(3, 400)), 2))
    p = np.concatenate([p, p[:5]])  # repeated pixels count once
    assert V.hull_fraction(p, SIZE) == pytest.approx(ConvexHull(p).volume / (640 * 480), rel=1e-12)
    line = np.c_[p[:, 0], 0.5 * p[:, 0] + 3]  # collinear: no area
    assert V.hull_fraction(line, SIZE) == pytest.approx(0.0, abs=1e-12)
    cells = np.floor(p / [160, 120]).astype(int).clip(0, 3)
    assert V.grid_coverage(p, SIZE) == len({tuple(c) for c in cells}) / 16


def test_correct_synthetic_pnp_is_accepted():
    s = _pnp()
    assert s.num_inliers == 300 and s.inlier_ratio == 0.75 and s.grid_coverage == 1.0
    assert V.check_pnp(s, TH) == ""


@pytest.mark.parametrize(
    "change, words",
    [
        ({"num_inliers": 15}, "inliers < 20"),
        ({"inlier_ratio": 0.03}, "inlier ratio"),
        ({"grid_coverage": 1 / 16}, "cover"),
        ({"hull_fraction": 0.03}, "inlier hull covers 0.030"),
        (
            {"residual_median": 2.8, "hull_fraction": 0.2},
            "median residual 2.80 px > 0.45 x the RANSAC threshold 6 px",
        ),
        ({"residual_median": 3.7}, "median residual 3.70 px > 0.6 x"),
        ({"residual_median": 2.5, "max_error": 4.0}, "median residual"),
        ({"residual_median": math.nan}, "median residual"),
        ({"second_support": 0.95, "second_rotation": 30.0, "second_translation": 0.01}, "disagree"),
        ({"second_support": 0.95, "second_rotation": 1.0, "second_translation": 0.5}, "disagree"),
    ],
)
def test_pnp_checks_reject(change, words):
    assert words in V.check_pnp(_pnp(**change), TH)
    assert V.check_pnp(_pnp(**change), dataclasses.replace(TH, enabled=False)) == ""


def test_inliers_all_in_one_corner_are_rejected():
    pose, X, p = _scene()
    corner = (p[:, 0] < 160) & (p[:, 1] < 120)
    s = V.pnp_stats(p[corner], np.zeros(corner.sum()), corner.sum(), SIZE, 10.0, 6.0)
    assert s.num_inliers >= 10 and "cover" in V.check_pnp(
        dataclasses.replace(s, num_inliers=100), TH
    )


def test_larger_residuals_are_accepted_only_for_well_spread_inliers():
    assert V.check_pnp(_pnp(residual_median=2.6, hull_fraction=0.2), TH) == ""
    assert V.check_pnp(_pnp(residual_median=3.5, hull_fraction=0.5), TH) == ""
    assert "0.45 x" in V.check_pnp(_pnp(residual_median=3.5, hull_fraction=0.3), TH)


def test_weak_or_agreeing_second_reference_is_accepted():
    weak = _pnp(second_support=0.6, second_rotation=90.0, second_translation=3.0)
    agree = _pnp(second_support=1.0, second_rotation=0.5, second_translation=0.01)
    assert V.check_pnp(weak, TH) == "" and V.check_pnp(agree, TH) == ""


def test_second_reference_with_most_of_the_support_must_agree():
    """A 2nd reference with 70% of the best's inliers is an alternative, not noise."""
    rival = _pnp(second_support=0.75, second_rotation=7.5, second_translation=0.06)
    assert "top references disagree (7.5 deg, 0.060 of depth)" in V.check_pnp(rival, TH)
    assert V.check_pnp(dataclasses.replace(rival, second_support=0.69), TH) == ""
    assert V.check_pnp(dataclasses.replace(rival, second_rotation=4.0), TH) == ""
    assert "disagree" in V.check_pnp(dataclasses.replace(rival, second_cross=0.49), TH)


def _rerank(fits, swapped: bool) -> dict:
    """A logged dense comparison (``verify.rerank``) with median residuals ``fits``."""
    return {
        "references": ["a", "b"],
        "residual_median": fits,
        "rotation": 5.0,
        "translation": 0.1,
        "swapped": swapped,
    }


def test_a_disagreement_the_dense_comparison_decided_is_no_doubt():
    """When the dense comparison put this reference first over a rival with more inliers
    (``verify.rerank.swapped``), their disagreement does not reject the pose; every other
    check still does, and a logged record reads the flag."""
    rival = _pnp(second_support=1.3, second_rotation=24.0, second_translation=2.1)
    assert "disagree" in V.check_pnp(rival, TH)
    assert V.check_pnp(rival, TH, decided=True) == ""
    assert "hull" in V.check_pnp(dataclasses.replace(rival, hull_fraction=0.05), TH, decided=True)
    ver = {"pnp": dataclasses.asdict(rival)}
    assert "disagree" in V.judge_record(Evidence.from_json(ver), None, TH)[0]
    kept = Evidence.from_json({**ver, "rerank": _rerank([1.0, 1.0], False)})
    assert "disagree" in V.judge_record(kept, None, TH)[0]
    swapped = Evidence.from_json({**ver, "rerank": _rerank([1.0, 0.5], True)})
    assert V.judge_record(swapped, None, TH) == ("", False)


@pytest.mark.parametrize(
    "rotation, centre, fits, decided",
    [
        (20.0, 0.5, [1.0, 1.2], True),  # far in rotation, the best fits clearly better
        (3.0, 2.5, [1.0, 1.2], True),  # far in centre
        (20.0, 0.5, [1.0, 1.1], False),  # the best fits better, but not by the margin
        (10.0, 1.5, [1.0, 2.0], False),  # a near rival: a similar view, not settled
        (20.0, 0.5, [None, 1.2], False),  # no dense comparison (NaN logged as null)
    ],
)
def test_a_far_rival_the_dense_features_rule_out_is_no_doubt(rotation, centre, fits, decided):
    """A rival pose beyond ``agree_far_rotation`` degrees or ``agree_far_translation`` depths
    whose dense residual is more than 1 / ``agree_dense_margin`` times the best's settles the
    disagreement for the best; a near rival, or a dense comparison without a clear winner,
    does not."""
    rival = _pnp(second_support=0.9, second_rotation=rotation, second_translation=centre)
    ver = Evidence.from_json(  # as logged: NaN read back from null
        {"pnp": dataclasses.asdict(rival), "rerank": _rerank(fits, False)}
    )
    assert V.rerank_decided(ver, TH) is decided
    assert ("disagree" in V.judge_record(ver, None, TH)[0]) is not decided
    loose = dataclasses.replace(TH, agree_far_rotation=30.0, agree_far_translation=3.0)
    assert not V.rerank_decided(ver, loose)


def test_a_rival_pose_whose_matches_fit_the_best_pose_is_no_disagreement():
    """When the best pose also fits half or more of the 2nd reference's inliers, the 2nd
    reference's own pose is not the only reading of its matches."""
    rival = _pnp(second_support=0.9, second_rotation=10.0, second_translation=0.2)
    assert V.check_pnp(dataclasses.replace(rival, second_cross=0.5), TH) == ""
    assert V.check_pnp(dataclasses.replace(rival, second_cross=1.2), TH) == ""
    assert "disagree" in V.check_pnp(dataclasses.replace(rival, second_cross=0.3), TH)


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("fpnp_max_move_sigma", "1e9", 1e9),
        ("min_inliers", "30", 30),
        ("agree_max_rotation", "4", 4.0),
    ],
)
def test_thresholds_from_command_line_values(key, value, expected):
    conf = parse_overrides([f"{key}={value}"])  # as benchmarks/verdict.py --set reads them
    th = V.VerifyThresholds.from_conf(conf)
    assert getattr(th, key) == expected and type(getattr(th, key)) is type(expected)


@pytest.mark.parametrize(
    "key, value",
    [("min_inliers", 2.5), ("min_inliers", "many"), ("enabled", 1), ("agree_max_rotation", None)],
)
def test_thresholds_from_conf_reject_wrong_types(key, value):
    with pytest.raises(ConfigError, match=f"setting '{key}' must be of type"):
        V.VerifyThresholds.from_conf({key: value})


def test_every_threshold_but_the_switch_has_a_range():
    names = {f.name for f in dataclasses.fields(V.VerifyThresholds)}
    assert set(V.THRESHOLD_CHECKS) == names - {"enabled"}


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("min_inliers", -3, "must be >= 0"),
        ("min_hull_fraction", 1.5, "must be <= 1"),
        ("agree_dense_margin", 0.0, "must be > 0"),
        ("fpnp_max_cost_ratio", -1.0, "must be > 0"),
    ],
)
def test_thresholds_out_of_range_are_refused_everywhere(key, value, words):
    with pytest.raises(ConfigError, match=f"setting '{key}' = .* {words}"):
        V.VerifyThresholds.from_conf({key: value})
    with pytest.raises(ConfigError, match=f"setting 'verify.{key}' = .* {words}"):
        resolve({"verify": {key: value}})


def test_pnp_covariance_matches_the_reprojection_cost():
    """``delta^T Sigma^-1 delta`` = sum of squared pixel changes / sigma^2 for small moves."""
    pose, X, p = _scene(100)
    cam = _camera().double()
    sigma = 1.5
    cov = V.pnp_covariance(X, cam, pose, sigma)
    for delta in torch.eye(6, dtype=torch.float64) * 1e-5:
        moved = cam.project((Pose.exp(delta) @ pose).transform(torch.from_numpy(X)))[0]
        ssd = float(((moved.numpy() - p) ** 2).sum()) / sigma**2
        maha = float(delta @ torch.linalg.inv(cov) @ delta)
        assert maha == pytest.approx(ssd, rel=1e-3)


def _fpnp(move=None, cost_final=0.8, cov=None, pnp_sigma=1.0, **kw) -> V.FPnPStats:
    pose, X, _ = _scene(200)
    final = pose if move is None else Pose.exp(torch.tensor(move, dtype=torch.float64)) @ pose
    pnp_cov = V.pnp_covariance(X, _camera(), pose, pnp_sigma)
    cov = torch.eye(6, dtype=torch.float64) * 1e-8 if cov is None else cov
    args = dict(
        init=pose,
        final=final,
        covariance=cov,
        pnp_cov=pnp_cov,
        depth=10.0,
        cost_init=1.0,
        cost_final=cost_final,
        num_points=200,
        num_valid=200,
        success=True,
    )
    return V.fpnp_stats(**{**args, **kw})


def test_fpnp_small_supported_update_is_accepted():
    s = _fpnp([1e-3, 0, 0, 0, 1e-4, 0])
    assert s.rotation_change == pytest.approx(math.degrees(1e-4), rel=1e-6)
    assert s.translation_change == pytest.approx(1e-4, rel=0.2)
    assert V.check_fpnp(s, TH) == ""


def test_fpnp_checks_reject():
    assert "cost ratio" in V.check_fpnp(_fpnp([1e-3, 0, 0, 0, 0, 0], cost_final=1.2), TH)
    assert "valid points" in V.check_fpnp(_fpnp(num_valid=12), TH)
    assert "fewer than 10" in V.check_fpnp(_fpnp(success=False, message="fewer than 10 valid"), TH)
    bad = torch.diag(torch.tensor([1e-8] * 3 + [0.1] * 3, dtype=torch.float64))  # ~18 deg std
    assert "ill-conditioned" in V.check_fpnp(_fpnp(cov=bad), TH)
    nan = torch.full((6, 6), math.nan, dtype=torch.float64)
    assert "ill-conditioned" in V.check_fpnp(_fpnp(cov=nan), TH)
    assert "too large" in V.check_fpnp(_fpnp([0, 0, 0, 0.2, 0, 0], cost_final=0.1), TH)


def test_fpnp_move_beyond_pnp_uncertainty_needs_strong_cost_support():
    move = [0.0, 0.0, 0.0, 0.0, 0.02, 0.0]  # 1.1 deg: many PnP sigmas with 200 exact points
    weak = _fpnp(move, cost_final=0.95, pnp_sigma=0.1)
    assert weak.move_sigma > TH.fpnp_max_move_sigma
    assert "PnP sigmas" in V.check_fpnp(weak, TH)
    assert V.check_fpnp(_fpnp(move, cost_final=0.3, pnp_sigma=0.1), TH) == ""
    # Half the move at 2 px noise: ~40 PnP sigmas, within the 100 allowed (PnP sigmas from
    # the median residual ignore correlated match errors, so F-PnP often moves tens of them).
    moderate = _fpnp([0.0, 0.0, 0.0, 0.0, 0.01, 0.0], cost_final=0.95, pnp_sigma=2.0)
    assert 30 < moderate.move_sigma < 50 and V.check_fpnp(moderate, TH) == ""
    no_pnp = _fpnp(move, cost_final=0.95, pnp_cov=None)
    assert math.isnan(no_pnp.move_sigma) and V.check_fpnp(no_pnp, TH) == ""


def test_thresholds_from_conf_match_the_defaults_and_reject_unknown_keys():
    from s2dloc.localization.config import DEFAULTS

    assert V.VerifyThresholds.from_conf(DEFAULTS["verify"]) == V.VerifyThresholds()
    for key, value in DEFAULTS["verify"].items():
        assert type(value) is type(getattr(V.VerifyThresholds(), key)), key
    with pytest.raises(ValueError, match="min_inlier"):
        V.VerifyThresholds.from_conf({"min_inlier": 3})


def test_fpnp_moving_beyond_the_caps_contradicts_the_pnp_pose():
    far = _fpnp([0, 0, 0, 0.2, 0, 0], cost_final=0.3)  # 11.5 deg, cost much lower
    assert "too large" in V.check_fpnp(far, TH)
    assert "F-PnP moved it by 11.46 deg" in V.check_pnp_against_fpnp(far, TH)
    assert V.check_pnp_against_fpnp(_fpnp([1e-3, 0, 0, 0, 1e-4, 0]), TH) == ""
    costly = _fpnp([0, 0, 0, 0.2, 0, 0], cost_final=1.5)  # the solver did not improve
    assert V.check_pnp_against_fpnp(costly, TH) == ""
    assert V.check_pnp_against_fpnp(far, dataclasses.replace(TH, enabled=False)) == ""


def test_larger_residuals_are_accepted_when_the_second_reference_confirms_the_pose():
    """A 2nd reference giving the same pose from its own matches confirms a noisy PnP pose."""
    noisy = _pnp(residual_median=3.1, hull_fraction=0.2)
    assert "0.45 x" in V.check_pnp(noisy, TH)
    confirmed = dataclasses.replace(
        noisy, second_support=0.86, second_rotation=0.5, second_translation=0.005
    )
    assert V.check_pnp(confirmed, TH) == ""
    assert "0.6 x" in V.check_pnp(dataclasses.replace(confirmed, residual_median=3.7), TH)
    weak = dataclasses.replace(confirmed, second_support=0.5)  # too few inliers to confirm
    assert "0.45 x" in V.check_pnp(weak, TH)
    elsewhere = dataclasses.replace(confirmed, second_translation=0.3, second_cross=0.9)
    assert "0.45 x" in V.check_pnp(elsewhere, TH)


def test_fpnp_move_beyond_pnp_uncertainty_with_weak_cost_support_contradicts_the_pnp_pose():
    """F-PnP lowered the cost by moving far more than PnP's uncertainty allows, but not enough
    to trust its pose: the PnP pose is not trusted either."""
    move = [0.0, 0.0, 0.0, 0.0, 0.02, 0.0]
    weak = _fpnp(move, cost_final=0.95, pnp_sigma=0.1)
    assert "PnP sigmas" in V.check_fpnp(weak, TH)
    why = V.check_pnp_against_fpnp(weak, TH)
    assert "PnP sigmas" in why and "off by more than its uncertainty" in why
    strong = _fpnp(move, cost_final=0.3, pnp_sigma=0.1)  # the update is trusted instead
    assert V.check_fpnp(strong, TH) == "" and V.check_pnp_against_fpnp(strong, TH) == ""
    moderate = _fpnp([0.0, 0.0, 0.0, 0.0, 0.01, 0.0], cost_final=0.95, pnp_sigma=2.0)
    assert V.check_pnp_against_fpnp(moderate, TH) == ""
    assert V.check_pnp_against_fpnp(_fpnp(move, cost_final=0.95, pnp_cov=None), TH) == ""


def test_judge_rescues_a_pnp_pose_only_when_fpnp_moved_it_to_a_pose_its_matches_support():
    noisy = _pnp(residual_median=3.4, hull_fraction=0.2)  # fails: 0.57 x the threshold
    update = _fpnp([1e-3, 0, 0, 0, 1e-3, 0], cost_final=0.6)
    good_final = _pnp(residual_median=1.0)
    assert V.judge(noisy, update, good_final, TH) == ("", True)
    reason, use = V.judge(noisy, update, _pnp(residual_median=3.3, hull_fraction=0.2), TH)
    assert "0.45 x" in reason and use
    rejected = _fpnp([1e-3, 0, 0, 0, 1e-3, 0], cost_final=1.2)
    reason, use = V.judge(noisy, rejected, good_final, TH)
    assert "0.45 x" in reason and not use
    assert "0.45 x" in V.judge(noisy, None, None, TH)[0]
    far = _fpnp([0, 0, 0, 0.2, 0, 0], cost_final=0.3)
    reason, use = V.judge(_pnp(), far, None, TH)
    assert "beyond the caps" in reason and not use
    assert V.judge(_pnp(), update, None, TH) == ("", True)


def test_judge_takes_a_far_fpnp_move_when_the_matches_support_the_new_pose():
    """A move of many PnP sigmas with a modest cost decrease is trusted only when the best
    reference's matches pass the PnP checks at the new pose."""
    weak = _fpnp([0.0, 0.0, 0.0, 0.0, 0.02, 0.0], cost_final=0.95, pnp_sigma=0.1)
    assert "PnP sigmas" in V.check_fpnp(weak, TH) and V.check_fpnp(weak, TH, move=False) == ""
    assert V.judge(_pnp(), weak, _pnp(residual_median=1.0), TH) == ("", True)
    reason, use = V.judge(_pnp(), weak, _pnp(residual_median=3.5, hull_fraction=0.2), TH)
    assert "off by more than its uncertainty" in reason and not use
    reason, use = V.judge(_pnp(), weak, None, TH)
    assert "off by more than its uncertainty" in reason and not use
    costly = _fpnp([0.0, 0.0, 0.0, 0.0, 0.02, 0.0], cost_final=1.2, pnp_sigma=0.1)
    assert V.judge(_pnp(), costly, _pnp(residual_median=1.0), TH) == ("", False)


def test_refused_refinement_on_every_visible_point_vetoes_the_query_when_nothing_matches():
    """A query whose refinement on every point its references see was refused is rejected,
    however well its matches support the pose, when those points' features matched their
    references hardly better than other points' (a pose of the wrong place)."""
    update, good = _fpnp([1e-3, 0, 0, 0, 1e-3, 0], cost_final=0.6), _pnp(residual_median=1.0)
    refused = dataclasses.replace(_fpnp(success=False, message="no match"), match_ratio=0.95)
    reason, use = V.judge(_pnp(), update, good, TH, refused)
    assert "do not match at this pose (ratio 0.95 > 0.86)" in reason and not use
    assert V.check_visible(refused, TH) == reason
    matching = dataclasses.replace(refused, match_ratio=0.8)
    assert V.judge(_pnp(), update, good, TH, matching) == ("", True)
    assert V.judge(_pnp(), update, good, TH, None) == ("", True)
    assert V.check_visible(refused, dataclasses.replace(TH, enabled=False)) == ""
    unknown = dataclasses.replace(refused, match_ratio=math.nan)  # older logs
    assert V.check_visible(unknown, TH) == ""


def test_a_second_reference_that_confirms_the_pose_overrules_the_visible_point_veto():
    """Two references' own PnP poses that agree are independent evidence; the veto is for
    poses that one reference alone supports, and a weak or disagreeing second one keeps it."""
    update, good = _fpnp([1e-3, 0, 0, 0, 1e-3, 0], cost_final=0.6), _pnp(residual_median=1.0)
    refused = dataclasses.replace(_fpnp(success=False, message="no match"), match_ratio=0.87)
    confirmed = _pnp(second_support=0.88, second_rotation=1.1, second_translation=0.011)
    assert V.judge(confirmed, update, good, TH, refused) == ("", True)
    for kw in ({"second_support": 0.6}, {"second_rotation": 6.0}, {"second_translation": 0.2}):
        other = dataclasses.replace(confirmed, **kw)
        assert "do not match at this pose" in V.judge(other, update, good, TH, refused)[0]


def test_a_trusted_refinement_on_every_visible_point_that_matches_vouches_for_its_pose():
    """Clustered or disputed matches are overruled by thousands of points that agree at the
    refined pose, only when the refinement ran on them (dense) and is trusted."""
    clustered = _pnp(hull_fraction=0.08)
    assert "inlier hull" in V.check_pnp(clustered, TH)
    update = dataclasses.replace(_fpnp([1e-3, 0, 0, 0, 1e-3, 0], cost_final=0.6), match_ratio=0.5)
    assert V.judge(clustered, update, None, TH, dense=True) == ("", True)
    assert "inlier hull" in V.judge(clustered, update, None, TH, dense=False)[0]
    weak = dataclasses.replace(update, match_ratio=0.77)  # above fpnp_dense_match_ratio 0.75
    assert "inlier hull" in V.judge(clustered, weak, None, TH, dense=True)[0]
    raised = dataclasses.replace(update, cost_ratio=1.2)  # not trusted
    reason, use = V.judge(clustered, raised, None, TH, dense=True)
    assert "inlier hull" in reason and not use


def test_dense_evidence_needs_every_visible_point_and_enough_channels():
    assert V.dense_refinement(FPnPRecord(points="visible", channels=32), TH)
    assert not V.dense_refinement(FPnPRecord(points="visible", channels=3), TH)  # RGB
    assert not V.dense_refinement(FPnPRecord(points="inliers", channels=32), TH)
    assert not V.dense_refinement(FPnPRecord.from_json({"points": "visible"}), TH)  # older runs
    assert not V.dense_refinement(None, TH)  # F-PnP did not run


def test_judge_record_reads_logged_statistics_as_judge_does():
    """The pipeline and benchmarks/verdict.py both judge through judge_record: logged stats
    (NaN stored as null) give judge's verdict, including when F-PnP's solver failed and a
    confirming second reference overrules the visible-point veto."""
    confirmed = _pnp(second_support=0.88, second_rotation=1.1, second_translation=0.011)
    failed = _fpnp(success=False, message="no match")
    refused = dataclasses.replace(failed, match_ratio=0.87)
    ver = {
        "pnp": dataclasses.asdict(confirmed),
        "fpnp": dataclasses.asdict(failed),
        "fpnp_visible": {**dataclasses.asdict(refused), "move_sigma": None},
    }
    dense = FPnPRecord.from_json({"points": "visible", "channels": 32})
    assert V.judge_record(Evidence.from_json(ver), dense, TH) == ("", False)  # confirmed
    lone = Evidence.from_json({**ver, "pnp": dataclasses.asdict(_pnp())})
    reason, use = V.judge_record(lone, dense, TH)
    assert "do not match at this pose (ratio 0.87" in reason and not use
    update = dataclasses.replace(_fpnp([1e-3, 0, 0, 0, 1e-3, 0], cost_final=0.6), match_ratio=0.5)
    clustered = _pnp(hull_fraction=0.08)
    rec = Evidence.from_json(
        {"pnp": dataclasses.asdict(clustered), "fpnp": dataclasses.asdict(update)}
    )
    assert V.judge_record(rec, dense, TH) == V.judge(clustered, update, None, TH, dense=True)
    assert V.judge_record(rec, None, TH) == V.judge(clustered, update, None, TH)
