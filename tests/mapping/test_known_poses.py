"""Maps from known poses: triangulation of a rendered street with its true poses and camera."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pycolmap
import pytest
from PIL import Image

from s2dloc.cli import main
from s2dloc.mapping import known_poses
from s2dloc.mapping.known_poses import (
    KnownPosesConfig,
    check_known_poses_folder,
    known_poses_config,
    triangulate_known_poses,
)
from s2dloc.mapping.pose_pairs import pairs_from_poses
from s2dloc.mapping.sfm import seeded_verification
from s2dloc.utils.config import ConfigError

from .conftest import SEQUENCE_CAMERA, render_sequence

CONF = KnownPosesConfig(max_features=2048, num_threads=1)


def write_model(folder: Path, poses: dict, binary: bool = False) -> Path:
    """A COLMAP model of ``poses`` (one camera, no points) in ``folder``."""
    rec = pycolmap.Reconstruction()
    camera = SEQUENCE_CAMERA.to_colmap()
    camera.camera_id = 1
    rec.add_camera_with_trivial_rig(camera)
    for image_id, (name, pose) in enumerate(sorted(poses.items()), start=1):
        image = pycolmap.Image(name=name, camera_id=1, image_id=image_id)
        rec.add_image_with_trivial_frame(image, pose.to_colmap())
    folder.mkdir(parents=True, exist_ok=True)
    rec.write_binary(str(folder)) if binary else rec.write_text(str(folder))
    return folder


def bilinear(image: np.ndarray, xy: np.ndarray) -> float:
    """``image`` (H, W) interpolated at array coordinates ``xy`` (x, y) (pixel centres at
    integers)."""
    x0, y0 = int(np.floor(xy[0])), int(np.floor(xy[1]))
    x0 = min(max(x0, 0), image.shape[1] - 2)
    y0 = min(max(y0, 0), image.shape[0] - 2)
    ax, ay = xy[0] - x0, xy[1] - y0
    top = (1 - ax) * image[y0, x0] + ax * image[y0, x0 + 1]
    bottom = (1 - ax) * image[y0 + 1, x0] + ax * image[y0 + 1, x0 + 1]
    return float((1 - ay) * top + ay * bottom)


@pytest.fixture(scope="module")
def posed(tmp_path_factory) -> tuple[Path, Path, dict, dict]:
    """Six rendered views, their text model, true poses and depth maps."""
    root = tmp_path_factory.mktemp("posed")
    depths: dict = {}
    poses = render_sequence(root / "images", num=6, step=0.3, depths=depths)
    return root / "images", write_model(root / "model", poses), poses, depths


@pytest.fixture(scope="module")
def triangulated(posed, tmp_path_factory) -> tuple[Path, pycolmap.Reconstruction]:
    out = tmp_path_factory.mktemp("known") / "map"
    return out, triangulate_known_poses(posed[0], posed[1], out, progress=False, conf=CONF)


def test_points_match_known_geometry(posed, triangulated):
    _, model, poses, depths = posed
    out, rec = triangulated
    assert rec.num_reg_images() == 6 and rec.num_points3D() > 100
    assert rec.compute_mean_reprojection_error() < 1.0
    assert rec.compute_mean_track_length() > 2.5  # two-view tracks are left out
    given = pycolmap.Reconstruction(str(model))
    for image in rec.images.values():  # poses and intrinsics unchanged, bit for bit
        ref = given.images[image.image_id]
        assert image.name == ref.name
        assert np.array_equal(image.cam_from_world().matrix(), ref.cam_from_world().matrix())
        assert np.array_equal(image.camera.params, given.cameras[1].params)
    rel = []
    for point in rec.points3D.values():
        image = rec.images[point.track.elements[0].image_id]
        xy = image.points2D[point.track.elements[0].point2D_idx].xy
        z = (image.cam_from_world() * point.xyz)[2]
        true_z = bilinear(depths[image.name], xy - 0.5)  # pixel centres at +0.5
        rel.append((z - true_z) / true_z)
    rel = np.array(rel)  # triangulation noise at 320x240: about 1 % of the depth, no bias
    assert abs(np.median(rel)) < 0.005
    assert np.median(np.abs(rel)) < 0.02 and np.mean(np.abs(rel) < 0.05) > 0.9
    summary = json.loads((out / "summary.json").read_text())
    assert summary["points3D"] == rec.num_points3D() and summary["matching"] == "exhaustive"
    assert pycolmap.Reconstruction(str(out / "sfm")).num_points3D() == rec.num_points3D()


def test_resume_subset_and_stale_settings(posed, triangulated, tmp_path):
    images, model, _, _ = posed
    out = tmp_path / "map"
    shutil.copytree(triangulated[0], out, symlinks=True)
    db = pycolmap.Database.open(out / "database.db")
    keypoints, matches = db.num_keypoints(), db.num_matches()
    db.close()
    rec = triangulate_known_poses(images, model, out, progress=False, conf=CONF)
    assert rec.num_points3D() == triangulated[1].num_points3D()
    db = pycolmap.Database.open(out / "database.db")
    assert (db.num_keypoints(), db.num_matches()) == (keypoints, matches)  # reused
    db.close()
    with pytest.raises(ValueError, match="other settings"):
        triangulate_known_poses(images, model, out, matching="poses", conf=CONF)
    before = (out / "config.json").read_text()
    check_known_poses_folder(images, model, out, conf=CONF)  # the same arguments: reused
    with pytest.raises(ConfigError, match=r"other settings \(changed: matching\)"):
        check_known_poses_folder(images, model, out, matching="poses", conf=CONF)
    with pytest.raises(ConfigError, match="image_names_sha1.*num_images"):
        check_known_poses_folder(
            images, model, out, image_names=["0000.png", "0001.png"], conf=CONF
        )
    assert (out / "config.json").read_text() == before  # checking writes nothing
    check_known_poses_folder(images, model, tmp_path / "empty", conf=CONF)  # nothing to check
    names = [f"{i:04d}.png" for i in range(5)]  # leave the last image out
    sub = triangulate_known_poses(
        images,
        model,
        tmp_path / "sub",
        image_names=names,
        matching="poses",
        progress=False,
        conf=CONF,
    )
    assert sorted(im.name for im in sub.images.values()) == names
    assert sub.num_points3D() > 50
    assert (tmp_path / "sub" / "pairs.txt").read_text().count("\n") > 0


def test_same_seed_same_map(posed, tmp_path):
    """Two builds from scratch with the same seed give the same points, bit for bit, with two
    threads: the RANSAC of the verification and of the triangulation is seeded."""
    images, model, _, _ = posed
    conf = KnownPosesConfig(max_features=2048, num_threads=2, seed=3)
    points = []
    for name in ("a", "b"):
        rec = triangulate_known_poses(images, model, tmp_path / name, progress=False, conf=conf)
        points.append(sorted(tuple(p.xyz) for p in rec.points3D.values()))
    assert len(points[0]) > 50 and points[0] == points[1]
    assert seeded_verification(7).ransac.random_seed == 7
    with pytest.raises(ConfigError, match="seed"):
        known_poses_config({"seed": -2})


def test_binary_model_and_unposed_files(posed, tmp_path, caplog):
    images, _, poses, _ = posed
    folder = tmp_path / "images"
    shutil.copytree(images, folder)
    shutil.copy(folder / "0000.png", folder / "query.png")  # no pose: skipped with a warning
    model = write_model(
        tmp_path / "bin", {n: poses[n] for n in ("0000.png", "0001.png", "0002.png")}
    )
    with caplog.at_level(logging.WARNING):
        rec = triangulate_known_poses(folder, model, tmp_path / "out", progress=False, conf=CONF)
    assert "query.png" in caplog.text and "0005.png" in caplog.text
    assert rec.num_images() == 3 and rec.num_points3D() > 20
    with pytest.raises(ValueError, match="no pose in the model.*query.png"):
        triangulate_known_poses(
            folder, model, tmp_path / "o2", image_names=["0000.png", "query.png"]
        )


def test_bad_inputs(posed, tmp_path):
    images, _, poses, _ = posed
    folder = tmp_path / "images"
    shutil.copytree(images, folder)
    (folder / "0003.png").unlink()
    model = write_model(tmp_path / "model", poses)
    with pytest.raises(ValueError, match="not under .*0003.png"):
        triangulate_known_poses(folder, model, tmp_path / "out")
    shutil.copy(images / "0003.png", folder / "0003.png")
    Image.open(images / "0004.png").resize((160, 120)).save(folder / "0004.png")
    with pytest.raises(ValueError, match=r"0004.png is 160x120 but its camera 1 .* 320x240"):
        triangulate_known_poses(folder, model, tmp_path / "out")
    with pytest.raises(ValueError, match="unknown matching"):
        triangulate_known_poses(folder, model, tmp_path / "out", matching="vocab")
    with pytest.raises(FileNotFoundError, match="nope"):
        triangulate_known_poses(folder, tmp_path / "nope", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are checked


def test_cli(posed, triangulated, tmp_path, caplog):
    images, model, _, _ = posed
    out = tmp_path / "map"
    shutil.copytree(triangulated[0], out, symlinks=True)  # same settings: resumes
    args = [
        "map",
        "--images",
        str(images),
        "--out",
        str(out),
        "--known-poses",
        str(model),
        "--max-features",
        "2048",
        "--threads",
        "1",
    ]
    assert main(args) == 0
    assert json.loads((out / "summary.json").read_text())["points3D"] > 100
    assert main(args + ["--matcher", "sequential"]) == 2
    foo = ["map", "--images", str(images), "--out", str(tmp_path / "x"), "--camera-model", "FOO"]
    assert main(foo) == 2
    message = [r.getMessage() for r in caplog.records if "FOO" in r.getMessage()]
    assert len(message) == 1 and "\n" not in message[0] and "SIMPLE_RADIAL" in message[0]
    assert not (tmp_path / "x").exists()


def test_pairs_from_poses():
    # Five cameras on the x axis looking along +z, one of them (d) looking back along -z.
    names = ["a", "b", "c", "d", "e"]
    centers = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [2.5, 0, 0], [10, 0, 0]], float)
    directions = np.array([[0, 0, 1]] * 3 + [[0, 0, -1]] + [[0, 0.5, 1]], float)
    pairs = pairs_from_poses(centers, directions, names, num_neighbors=1, max_angle_deg=60)
    assert pairs == [("a", "b"), ("b", "c"), ("c", "e")]
    pairs = pairs_from_poses(centers, directions, names, num_neighbors=2, max_angle_deg=20)
    assert pairs == [("a", "b"), ("a", "c"), ("b", "c")]
    with pytest.raises(ValueError, match="num_neighbors"):
        pairs_from_poses(centers, directions, names, num_neighbors=0)


def test_killed_after_extraction_resumes(posed, monkeypatch, tmp_path):
    images, model, _, _ = posed
    names = ["0000.png", "0001.png", "0002.png"]

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(known_poses, "_match", killed)
        with pytest.raises(KeyboardInterrupt):
            triangulate_known_poses(images, model, tmp_path, image_names=names, conf=CONF)
    assert not (tmp_path / "sfm").exists() and not (tmp_path / "summary.json").exists()
    db = pycolmap.Database.open(tmp_path / "database.db")
    keypoints = db.num_keypoints()
    db.close()
    assert keypoints > 0
    rec = triangulate_known_poses(images, model, tmp_path, image_names=names, conf=CONF)
    assert rec.num_points3D() > 20 and (tmp_path / "summary.json").is_file()
    db = pycolmap.Database.open(tmp_path / "database.db")
    assert db.num_keypoints() == keypoints  # features of the first run are kept
    db.close()
