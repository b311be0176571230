"""Alignment problems lifted from rendered views: geometry, features, and a solvable start."""

from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import pycolmap
import pytest
import torch
from scipy.ndimage import map_coordinates

from s2dloc.datasets.synthetic import render, toy_reference_pose, toy_scene
from s2dloc.datasets.toy import perturb
from s2dloc.evaluation.convergence import BasinProblem
from s2dloc.evaluation.problems import lifted_problem
from s2dloc.features.base import PhotometricExtractor
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.geometry import Camera, Pose
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


def _cam_points(view, points: torch.Tensor) -> np.ndarray:
    """World points ``(N, 3)`` in the view's camera frame, ``R X + t`` in numpy."""
    R, t = view.cam_from_world.R.numpy(), view.cam_from_world.t.numpy()
    return points.double().numpy() @ R.T + t


def test_lifted_points_and_features_match_independent_references(views):
    ref, query = views
    extractor = PhotometricExtractor(strides=(1, 2, 4))
    problem = lifted_problem(ref, query, extractor, num_points=200, seed=0)
    assert problem.points3d.shape == (200, 3) and len(problem.ref_features) == 3
    pixels = problem.ref_pixels.double().numpy()
    # Lifted from pixel centres with the depth map's depth: pycolmap projects them back there.
    X = _cam_points(ref, problem.points3d)
    colmap_cam = pycolmap.Camera(
        model="PINHOLE", width=160, height=120, params=[128.0, 128.0, 80.0, 60.0]
    )
    np.testing.assert_allclose(colmap_cam.img_from_cam(X), pixels, atol=2e-3)
    col, row = np.floor(pixels).astype(int).T
    np.testing.assert_allclose(pixels - np.floor(pixels), 0.5)
    np.testing.assert_allclose(X[:, 2], ref.depth[row, col], rtol=1e-5)
    # Features: bilinear samples of each level at the scaled pixels, by scipy (index = p - 0.5).
    for level, m in enumerate(extractor.extract(ref.rgb)):
        s = m.shape[-1] / 160
        coords = [pixels[:, 1] * s - 0.5, pixels[:, 0] * s - 0.5]
        expected = np.stack(
            [map_coordinates(c, coords, order=1, mode="nearest") for c in m.numpy()]
        )
        np.testing.assert_allclose(problem.ref_features[level].numpy(), expected.T, atol=1e-5)
    finest = extractor.extract(ref.rgb)[0][:, row, col].T  # stride 1: exactly at the cells
    torch.testing.assert_close(problem.ref_features[0], finest, atol=1e-5, rtol=0)
    depth = _cam_points(query, problem.points3d)[:, 2]
    lower_median = np.sort(depth)[(len(depth) - 1) // 2]  # torch's median of an even count
    assert problem.scene_depth == pytest.approx(float(lower_median), rel=1e-5)


def test_problem_is_solvable_from_a_nearby_start(views):
    problem = lifted_problem(*views, PhotometricExtractor(strides=(1, 2, 4)), 300, seed=1)
    init = perturb(problem.true_pose, 2.0, 0.05, seed=0)
    res = FeatureMetricPnP().refine(
        problem.points3d, problem.ref_features, problem.query_features, problem.camera, init
    )
    assert bool(res.success) and float(res.pose.angle_to(problem.true_pose)) < 0.1


def _exact_match_problem(shuffle: bool = False) -> BasinProblem:
    """Points seen at query cell centres; features are pixel coordinates, so the nearest
    neighbour of each reference point is its true query cell (or another one when shuffled)."""
    camera = Camera.from_colmap("PINHOLE", 160, 120, [128.0, 128.0, 80.0, 60.0])
    ref_pose = Pose.identity().double()
    twist = torch.tensor([0.3, 0.1, 0.0, 0.05, 0.1, -0.02], dtype=torch.float64)
    query_pose = Pose.exp(twist)
    rng = np.random.default_rng(0)
    cells = np.stack([rng.integers(10, 150, 200), rng.integers(10, 110, 200)], -1) + 0.5
    q_pix = torch.from_numpy(cells)
    rays = camera.unproject(q_pix[None])[0]
    depth = torch.from_numpy(rng.uniform(2.0, 6.0, (200, 1)))
    x_query = torch.cat([rays * depth, depth], -1)
    points = query_pose.inv().transform(x_query)
    ref_pixels, valid = camera.project(ref_pose.transform(points))  # some leave the image
    v, u = torch.meshgrid(torch.arange(120) + 0.5, torch.arange(160) + 0.5, indexing="ij")
    features = q_pix.flip(0) if shuffle else q_pix
    return BasinProblem(
        points,
        [features],
        [torch.stack([u, v]).double()],
        camera,
        query_pose,
        4.0,
        ref_pixels=ref_pixels,
        ref_camera=camera,
        ref_pose=ref_pose,
    )


def test_relative_pose_error_known_answers():
    assert relative_pose_error(_exact_match_problem()) < 1e-3  # exact matches: exact rotation
    assert relative_pose_error(_exact_match_problem(shuffle=True)) > 2.0  # wrong matches


def test_relative_pose_error_when_opencv_finds_no_model(monkeypatch):
    """Degenerate matches make some OpenCV versions raise instead of returning no model: both
    read as "no essential matrix", 180 deg."""

    def raises(*args, **kwargs):
        raise cv2.error("solvePoly: degenerate")

    monkeypatch.setattr(cv2, "findEssentialMat", raises)
    assert relative_pose_error(_exact_match_problem()) == 180.0
    monkeypatch.setattr(cv2, "findEssentialMat", lambda *a, **k: (None, None))
    assert relative_pose_error(_exact_match_problem()) == 180.0
