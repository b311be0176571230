"""Degenerate input: no or too few points, zero weights, NaN entries, a degenerate query in a
batch; the query fails cleanly (initial pose, finite outputs, a reason) without affecting others."""

from __future__ import annotations

import math

import pytest
import torch

from s2dloc.datasets.toy import perturb
from s2dloc.fpnp import FeatureMetricPnP, FPnPResult
from s2dloc.geometry import Pose

from ._helpers import batch_camera, errors, refine_one
from .test_solver import _assert_finite, _assert_same_pose

# ----------------------------------------------------------------------------- degenerate input


def _assert_flagged(init: Pose, result: FPnPResult):
    assert not result.success
    assert result.pose.R.equal(init.R) and result.pose.t.equal(init.t)  # exactly the initial pose
    assert "valid points" in result.message[0]
    _assert_finite(result)


def test_no_points(backend, toy, oracle):
    empty = toy.points3d[:0].float()
    init, result = refine_one(backend, toy, oracle, empty, [r[:0] for r in oracle[0]])
    _assert_flagged(init, result)
    assert result.num_valid == 0


def test_all_points_behind_the_camera(backend, toy, oracle):
    Xc = toy.query_pose.transform(toy.points3d)
    behind = toy.query_pose.inv().transform(Xc * torch.tensor([1.0, 1.0, -1.0], dtype=Xc.dtype))
    init, result = refine_one(backend, toy, oracle, behind.float(), init=toy.query_pose)
    _assert_flagged(init, result)
    assert result.num_valid == 0


def test_fewer_than_min_points(backend, toy, oracle):
    few = slice(3, 512, 101)  # 6 points spread over the image (fewer than min_points = 10)
    refs = [r[few] for r in oracle[0]]
    init, result = refine_one(backend, toy, oracle, toy.points3d[few].float(), refs)
    _assert_flagged(init, result)
    assert result.num_valid == 6
    # The same 6 points are enough when the minimum is lowered: exact features, exact pose.
    _, ok = refine_one(
        backend, toy, oracle, toy.points3d[few].float(), refs, min_points=4, init=init
    )
    assert ok.success and ok.iterations.sum() > 0
    assert float(toy.query_pose.angle_to(ok.pose)) < 0.01


def test_all_weights_zero(backend, toy, oracle):
    init = perturb(toy.query_pose, 3.0, 0.15, 0)
    solver = FeatureMetricPnP(backend=backend)
    result = solver.refine(
        toy.points3d.float(), *oracle, toy.camera, init, weights=torch.zeros(512)
    )
    _assert_flagged(init, result)


def test_init_far_from_the_points(backend, toy, oracle):
    # Looking away from the scene: nothing projects into the image.
    away = Pose.exp(torch.tensor([0.0, 0, 0, 0, math.pi, 0], dtype=torch.float64)) @ toy.query_pose
    init, result = refine_one(backend, toy, oracle, init=away)
    _assert_flagged(init, result)


@pytest.mark.parametrize("where", ["points", "ref_features", "query_features", "weights"])
def test_nan_entries_are_ignored(backend, toy, oracle, where):
    N = toy.points3d.shape[0]
    points = toy.points3d.float().clone()
    refs = [r.clone() for r in oracle[0]]
    maps = [m.clone() for m in oracle[1]]
    weights = torch.ones(N)
    bad = torch.arange(0, N, 7)
    if where == "points":
        points[bad] = math.nan
        points[bad[::2], 1] = math.inf
    elif where == "ref_features":
        for r in refs:
            r[bad, 1] = math.nan
    elif where == "query_features":
        maps[0][:, 100:130, 150:190] = math.nan
    else:
        weights[bad] = math.nan
    init = perturb(toy.query_pose, 3.0, 0.15, 4)
    result = FeatureMetricPnP(backend=backend).refine(
        points, refs, maps, toy.camera, init, weights=weights
    )
    _assert_finite(result)
    assert result.success
    rot, centre = errors(toy, result.pose)
    assert rot < 0.01 and centre < 1e-4, (rot, centre)
    clean = FeatureMetricPnP(backend=backend).refine(
        toy.points3d.float(), *oracle, toy.camera, init
    )
    Xc = toy.query_pose.transform(toy.points3d)
    if where == "query_features":  # points seen in the NaN patch (plus a sampling border)
        p, _ = toy.camera.project(Xc)
        lost = ((p > torch.tensor([148.0, 98.0])) & (p < torch.tensor([192.0, 132.0]))).all(-1)
    else:
        lost = torch.zeros(N, dtype=torch.bool)
        lost[bad] = True
    _, seen = toy.camera.project(Xc, margin=1.0)
    expected = clean.num_valid - (lost & seen).sum()
    assert abs(result.num_valid - expected) <= 2, (result.num_valid, expected)


def test_degenerate_query_does_not_affect_the_batch(backend, toy, oracle):
    refs, maps = oracle
    B, N = 3, toy.points3d.shape[0]
    points = toy.points3d.float().repeat(B, 1, 1)
    points[1] = math.nan  # no usable points at all
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[2] = False  # all padding
    inits = Pose.stack([perturb(toy.query_pose, 3.0, 0.15, s) for s in range(B)])
    result = FeatureMetricPnP(backend=backend).refine_batch(
        points,
        [r.expand(B, -1, -1) for r in refs],
        [m.expand(B, -1, -1, -1) for m in maps],
        batch_camera(toy.camera, B),
        inits,
        mask=mask,
    )
    assert result.success.tolist() == [True, False, False]
    _assert_finite(result)
    single = FeatureMetricPnP(backend=backend).refine(
        toy.points3d.float(), refs, maps, toy.camera, inits[0]
    )
    _assert_same_pose(result.pose[0], single.pose)
    for b in (1, 2):
        assert result.pose[b].R.equal(inits[b].R) and result.pose[b].t.equal(inits[b].t)


def test_nan_init_pose_raises(toy, oracle):
    init = perturb(toy.query_pose, 3.0, 0.15, 0)
    R = init.R.clone()
    R[0, 0] = math.nan
    with pytest.raises(ValueError, match="init_pose"):
        refine_one("auto", toy, oracle, init=Pose(R, init.t))
    t = init.t.clone()
    t[2] = math.inf
    with pytest.raises(ValueError, match="init_pose"):
        refine_one("auto", toy, oracle, init=Pose(init.R, t))
