"""Alignment problems lifted from rendered views: geometry, features, and a solvable start."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from s2dloc.datasets.synthetic import render, toy_reference_pose, toy_scene
from s2dloc.datasets.toy import perturb
from s2dloc.evaluation.problems import lifted_problem
from s2dloc.features.base import PhotometricExtractor
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.geometry import Camera, Pose, sample
from s2dloc.training.validation import relative_pose_error


@pytest.fixture(scope="module")
def views():
    camera = Camera.from_colmap("PINHOLE", 160, 120, [128.0, 128.0, 80.0, 60.0])
    scene = toy_scene(0)
    ref_pose = Pose.from_Rt(*toy_reference_pose())
    yaw = Pose.exp(torch.tensor([0.3, 0.0, 0.0, 0.0, math.radians(3.0), 0.0], dtype=torch.float64))
    out = []
    for pose in (ref_pose, yaw @ ref_pose):
        r = render(scene, camera, pose)
        out.append(SimpleNamespace(rgb=r.rgb, depth=r.depth, camera=camera, cam_from_world=pose))
    return out


def test_lifted_points_and_features_are_consistent(views):
    ref, query = views
    extractor = PhotometricExtractor(strides=(1, 2, 4))
    problem = lifted_problem(ref, query, extractor, num_points=200, seed=0)
    assert problem.points3d.shape == (200, 3) and len(problem.ref_features) == 3
    p, valid = ref.camera.project(ref.cam_from_world.transform(problem.points3d.double()))
    assert valid.all() and (p - problem.ref_pixels).abs().max() < 1e-3
    maps = extractor.extract(ref.rgb)
    for level, m in enumerate(maps):
        s = m.shape[-1] / 160
        expected = sample(m[None], (problem.ref_pixels * s)[None].float())[0][0]
        torch.testing.assert_close(problem.ref_features[level], expected)
    depth = query.cam_from_world.transform(problem.points3d.double())[:, 2]
    assert problem.scene_depth == pytest.approx(float(depth.median()), rel=1e-5)


def test_problem_is_solvable_from_a_nearby_start(views):
    problem = lifted_problem(*views, PhotometricExtractor(strides=(1, 2, 4)), 300, seed=1)
    init = perturb(problem.true_pose, 2.0, 0.05, seed=0)
    res = FeatureMetricPnP().refine(problem.points3d, problem.ref_features,
                                    problem.query_features, problem.camera, init)  # fmt: skip
    assert bool(res.success) and float(res.pose.angle_to(problem.true_pose)) < 0.1


def test_relative_pose_error_is_an_angle(views):
    problem = lifted_problem(*views, PhotometricExtractor(strides=(1, 2, 4)), 300, seed=2)
    err = relative_pose_error(problem)
    assert np.isfinite(err) and 0.0 <= err <= 180.0
