"""Swappable stages: results keep their matches; matches exported by one run replace the
matching stage of another (same poses); a user-made matches file localizes; pairs export."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from s2dloc.cli import main
from s2dloc.datasets.colmap_io import read_poses
from s2dloc.datasets.point_matches import (
    PointMatches,
    read_point_matches,
    write_point_matches,
)
from s2dloc.geometry import Pose
from s2dloc.localization import Localizer
from s2dloc.localization.io import read_queries
from s2dloc.localization.retrieval import pairs_from_file
from s2dloc.localization.stages import export_matches, export_pairs, merge_matches

from .conftest import CONF
from .extractors import PatchProjection


@pytest.fixture(scope="module")
def setup(world_dir, world_map):
    queries = read_queries(world_dir / "queries_with_intrinsics.txt", world_dir / "images")
    gt = {n: Pose.from_quat_t(*v) for n, v in read_poses(world_dir / "poses_query.txt").items()}
    pairs = pairs_from_file(world_dir / "pairs-query-db.txt", set(world_map.names))
    loc = Localizer(world_map, CONF, extractor=PatchProjection(), pairs=pairs, progress=False)
    results = [loc.localize(q) for q in queries[:3]]
    return loc, queries, gt, results


def _no_matching(*args, **kwargs):
    raise AssertionError("dense matching ran")


def test_result_keeps_its_matches(setup, world_map):
    _, _, _, results = setup
    for r in results:
        assert list(r.ref_matches) == [n for n, _ in r.refs]
        for name, m in r.ref_matches.items():
            assert len(m) == r.matches[name] and int(m.inliers.sum()) == r.inliers[name]
            ids = world_map[name].point3D_ids[m.obs]
            np.testing.assert_array_equal(m.point3D_ids, ids)
            np.testing.assert_array_equal(m.points3d, world_map.xyz(ids))
        record = r.to_json()
        assert "ref_matches" not in record and json.dumps(record)
    assert any(r.inliers[r.best_ref] > 0 for r in results if r.best_ref)


def test_exported_matches_replace_matching_with_the_same_poses(setup, tmp_path, monkeypatch):
    loc, queries, _, results = setup
    path = tmp_path / "matches.h5"
    for r in results:
        assert export_matches(path, r)
    monkeypatch.setattr(loc, "matches_file", path)
    monkeypatch.setattr(loc, "match", _no_matching)
    for q, r0 in zip(queries[:3], results):
        r = loc.localize(q)
        assert not r.error and [n for n, _ in r.refs] == [n for n, _ in r0.refs]
        assert (r.success, r.pnp_success, r.fpnp_success) == (
            r0.success,
            r0.pnp_success,
            r0.fpnp_success,
        )
        assert r.matches == r0.matches and r.inliers == r0.inliers
        for a, b in ((r.pose, r0.pose), (r.pnp_pose, r0.pnp_pose)):
            assert (a is None) == (b is None)
            if a is not None:
                torch.testing.assert_close(a.R, b.R, atol=1e-9, rtol=0)
                torch.testing.assert_close(a.t, b.t, atol=1e-9, rtol=0)
    # A query the file does not list is matched densely.
    monkeypatch.setattr(loc, "matches_file", tmp_path / "other.h5")
    write_point_matches(tmp_path / "other.h5", "unrelated.png", {})
    assert "dense matching ran" in loc.localize(queries[0]).error


def test_user_made_matches_localize(setup, world_map, tmp_path, monkeypatch):
    """True projections of a reference's map points, given by point id only."""
    loc, queries, gt, _ = setup
    q = queries[1]
    ref = loc.pairs[q.name][0]
    ids = world_map[ref].point3D_ids
    X = gt[q.name].double().transform(torch.from_numpy(world_map.xyz(ids)))
    p2d, valid = q.camera.double().project(X)
    valid = valid.numpy()
    assert valid.sum() >= 30
    path = tmp_path / "user.h5"
    write_point_matches(path, q.name, {ref: PointMatches(p2d.numpy()[valid], ids[valid])})
    monkeypatch.setattr(loc, "matches_file", path)
    monkeypatch.setattr(loc, "match", _no_matching)
    r = loc.localize(q)
    assert not r.error and r.refs[0][0] == ref and r.pnp_success
    assert r.inliers[ref] == int(valid.sum())
    assert float(gt[q.name].angle_to(r.pnp_pose)) < 0.01
    assert float(gt[q.name].center_distance_to(r.pnp_pose)) < 1e-3
    assert r.success, r.reason


