"""Homographic pairs, held-out exclusion, cover-crop of real pairs, COLMAP exclusion."""

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from s2dloc.datasets.augment import build_augmentation
from s2dloc.datasets.colmap_pairs import ColmapPairs
from s2dloc.datasets.homography_pairs import (
    HomographyConfig,
    HomographyPairs,
    apply_homography,
    random_homography,
    translation,
    warp_image,
)
from s2dloc.datasets.image_sets import crop_pair, list_images
from s2dloc.geometry import sample

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _photo(h=90, w=120, seed=0):
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.uniform(size=(h, w, 3)).astype(np.float32), (0, 0), 3)
    return ((tex - tex.min()) / (tex.max() - tex.min())).astype(np.float32)


@pytest.fixture
def photos(tmp_path):
    for name in ("a/x.png", "a/y.png", "held/z.png", "b/w.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / name), (_photo(seed=len(name)) * 255).astype(np.uint8))
    return tmp_path


def test_warp_follows_colmap_coordinates():
    img = _photo()
    H = translation(np.array([3.0, -2.0]))
    out = warp_image(img, H, (120, 90))
    np.testing.assert_allclose(out[12:80, 13:110], img[14:82, 10:107], atol=1e-5)
    rng = np.random.default_rng(1)
    H = random_homography((64, 48), rng, HomographyConfig())
    p = rng.uniform(0, 48, (20, 2))
    np.testing.assert_allclose(apply_homography(np.linalg.inv(H), apply_homography(H, p)), p)
    # the crop centre moves by at most the shift
    c = apply_homography(H, np.array([[32.0, 24.0]]))[0]
    assert np.abs(c - [32, 24]).max() <= 0.1 * 64 + 1e-9


def _colours(item, key_img, key_pts):
    pts = item[key_pts][item["valid"]][None].double()
    return sample(item[key_img][None].double(), pts)[0][0]


def test_homography_pairs_exact_and_excluding(photos, caplog):
    with caplog.at_level(logging.INFO):
        ds = HomographyPairs(photos, exclude=["held/*"], resize=(64, 48), max_points=128, seed=1)
    assert ds.names == ["a/x.png", "a/y.png", "b/w.jpg"]
    assert "1 excluded" in caplog.text
    for i in range(len(ds)):
        item = ds[i]
        assert item["image_a"].shape == (3, 48, 64) and item["image_b"].shape == (3, 48, 64)
        assert int(item["valid"].sum()) > 40
        assert item["name_a"] == ds.names[i] and "held" not in item["name_a"]
        # exact correspondences: same colour at both ends (smooth texture, bilinear sampling)
        diff = _colours(item, "image_a", "points_a") - _colours(item, "image_b", "points_b")
        assert diff.abs().median() < 0.02
    again = ds[1]
    assert torch.equal(again["points_b"], ds[1]["points_b"])
    ds.set_epoch(1)
    assert not torch.equal(again["points_b"], ds[1]["points_b"])
    dark = HomographyPairs(
        photos, resize=(64, 48), max_points=64, augment=build_augmentation("night")
    )[0]
    plain = HomographyPairs(photos, resize=(64, 48), max_points=64)[0]
    assert torch.equal(dark["points_b"], plain["points_b"])
    assert dark["image_b"].mean() < 0.5 * plain["image_b"].mean()


def test_listing_errors(photos, tmp_path):
    with pytest.raises(ValueError, match="every image is excluded"):
        list_images(photos, exclude=["*"])
    with pytest.raises(FileNotFoundError, match="no images"):
        list_images(photos / "a", patterns=["*.tif"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_images(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="resize=\\(W, H\\)"):
        HomographyPairs(photos, resize=64)


def test_crop_pair_keeps_aspect_and_matches():
    rng = np.random.default_rng(0)
    a, b = _photo(200, 100, 1), _photo(200, 100, 2)  # portrait photos
    pts = np.stack([rng.uniform(0, 100, 300), rng.uniform(0, 200, 300)], 1)
    ca, cb, pa, pb = crop_pair(a, b, pts, pts + [0.0, 10.0], (64, 48), rng)
    assert ca.shape == (48, 64, 3) and cb.shape == (48, 64, 3)
    d = pb - pa  # the 10 pixel shift at scale 0.64, plus the difference of integer offsets
    assert len(pa) > 20 and np.allclose(d, d[0], atol=1e-6) and abs(d[0, 0]) < 1e-6
    assert abs(d[0, 1] - 6.4 - round(d[0, 1] - 6.4)) < 1e-6 and abs(d[0, 1]) < 2
    # crops are resized, not stretched: the same content at the same scale
    small = cv2.resize(a, (64, 128), interpolation=cv2.INTER_AREA)
    assert any(np.allclose(ca, small[y : y + 48], atol=1e-6) for y in range(81))


@pytest.mark.shared_data
def test_lund_door_colmap_pairs():
    root = SHARED / "lund_door"
    if not root.is_dir():
        pytest.skip("../shared/data absent")
    ds = ColmapPairs(
        root / "colmap_ground_truth",
        root / "images",
        exclude=["DSC_0012.JPG"],
        resize=(64, 48),
        crop=True,
        max_points=64,
    )
    assert len(ds) == 55  # every pair of the 11 kept images shares >= 20 points
    item = ds[0]
    assert item["image_a"].shape == (3, 48, 64) and int(item["valid"].sum()) > 10
