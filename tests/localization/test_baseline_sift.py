"""SIFT + PnP baseline on a tiny reference-condition synthetic world."""

from __future__ import annotations

import numpy as np
import pytest

from s2dloc.datasets.colmap_io import read_poses
from s2dloc.geometry import Pose
from s2dloc.localization import Map
from s2dloc.localization.baseline_sift import SiftBaseline, _ratio_matches, sift_features
from s2dloc.localization.io import read_queries

from .conftest import write_tiny_world


@pytest.fixture(scope="module")
def sift_world(tmp_path_factory):
    """The tiny world at 320x240 (SIFT finds too little at the shared 160x120)."""
    return write_tiny_world(tmp_path_factory, "sift_world", width=320, height=240)


@pytest.fixture(scope="module")
def world_map(sift_world):
    return Map.load(sift_world)


@pytest.fixture(scope="module")
def baseline(world_map):
    return SiftBaseline(world_map, {"radius": 3.0, "pnp": {"max_error": 3.0}})


def test_sift_baseline_localizes_reference_queries(sift_world, baseline):
    world_dir = sift_world
    queries = read_queries(world_dir / "queries_with_intrinsics.txt", world_dir / "images")
    gt = read_poses(world_dir / "poses_query.txt")
    ok = 0
    for q in queries:
        res = baseline.localize(q)
        if res.pose is None:
            continue
        T_gt = Pose.from_quat_t(*gt[q.name])
        rot, trans = float(T_gt.angle_to(res.pose)), float(T_gt.center_distance_to(res.pose))
        # 320x240 views of a street 10-40 m deep: SIFT's poses are within a few decimetres.
        ok += rot < 2.0 and trans < 0.5
        assert res.inliers >= 12 and res.matches >= res.inliers
    assert ok >= len(queries) - 1, f"only {ok}/{len(queries)} within (0.5 m, 2 deg)"


def test_sift_baseline_map_keypoints_carry_3d_points(world_map, baseline):
    assert set(baseline.refs) <= set(world_map.names) and baseline.refs
    lo, hi = world_map.points3D.min(0) - 1.0, world_map.points3D.max(0) + 1.0
    for X, desc in baseline.refs.values():
        assert len(X) == len(desc) > 0 and desc.shape[1] == 128
        assert np.isfinite(X).all() and ((X >= lo) & (X <= hi)).all()


def test_sift_features_coordinates_are_full_resolution():
    rng = np.random.default_rng(0)
    image = (rng.random((240, 320, 3)) * 255).astype(np.uint8)
    xy, desc = sift_features(image, max_side=160, num_features=200)
    assert len(xy) == len(desc) > 0
    assert xy[:, 0].max() <= 320 and xy[:, 1].max() <= 240 and xy[:, 0].max() > 160


def test_ratio_matches_empty_and_identity():
    d = np.random.default_rng(1).random((20, 128)).astype(np.float32)
    pairs, dist = _ratio_matches(d, d, 0.8)
    np.testing.assert_array_equal(pairs[:, 0], pairs[:, 1])
    assert len(pairs) == 20 and np.allclose(dist, 0)
    assert len(_ratio_matches(d[:1], d, 0.8)[0]) == 0
