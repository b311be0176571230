"""Maps from known poses on real data: three castle-P30 images (LIDAR-registered cameras)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2dloc.mapping.known_poses import KnownPosesConfig, triangulate_known_poses
from s2dloc.mapping.sfm import read_model

CASTLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "strecha_dev" / "castle-P30"


@pytest.mark.shared_data
@pytest.mark.skipif(not CASTLE.is_dir(), reason=f"Strecha data not found at {CASTLE}")
def test_castle_three_images(tmp_path):
    names = ["0000.jpg", "0001.jpg", "0002.jpg"]
    conf = KnownPosesConfig(max_size=1024, max_features=1024, num_threads=2)
    rec = triangulate_known_poses(
        CASTLE / "images",
        CASTLE / "sparse",
        tmp_path / "map",
        image_names=names,
        progress=False,
        conf=conf,
    )
    given = read_model(CASTLE / "sparse")
    assert sorted(im.name for im in rec.images.values()) == names
    for image in rec.images.values():
        ref = given.images[image.image_id]
        assert np.array_equal(image.cam_from_world().matrix(), ref.cam_from_world().matrix())
        assert np.array_equal(image.camera.params, given.cameras[ref.camera_id].params)
    errors = [p.error for p in rec.points3D.values()]
    assert len(errors) > 50 and np.median(errors) < 0.5  # mm-accurate poses: sub-pixel
