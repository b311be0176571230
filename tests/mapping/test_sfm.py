from __future__ import annotations

import json
import shutil

import numpy as np
import pycolmap
import pytest

from s2dloc.cli import main
from s2dloc.localization.map import Map
from s2dloc.mapping import SfMConfig, build_map, import_model, list_images

from .conftest import align_to_gt


def _rotation_error_deg(R: np.ndarray) -> float:
    return float(np.rad2deg(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))))


def test_sfm_recovers_poses_up_to_similarity(sequence, sfm_map):
    images, gt = sequence
    out, summary = sfm_map
    assert summary["registered_images"] >= 8
    assert summary["mean_reprojection_error"] < 1.5 and summary["mean_track_length"] > 2
    assert json.loads((out / "summary.json").read_text())["points3D"] == summary["points3D"]
    map_ = Map.load(out)  # sfm/ + images/ link: usable by `s2dloc localize --map out`
    assert map_.image_root is not None and (map_.image_root / map_.names[0]).is_file()
    names = [n for n in map_.names if n in gt]
    assert len(names) == len(map_)
    est = {n: map_[n].cam_from_world.numpy() for n in names}
    ref = {n: gt[n].numpy() for n in names}
    c_est = np.array([-est[n][0].T @ est[n][1] for n in names])
    c_gt = np.array([-ref[n][0].T @ ref[n][1] for n in names])
    R_sT, scale, m_est, m_gt = align_to_gt(est, ref)
    c_aligned = scale * (c_est @ R_sT - m_est) + m_gt
    spread = np.linalg.norm(c_gt - c_gt.mean(0), axis=1).max()
    assert np.linalg.norm(c_aligned - c_gt, axis=1).max() < 0.1 * spread
    for n in names:
        err = _rotation_error_deg(ref[n][0].T @ est[n][0] @ R_sT)
        assert err < 2.0, (n, err)


def test_sfm_resume_and_stale_settings(sequence, sfm_map, tmp_path):
    out = tmp_path / "map"
    shutil.copytree(sfm_map[0], out, symlinks=True)
    db = pycolmap.Database.open(out / "database.db")
    num_keypoints = db.num_keypoints()
    db.close()
    summary = build_map(
        sequence[0], out, SfMConfig(num_threads=1, single_camera=True)
    )  # reuses the database
    assert summary["registered_images"] >= 8
    db = pycolmap.Database.open(out / "database.db")
    assert db.num_keypoints() == num_keypoints
    db.close()
    with pytest.raises(ValueError, match="other settings"):
        build_map(sequence[0], out, SfMConfig(num_threads=2, single_camera=True, max_size=200))


def test_import_text_model(sequence, sfm_map, tmp_path):
    text = tmp_path / "text"
    text.mkdir()
    pycolmap.Reconstruction(str(sfm_map[0] / "sfm")).write_text(str(text))
    out = tmp_path / "imported"
    assert (
        main(["map", "--images", str(sequence[0]), "--out", str(out), "--import-model", str(text)])
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["registered_images"] == sfm_map[1]["registered_images"]
    assert len(Map.load(out)) == summary["registered_images"]
    # An image of the model missing from the folder is named in the error.
    partial = tmp_path / "partial"
    shutil.copytree(sequence[0], partial)
    missing = Map.load(out).names[0]
    (partial / missing).unlink()
    with pytest.raises(ValueError, match=missing):
        import_model(text, partial, tmp_path / "other")


def test_errors(tmp_path, caplog):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images"):
        build_map(empty, tmp_path / "out")
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "nope")
    assert main(["map", "--images", str(empty), "--out", str(tmp_path / "out")]) == 2
    assert "no images" in caplog.text
    (empty / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        list_images(empty)
    with pytest.raises(ValueError, match="not a COLMAP model"):
        import_model(empty, empty, tmp_path / "out2")


def test_too_few_registered_images(sequence, tmp_path):
    images = tmp_path / "two"
    images.mkdir()
    for name in ("0000.png", "0009.png"):  # far apart: little overlap
        shutil.copy(sequence[0] / name, images / name)
    cv = np.zeros((240, 320, 3), np.uint8)  # a blank image: no features at all
    import cv2

    cv2.imwrite(str(images / "blank.png"), cv)
    with pytest.raises(ValueError, match="registered only|reconstructed nothing"):
        build_map(images, tmp_path / "out", SfMConfig(num_threads=1, single_camera=True))
