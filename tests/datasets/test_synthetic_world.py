"""End-to-end checks of a small synthetic world and its exports."""

import dataclasses
import hashlib

import numpy as np
import pycolmap
import pytest
import torch

from s2dloc.datasets.colmap_io import read_pairs, read_poses, read_query_list
from s2dloc.datasets.correspondences import read_correspondences
from s2dloc.datasets.synthetic.conditions import CONDITIONS, TRANSIENT_CONDITIONS
from s2dloc.datasets.synthetic.render import backproject, camera_tuple, project
from s2dloc.datasets.synthetic.world import PRESETS, generate_world, same_view_all_conditions
from s2dloc.datasets.synthetic.write import holds_world, read_depth, write_world
from s2dloc.geometry import Camera, Pose

TINY = dataclasses.replace(PRESETS["tiny"], camera_model="OPENCV", num_db=6, num_query=5)


@pytest.fixture(scope="module")
def world():
    return generate_world(TINY, progress=False)


@pytest.fixture(scope="module")
def exported(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    write_world(world, out, progress=False)
    return out


def test_world_contents(world):
    assert len(world.database) == 6 and len(world.queries) == 5
    assert {v.condition for v in world.database} == {"reference"}
    assert [q.condition for q in world.queries] == list(CONDITIONS[1:])
    for v in world.views:
        assert v.rgb.shape == (120, 160, 3) and v.depth.shape == (120, 160)
        assert v.camera.model == "OPENCV" and (v.depth > 0).mean() > 0.5


def test_colmap_points_reproject_onto_observations(exported, world):
    rec = pycolmap.Reconstruction(str(exported / "sfm"))
    assert rec.num_images() == 6 and rec.num_points3D() > 100
    max_err_colmap = max_err_s2dloc = 0.0
    for image in rec.images.values():
        cam = rec.cameras[image.camera_id]
        pose = Pose.from_colmap(image.cam_from_world())
        view = next(v for v in world.database if v.name == image.name)
        np.testing.assert_allclose(pose.R.numpy(), view.cam_from_world.R.numpy(), atol=1e-12)
        obs = [(p.xy, rec.points3D[p.point3D_id].xyz) for p in image.points2D if p.has_point3D()]
        assert len(obs) > 50
        xy = np.array([o[0] for o in obs])
        X = np.array([o[1] for o in obs])
        X_cam = np.asarray([image.cam_from_world() * x for x in X])
        p_colmap = np.asarray(cam.img_from_cam(X_cam))
        max_err_colmap = max(max_err_colmap, np.abs(p_colmap - xy).max())
        p_s2d, valid = Camera.from_colmap(cam).project(pose.transform(torch.from_numpy(X)))
        assert valid.all()
        max_err_s2dloc = max(max_err_s2dloc, np.abs(p_s2d.numpy() - xy).max())
    assert max_err_colmap < 0.01 and max_err_s2dloc < 0.01
    tracks = [p.track.length() for p in rec.points3D.values()]
    assert min(tracks) >= 2


def test_correspondences_consistent_and_unoccluded(exported, world):
    views = {v.name: v for v in world.views}
    files = sorted((exported / "correspondences").glob("*.mat"))
    assert len(files) == len(world.queries)
    for path in files:
        pair = read_correspondences(path)
        ref, other = views[pair.im_i_path], views[pair.im_j_path]
        assert ref.condition == "reference" and other.condition != "reference"
        assert len(pair.pt_i) > 20
        # pt_i are pixel centres of ref; lift them with ref's depth and project into other
        u, v = (pair.pt_i - 0.5).round().astype(int).T
        np.testing.assert_allclose(pair.pt_i, np.stack([u, v], 1) + 0.5, atol=1e-9)
        X = backproject(ref.depth, ref.camera, ref.cam_from_world)[v, u]
        p, z, valid = project(other.camera, other.cam_from_world, X)
        assert valid.all()
        np.testing.assert_allclose(p, pair.pt_j, atol=1e-6)
        # occlusion-free: the other image sees that very surface at that depth
        uj, vj = pair.pt_j.astype(int).T
        np.testing.assert_allclose(other.depth[vj, uj], z, rtol=0.01)
        assert (other.primitive[vj, uj] == ref.primitive[v, u]).all()
        assert (pair.dist_from_center < 0.05 * z).all()


def test_exports_round_trip(exported, world):
    queries = read_query_list(exported / "queries_with_intrinsics.txt")
    assert list(queries) == [q.name for q in world.queries]
    for q in world.queries:
        model, w, h, params = queries[q.name]
        assert (model, w, h) == ("OPENCV", 160, 120)
        np.testing.assert_allclose(params, camera_tuple(q.camera)[3], rtol=1e-15)
    for fname, views in (("poses_query.txt", world.queries), ("poses_db.txt", world.database)):
        poses = read_poses(exported / fname)
        for v in views:
            q, t = poses[v.name]
            pose = Pose.from_quat_t(torch.from_numpy(q), torch.from_numpy(t))
            np.testing.assert_allclose(pose.R.numpy(), v.cam_from_world.R.numpy(), atol=1e-12)
            np.testing.assert_allclose(t, v.cam_from_world.t.numpy(), atol=1e-12)
    for v in world.views:
        np.testing.assert_array_equal(read_depth(exported / "depth.h5", v.name), v.depth)
        assert (exported / "images" / v.name).stat().st_size > 1000
    pairs = read_pairs(exported / "pairs-query-db.txt")
    assert len(pairs) == 5 * len(world.queries)


def _digest(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_bytes(tmp_path):
    cfg = dataclasses.replace(PRESETS["tiny"], num_db=4, num_query=3, width=96, height=72)
    for name in ("a", "b"):
        write_world(generate_world(cfg, progress=False), tmp_path / name, progress=False)
    write_world(
        generate_world(dataclasses.replace(cfg, seed=1), progress=False),
        tmp_path / "c",
        progress=False,
    )
    a, b, c = (_digest(tmp_path / n) for n in "abc")
    assert len(a) > 15 and a == b
    assert a["images/db/0000.png"] != c["images/db/0000.png"]


def test_resume_keeps_files_and_refuses_stale(tmp_path, world):
    write_world(world, tmp_path, progress=False)
    before = _digest(tmp_path)
    write_world(world, tmp_path, progress=False)  # resume: nothing changes
    assert _digest(tmp_path) == before
    other = generate_world(dataclasses.replace(TINY, seed=5, num_db=2, num_query=1), progress=False)
    with pytest.raises(ValueError, match="different world"):
        write_world(other, tmp_path, progress=False)


def test_conditions_change_appearance_not_geometry(world):
    views = same_view_all_conditions(world, 2)
    ref = views[0]
    num_static = len(world.scene.primitives)
    for v in views[1:]:
        static = (ref.primitive < num_static) & (v.primitive < num_static)
        if v.condition not in TRANSIENT_CONDITIONS:
            assert static.all()
        np.testing.assert_array_equal(v.depth[static], ref.depth[static])
        diff = np.abs(v.rgb - ref.rgb).mean()
        mean_shift = np.abs(v.rgb.mean((0, 1)) - ref.rgb.mean((0, 1))).max()
        assert diff > 0.03 and mean_shift > 0.01, (v.condition, diff, mean_shift)
    by = {v.condition: v for v in views}
    assert by["night"].rgb.mean() < 0.5 * ref.rgb.mean()
    assert by["snow"].rgb.mean() > ref.rgb.mean() + 0.05
    near, far = ref.depth < np.percentile(ref.depth, 30), ref.depth > np.percentile(ref.depth, 70)
    contrast = lambda im, m: im[m].std()  # noqa: E731
    assert contrast(by["fog"].rgb, far) / contrast(ref.rgb, far) < contrast(
        by["fog"].rgb, near
    ) / contrast(ref.rgb, near)


def test_bad_world_config():
    with pytest.raises(ValueError, match="unknown preset"):
        generate_world("nope")
    with pytest.raises(ValueError, match="bad query conditions"):
        generate_world(dataclasses.replace(TINY, query_conditions=("rainbow",)))


def test_queries_are_offset_from_the_database_path(world):
    path = world.scene.path  # street: a straight segment along +y at x = 0, z = 1.6
    assert np.allclose(path[:, 0], 0) and np.allclose(path[:, 2], 1.6)
    db_c = np.array([v.cam_from_world.center().numpy() for v in world.database])
    q_c = np.array([v.cam_from_world.center().numpy() for v in world.queries])
    np.testing.assert_allclose(db_c[:, [0, 2]], np.broadcast_to([0.0, 1.6], (6, 2)), atol=1e-9)
    lateral = np.abs(q_c[:, 0])
    assert (lateral >= 0.4 - 1e-9).all() and (lateral <= 1.5 + 1e-9).all()
    assert (np.abs(q_c[:, 2] - 1.6) <= 0.15 + 1e-9).all()
    # viewing directions differ from the closest database image by a few degrees at least
    for q in world.queries:
        d = q.cam_from_world.R.numpy()[2]
        cosines = [d @ v.cam_from_world.R.numpy()[2] for v in world.database]
        assert np.degrees(np.arccos(np.clip(max(cosines), -1, 1))) > 0.5


def test_cli_writes_world_and_preview(tmp_path):
    import argparse

    import cv2

    from s2dloc.cli import synth

    parser = argparse.ArgumentParser()
    synth.add_arguments(parser)
    argv = ["--out", str(tmp_path), "--preset", "tiny", "--num-db", "3", "--num-query", "2"]
    args = parser.parse_args(argv + ["--width", "64", "--height", "48", "--preview"])
    assert synth.run(args) == 0
    preview = cv2.imread(str(tmp_path / "preview.png"))
    assert preview.shape == (3 * 48, (len(CONDITIONS) + 1) * 64, 3)
    assert len(read_poses(tmp_path / "poses_query.txt")) == 2
    with pytest.raises(ValueError, match=r"--width must be within 16-4096 pixels, got 4"):
        synth.run(parser.parse_args(argv + ["--width", "4"]))


def test_holds_world_only_for_a_complete_world_of_the_config(exported, tmp_path):
    assert holds_world(exported, TINY)
    assert not holds_world(exported, dataclasses.replace(TINY, texture_jitter=0.0))
    assert not holds_world(tmp_path, TINY)  # nothing written
    (tmp_path / "world.json").write_text("{not json")
    assert not holds_world(tmp_path, TINY)