def test_bad_matches_files_name_the_entry(setup, world_map, tmp_path, monkeypatch):
    loc, queries, _, _ = setup
    q, ref = queries[0], world_map.names[0]
    path = tmp_path / "bad.h5"
    monkeypatch.setattr(loc, "matches_file", path)
    cases = [
        ({"nope.png": PointMatches(np.zeros((1, 2)), [1])}, "'nope.png' is not in the map"),
        ({ref: PointMatches(np.zeros((1, 2)), [-5])}, "are not observed in the reference"),
        ({ref: PointMatches(np.zeros((1, 2)), observations=[10**6])}, "observations must be"),
    ]
    for entry, message in cases:
        write_point_matches(path, q.name, entry)
        r = loc.localize(q)
        assert message in r.error and str(path) in r.error and not r.success
    with pytest.raises(ValueError, match=r"keypoints must be \(K, 2\)"):
        PointMatches(np.zeros((3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="needs point3D_ids or observations"):
        PointMatches(np.zeros((3, 2)))
    with h5py.File(path, "a") as f:
        f[q.name.replace("/", "-")].attrs["complete"] = 0
    with pytest.raises(ValueError, match="incomplete"):
        read_point_matches(path, q.name)
    assert read_point_matches(path, "absent.png") is None


def test_export_pairs_round_trip(setup, tmp_path, world_map):
    _, _, _, results = setup
    records = {r.name: r.to_json() for r in results}
    path = export_pairs(tmp_path / "pairs.txt", records)
    pairs = pairs_from_file(path, set(world_map.names))
    assert pairs == {r.name: [n for n, _ in r.refs] for r in results}


def test_merge_matches_of_processes(tmp_path):
    """Per-process files move into the main file; a query in both keeps the newest entry."""
    main_file, parts = tmp_path / "m.h5", [tmp_path / "m.rank0.h5", tmp_path / "m.rank1.h5"]
    write_point_matches(main_file, "a/q.png", {"r": PointMatches(np.zeros((1, 2)), [1])})
    write_point_matches(parts[0], "a/q.png", {"r": PointMatches(np.ones((2, 2)), [1, 2])})
    write_point_matches(
        parts[1], "b.png", {"s": PointMatches(np.ones((3, 2)), observations=[0, 1, 2])}
    )
    merge_matches(main_file, parts)
    assert not any(p.exists() for p in parts)
    assert read_point_matches(main_file, "a/q.png")["r"].point3D_ids.tolist() == [1, 2]
    assert read_point_matches(main_file, "b.png")["s"].observations.tolist() == [0, 1, 2]


def _cli(world_dir, out, *extra):
    args = ["localize", "--map", str(world_dir), "--out", str(out), "--num-queries", "2"]
    args += ["--queries", str(world_dir / "queries_with_intrinsics.txt")]
    return main([*args, "--conf", "s2d.match_stride=4", "retrieval.num_refs=2", *extra])


def test_cli_export_then_import(world_dir, tmp_path):
    pairs, matches = tmp_path / "pairs.txt", tmp_path / "m.h5"
    export = ["--export-pairs", str(pairs), "--export-matches", str(matches)]
    assert _cli(world_dir, tmp_path / "a", *export) == 0
    assert len(pairs.read_text().splitlines()) == 4
    with h5py.File(matches) as f:
        assert len(f) == 2
    assert _cli(world_dir, tmp_path / "b", "--matches", str(matches)) == 0
    for name in ("results.txt", "results_pnp.txt"):
        a = (tmp_path / "a" / name).read_text()
        assert a == (tmp_path / "b" / name).read_text()
    assert _cli(world_dir, tmp_path / "c", "--matches", str(tmp_path / "missing.h5")) == 2
    # A file that is not HDF5 stops the run before any query is logged as failed.
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an HDF5 file")
    assert _cli(world_dir, tmp_path / "d", "--matches", str(garbage)) == 2
    assert not (tmp_path / "d" / "log.jsonl").exists()
    assert _cli(world_dir, tmp_path / "d", "--matches", str(matches)) == 0
    assert (tmp_path / "d" / "results.txt").read_text() == (
        tmp_path / "a" / "results.txt"
    ).read_text()
