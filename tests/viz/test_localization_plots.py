"""The per-query localization PNG: produced from a small synthetic QueryResult, atomically."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from s2dloc.geometry import Camera, Pose
from s2dloc.localization import QueryResult
from s2dloc.localization.map import Map, RefImage
from s2dloc.localization.s2d import RefMatches
from s2dloc.viz.localization_plots import PlotMatches, matches_for_plot, plot_query, project

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pose(angle_deg: float = 0.0, tx: float = 0.0) -> Pose:
    a = math.radians(angle_deg)
    R = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    return Pose.from_Rt(R.double(), torch.tensor([tx, 0.0, 0.0]).double())


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    camera = Camera.from_colmap("PINHOLE", 96, 64, [80.0, 80.0, 48.0, 32.0])
    gt = _pose()
    X = np.c_[rng.uniform(-1, 1, (40, 2)), rng.uniform(3, 5, 40)]
    p2d, valid = project(X, camera, gt)
    assert valid.all()
    inliers = np.arange(40) % 4 != 0
    p2d[~inliers] += rng.uniform(-20, 20, (int((~inliers).sum()), 2))
    matches = PlotMatches("db/0001.png", p2d, p2d + 3.0, X, inliers)
    res = QueryResult(
        "query/night/0000.png",
        pose=_pose(0.05),
        pnp_pose=_pose(1.0, 0.05),
        pnp_success=True,
        fpnp_success=True,
        best_ref="db/0001.png",
        refs=[("db/0001.png", 0.9), ("db/0002.png", 0.8)],
        matches={"db/0001.png": 40, "db/0002.png": 12},
        inliers={"db/0001.png": 30, "db/0002.png": 0},
    )
    images = {n: rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for n in res.matches}
    query = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    return camera, gt, matches, res, images, query


def test_plot_query_writes_png(tmp_path, case):
    camera, gt, matches, res, images, query = case
    out = plot_query(tmp_path / "sub" / "q.png", query, camera, res, images, matches, gt_pose=gt)
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    assert [p.name for p in out.parent.iterdir()] == ["q.png"]  # no temporary left behind


def test_plot_query_without_matches_or_pose(tmp_path, case):
    camera, _, _, res, images, query = case
    res.pose = res.pnp_pose = None
    out = plot_query(tmp_path / "q.png", query, camera, res, images, None)
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_plot_matches_checks_lengths():
    with pytest.raises(ValueError, match="different lengths"):
        PlotMatches("a", np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((2, 3)), np.ones(3, bool))


def test_project_known_answer():
    camera = Camera.from_colmap("PINHOLE", 96, 64, [80.0, 80.0, 48.0, 32.0])
    p, valid = project(np.array([[0.0, 0.0, 2.0], [0.5, 0.0, 2.0]]), camera, _pose())
    np.testing.assert_allclose(p, [[48.0, 32.0], [68.0, 32.0]], atol=1e-9)
    assert valid.all()


def test_matches_for_plot_uses_the_stored_matches(case):
    camera, gt, matches, res, _, _ = case
    X = matches.p3d
    obs = np.arange(len(X))[::-1].copy()
    keypoints = np.arange(2 * len(X), dtype=float).reshape(-1, 2)
    ref = RefImage("db/0001.png", camera, gt, np.arange(len(X)), keypoints)
    map_ = Map([ref], np.arange(len(X)), X[::-1].copy(), Path("."))
    res.ref_matches = {
        "db/0001.png": RefMatches(
            matches.p2d, obs, obs, X, np.ones(len(X)), np.ones(len(X)), matches.inliers
        ),
    }
    pm = matches_for_plot(res, map_)
    assert pm.ref_name == "db/0001.png"
    np.testing.assert_array_equal(pm.ref_p2d, keypoints[obs])
    np.testing.assert_array_equal(pm.inliers, matches.inliers)
    np.testing.assert_array_equal(pm.p2d, matches.p2d)
    res.best_ref = "db/0002.png"
    assert matches_for_plot(res, map_) is None
