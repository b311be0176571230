"""The toy example: exact ground truth, and the F-PnP milestones of issue 2 on it.

Accuracy from perturbed starts, a wider basin coarse to fine, robustness to 30% wrong
reference features, and a covariance consistent with the spread under feature noise.
"""

from __future__ import annotations

import math

import pytest
import torch

from s2dloc.datasets.toy import perturb
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.geometry import sample

from ._helpers import batch_camera, batch_pose, errors, refine_toy, starts

# ----------------------------------------------------------------------------- the toy problem


def test_toy_problem_ground_truth(toy):
    N = toy.points3d.shape[0]
    assert N == 512 and toy.ref_image.shape == (240, 320, 3)
    # Points re-project onto the reference pixels they were lifted from.
    p, valid = toy.camera.project(toy.ref_pose.transform(toy.points3d))
    assert valid.all()
    torch.testing.assert_close(p, toy.ref_pixels, rtol=0, atol=1e-6)
    depth = toy.ref_pose.transform(toy.points3d)[:, 2]
    assert toy.scene_depth == pytest.approx(depth.mean().item(), rel=1e-9)
    # Most points are seen by the query too.
    _, valid_q = toy.camera.project(toy.query_pose.transform(toy.points3d), margin=2.0)
    assert valid_q.float().mean() > 0.8
    # The query is 4 degrees of yaw and 0.4 m sideways (plus 0.04 m) from the reference.
    assert toy.ref_pose.angle_to(toy.query_pose).item() == pytest.approx(4.0, abs=1e-9)
    baseline = toy.ref_pose.center_distance_to(toy.query_pose).item()
    assert baseline == pytest.approx(0.4 * math.sqrt(1.01), rel=1e-9)


@pytest.mark.parametrize("deg, trans, seed", [(3.0, 0.2, 0), (10.0, 0.0, 1), (0.5, 1.0, 2)])
def test_perturb_has_requested_magnitude(toy, deg, trans, seed):
    init = perturb(toy.query_pose, deg, trans, seed)
    assert init.angle_to(toy.query_pose).item() == pytest.approx(deg, abs=1e-9)
    delta = (init @ toy.query_pose.inv()).log()  # left perturbation
    assert delta[:3].norm().item() == pytest.approx(trans, abs=1e-9)
    assert perturb(toy.query_pose, deg, trans, seed).t.equal(init.t)  # seeded


def test_oracle_features_are_exact_at_true_pose(toy, oracle):
    refs, maps = oracle
    assert [m.shape for m in maps] == [(3, 240, 320), (3, 120, 160), (3, 60, 80)]
    assert [r.shape for r in refs] == [(512, 3)] * 3
    p, _ = toy.camera.project(toy.query_pose.transform(toy.points3d))
    for s, ref, fmap in zip((1, 2, 4), refs, maps, strict=True):
        values, _ = sample(fmap[None], (p / s)[None].float())
        torch.testing.assert_close(values[0], ref, rtol=0, atol=1e-6)


def test_photometric_features_are_close_but_not_exact(toy, oracle, photometric):
    diff = (photometric[0][0] - oracle[0][0]).norm(dim=-1)
    assert 0 < diff.median() < 0.5  # same appearance, different view: small residuals


# ----------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("deg", [2.0, 3.5, 5.0])
def test_recovers_true_pose_with_oracle_features(backend, toy, oracle, deg):
    solver = FeatureMetricPnP(backend=backend)
    seeds = range(int(deg) * 10, int(deg) * 10 + 4)
    init = starts(toy, deg, seeds)
    result = refine_toy(solver, toy, *oracle, init)
    rot, centre = errors(toy, result.pose)
    assert result.success.all()
    assert (rot < 0.01).all(), rot  # degrees
    assert (centre < 1e-4).all(), centre  # 0.01% of the scene depth
    # Both costs use the finest level's (tiny, median-based) Cauchy scale, hence only 10x.
    assert (result.cost_final < 0.1 * result.cost_init).all()
    assert (result.num_valid > 0.8 * 512).all()


def test_recovers_pose_with_photometric_features(backend, toy, photometric):
    # Real reference appearance: not exact, but well within a degree and a centimetre-ish.
    result = refine_toy(
        FeatureMetricPnP(backend=backend), toy, *photometric, starts(toy, 3.0, range(3))
    )
    rot, centre = errors(toy, result.pose)
    assert result.success.all()
    assert (rot < 0.2).all() and (centre < 0.005).all(), (rot, centre)


# ----------------------------------------------------------------------------- basin


def test_coarse_to_fine_widens_the_basin(backend, toy, oracle):
    solver = FeatureMetricPnP(backend=backend)
    init = starts(toy, 8.0, range(100, 108))

    def successes(levels):
        result = refine_toy(solver, toy, *oracle, init, levels=levels)
        rot, centre = errors(toy, result.pose)
        return int(((rot < 0.1) & (centre < 1e-3) & result.success).sum())

    c2f, finest = successes([0, 1, 2]), successes([0])
    assert c2f > finest, (c2f, finest)
    assert c2f >= 6, c2f  # and the wider basin is real, not a tie broken by luck


