import numpy as np
import pytest

from s2dloc.datasets.colmap_io import read_poses
from s2dloc.geometry import Pose
from s2dloc.localization import Localizer, Query
from s2dloc.localization.io import read_queries
from s2dloc.localization.retrieval import pairs_from_file

from .conftest import CONF
from .extractors import PatchProjection


@pytest.fixture(scope="module")
def setup(world_dir, world_map):
    queries = read_queries(world_dir / "queries_with_intrinsics.txt", world_dir / "images")
    gt = {n: Pose.from_quat_t(*v) for n, v in read_poses(world_dir / "poses_query.txt").items()}
    pairs = pairs_from_file(world_dir / "pairs-query-db.txt", set(world_map.names))
    loc = Localizer(world_map, CONF, extractor=PatchProjection(), pairs=pairs, progress=False)
    return loc, queries, gt


def _err(gt, pose):
    return float(gt.angle_to(pose)), float(gt.center_distance_to(pose))


def test_retrieval_database_images(setup, world_map):
    loc = setup[0]
    for name in world_map.names[::3]:
        im = world_map[name]
        q = Query(name, im.camera, image=world_map.load_image(name))
        assert loc.retrieval(loc.features(q)[3], 1)[0][0] == name


def test_retrieval_queries(setup, world_dir):
    loc, queries, _ = setup
    pairs = pairs_from_file(world_dir / "pairs-query-db.txt")
    hits = [pairs[q.name][0] in [n for n, _ in loc.retrieval(loc.features(q)[3], 5)]
            for q in queries]  # fmt: skip
    assert np.mean(hits) >= 0.4, hits  # weak content features, far-apart database views


def test_pipeline_reference_queries(setup):
    loc, queries, gt = setup
    good = 0
    for q in queries:
        r = loc.localize(q)
        assert not r.error and r.refs and r.timings["match"] > 0
        if not r.pnp_success:
            assert r.fallback and r.pose is not None
            continue
        rot, trans = _err(gt[q.name], r.pose)
        good += rot < 2 and trans < 0.25
        if r.fpnp_success:  # F-PnP must not make a good PnP pose worse
            rot0, trans0 = _err(gt[q.name], r.pnp_pose)
            if rot0 < 2 and trans0 < 0.25:
                assert rot < rot0 + 0.1 and trans < trans0 + 0.05
    assert good >= 3


def test_refine_only_from_perturbed_pose(setup):
    loc, queries, gt = setup
    q = queries[3]
    T = gt[q.name]
    q.prior = Pose.exp(T.t.new_tensor([0.05, -0.03, 0.04, 0.004, -0.003, 0.002])) @ T
    r = loc.refine(q)
    assert not r.error and r.fpnp_success
    assert _err(T, r.pose)[0] < _err(T, q.prior)[0]


def test_bad_query_is_reported(setup, tmp_path):
    loc, queries, _ = setup
    bad = Query("missing.png", queries[0].camera, path=tmp_path / "missing.png")
    r = loc.localize(bad)
    assert r.pose is None and "missing.png" in r.error
