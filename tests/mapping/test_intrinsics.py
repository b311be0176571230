from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from s2dloc.datasets.colmap_io import write_query_list
from s2dloc.localization.map import Map
from s2dloc.mapping import exif_focal, query_camera
from s2dloc.mapping.intrinsics import (
    EXIF_IFD,
    FOCAL_35MM,
    FOCAL_LENGTH,
    FOCAL_PLANE_UNIT,
    FOCAL_PLANE_X_RES,
)


def _jpeg(path, size=(640, 480), tags: dict | None = None):
    img = Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8))
    exif = Image.Exif()
    for k, v in (tags or {}).items():
        exif.get_ifd(EXIF_IFD)[k] = v
    img.save(path, exif=exif)
    return path


def test_exif_35mm_focal(tmp_path, caplog):
    path = _jpeg(tmp_path / "q.jpg", tags={FOCAL_35MM: 28})
    assert exif_focal(path) == pytest.approx(28 / 36 * 640)
    with caplog.at_level(logging.WARNING, "s2dloc"):
        cam, source = query_camera(path)
    assert source == "exif" and "EXIF" in caplog.text
    assert cam.model == "SIMPLE_RADIAL"
    np.testing.assert_allclose(cam.params.tolist(), [28 / 36 * 640, 320, 240, 0])


def test_exif_focal_plane_resolution(tmp_path):
    # 4 mm lens, 160 px/mm sensor (6.4 mm wide for 1024 px), image stored at 640 px: scale 0.625.
    tags = {FOCAL_LENGTH: 4.0, FOCAL_PLANE_X_RES: 160.0, FOCAL_PLANE_UNIT: 4, 0xA002: 1024}
    path = _jpeg(tmp_path / "q.jpg", tags=tags)
    assert exif_focal(path) == pytest.approx(4.0 * 160 * 640 / 1024)
    tags[FOCAL_PLANE_UNIT] = 3  # px per cm
    tags[FOCAL_PLANE_X_RES] = 1600.0
    assert exif_focal(_jpeg(tmp_path / "r.jpg", tags=tags)) == pytest.approx(400.0)


def test_missing_exif_uses_default(tmp_path, caplog):
    path = _jpeg(tmp_path / "plain.jpg", size=(300, 200))
    assert exif_focal(path) is None
    with caplog.at_level(logging.WARNING, "s2dloc"):
        cam, source = query_camera(path, default_focal_factor=1.5)
    assert source == "default" and "default focal" in caplog.text
    np.testing.assert_allclose(cam.params.tolist(), [450, 150, 100, 0])


def test_query_list_and_model_come_first(tmp_path, caplog):
    path = _jpeg(tmp_path / "q.jpg", tags={FOCAL_35MM: 28})
    qlist = write_query_list(
        tmp_path / "q.txt", {"q.jpg": ("PINHOLE", 640, 480, [500, 501, 320, 240])}
    )
    cam, source = query_camera(path, query_list=qlist)
    assert source == "query_list" and cam.model == "PINHOLE"
    # A map whose camera has the query's size: that camera is used.
    from s2dloc.geometry import Camera, Pose

    ref_cam = Camera.from_colmap("SIMPLE_RADIAL", 640, 480, [555, 320, 240, 0.01])
    from s2dloc.localization.map import RefImage

    ref = RefImage(
        "db.jpg",
        ref_cam,
        Pose.from_Rt(np.eye(3), np.zeros(3)),
        np.array([0]),
        np.array([[1.0, 2.0]]),
    )
    map_ = Map([ref], [0], [[0.0, 0.0, 1.0]])
    with caplog.at_level(logging.WARNING, "s2dloc"):
        cam, source = query_camera(path, model=map_, query_list=qlist)
    assert source == "model" and cam.params[0].item() == 555
    assert "COLMAP model" in caplog.text
    small = _jpeg(tmp_path / "small.jpg", size=(320, 240))
    assert query_camera(small, model=map_)[1] == "default"
    with pytest.raises(FileNotFoundError):
        query_camera(tmp_path / "nope.jpg")