def test_history_records_monotone_cost(toy, oracle):
    result = FeatureMetricPnP().refine(
        toy.points3d.float(),
        oracle[0],
        oracle[1],
        toy.camera,
        perturb(toy.query_pose, 4.0, 0.2, 0),
        return_history=True,
    )
    assert result.success and len(result.history) == 3
    for level, iters in zip(result.history, result.iterations.tolist(), strict=True):
        costs = torch.stack([rec.cost for rec in level])
        assert len(level) == iters + 1
        assert (costs[1:] <= costs[:-1]).all()  # LM only accepts decreasing steps


# ----------------------------------------------------------------------------- robustness


def _with_wrong_features(refs, fraction: float, seed: int):
    """Replace ``fraction`` of the reference features by those of other random points."""
    g = torch.Generator().manual_seed(seed)
    N = refs[0].shape[0]
    bad = torch.randperm(N, generator=g)[: int(fraction * N)]
    src = (bad + torch.randint(1, N, bad.shape, generator=g)) % N  # never the point itself
    out = []
    for ref in refs:
        ref = ref.clone()
        ref[bad] = ref[src].clone()
        out.append(ref)
    return out


def test_robust_loss_tolerates_30_percent_wrong_features(backend, toy, oracle):
    refs = _with_wrong_features(oracle[0], 0.3, seed=0)
    init = starts(toy, 3.0, range(200, 204))
    robust = refine_toy(
        FeatureMetricPnP(backend=backend, loss="cauchy"), toy, refs, oracle[1], init
    )
    plain = refine_toy(
        FeatureMetricPnP(backend=backend, loss="squared"), toy, refs, oracle[1], init
    )
    rot_r, centre_r = errors(toy, robust.pose)
    rot_s, centre_s = errors(toy, plain.pose)
    assert robust.success.all()
    assert (rot_r < 0.01).all() and (centre_r < 1e-4).all(), (rot_r, centre_r)
    # Least squares is pulled away by the outliers: at least 10x worse on every start.
    assert (rot_s > 10 * rot_r.clamp_min(0.01)).all(), (rot_s, rot_r)
    assert (centre_s > 10 * centre_r.clamp_min(1e-4)).all(), (centre_s, centre_r)


# ----------------------------------------------------------------------------- covariance


def test_covariance_matches_spread_under_feature_noise(backend, toy, oracle):
    """Empirical covariance of the left error ``log(T_est T_gt^-1)`` over 160 noisy trials
    against the mean predicted covariance (least squares, single level, oracle features)."""
    K, N, level, sigma = 160, 256, 1, 0.05
    ref = oracle[0][level][:N]
    noise = torch.randn(K, N, ref.shape[1], generator=torch.Generator().manual_seed(1)) * sigma
    result = FeatureMetricPnP(backend=backend, loss="squared").refine_batch(
        toy.points3d[:N].float().expand(K, -1, -1),
        [ref + noise],
        [oracle[1][level].expand(K, -1, -1, -1)],
        batch_camera(toy.camera, K),
        batch_pose(toy.query_pose, K),
    )
    assert result.success.all()
    err = (result.pose @ toy.query_pose.inv()).log()
    assert err[:, 3:].norm(dim=-1).max() < math.radians(0.5)  # small: the linear regime
    empirical = err.T @ err / K
    predicted = result.covariance.double().mean(0)
    ratio = empirical.diagonal() / predicted.diagonal()
    maha = torch.einsum("ki,ij,kj->k", err, torch.linalg.inv(predicted), err).mean()
    assert ((ratio > 0.5) & (ratio < 2.0)).all(), (ratio, maha)
    assert 0.5 < (empirical.trace() / predicted.trace()).item() < 2.0
    # Whitened errors: mean squared Mahalanobis distance ~ 6 (dimension of the pose).
    assert 3.0 < maha.item() < 12.0, maha
    # The noise level itself is recovered: the least-squares cost is the mean ||r||^2 = C sigma^2.
    sigma2_hat = result.cost_final.double().mean() / ref.shape[1]
    assert sigma2_hat.item() == pytest.approx(sigma**2, rel=0.1)
    # And the covariance scales with the noise: the noise-free problem is far more certain.
    clean = FeatureMetricPnP(backend=backend, loss="squared").refine(
        toy.points3d[:N].float(),
        [ref],
        [oracle[1][level]],
        toy.camera,
        perturb(toy.query_pose, 0.5, 0.02, 0),
    )
    assert clean.covariance.diagonal().max() < 1e-3 * predicted.diagonal().min()
