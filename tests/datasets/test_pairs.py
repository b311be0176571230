"""Training pairs from CSCD files, the synthetic world, RGB-D frames and COLMAP models."""

import dataclasses
from types import SimpleNamespace

import cv2
import numpy as np
import pycolmap
import pytest
import torch
from torch.utils.data import DataLoader

from s2dloc.datasets.colmap_pairs import ColmapPairs
from s2dloc.datasets.correspondences import CorrespondencePair, write_correspondences
from s2dloc.datasets.cscd_pairs import CSCDPairs, resolve_image
from s2dloc.datasets.pairs import resize_image
from s2dloc.datasets.rgbd_pairs import RGBDPairs, rgbd_correspondences
from s2dloc.datasets.synthetic import look_at, render, toy_scene
from s2dloc.datasets.synthetic.render import backproject, project
from s2dloc.datasets.synthetic.world import PRESETS, generate_world
from s2dloc.datasets.synthetic.write import write_world
from s2dloc.datasets.synthetic_pairs import SyntheticPairs
from s2dloc.geometry import Camera, Pose

TINY = dataclasses.replace(PRESETS["tiny"], num_db=8, num_query=3, width=96, height=72)
KEYS = {"image_a", "image_b", "points_a", "points_b", "valid", "name_a", "name_b", "condition_b"}


def _write_png(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), (np.clip(rgb, 0, 1) * 255).astype(np.uint8)[..., ::-1])


def _check_lift_project(frame_a, frame_b, pts_a, pts_b, tol=0.05):
    """points_a lifted with frame a's depth (pixel centres) and projected into b give points_b;
    the depth of b at the pixel they fall in agrees (not occluded)."""
    pix = np.floor(pts_a).astype(int)
    np.testing.assert_allclose(pts_a, pix + 0.5, atol=1e-4)  # samples are pixel centres
    X = backproject(frame_a.depth, frame_a.camera, frame_a.cam_from_world)[pix[:, 1], pix[:, 0]]
    p, z, inside = project(frame_b.camera, frame_b.cam_from_world, X)
    assert inside.all()
    assert np.abs(p - pts_b).max() < tol
    q = np.floor(pts_b).astype(int)
    assert (np.abs(frame_b.depth[q[:, 1], q[:, 0]] - z) < 0.03 * z).all()


@pytest.fixture(scope="module")
def frames():
    """3 RGB-D frames of the toy scene (boxes in front of a wall: occlusions), the last one
    with radial distortion, plus the primitive ids for ground truth."""
    scene = toy_scene(0)
    out = []
    for k, x in enumerate((-0.6, 0.2, 0.9)):
        if k < 2:
            cam = Camera.from_colmap("PINHOLE", 96, 72, [70.0, 70, 48, 36])
        else:
            cam = Camera.from_colmap("SIMPLE_RADIAL", 96, 72, [68.0, 47, 37, -0.05])
        pose = Pose.from_Rt(*look_at([x, -1.0, 1.5], [0.0, 6.0, 1.2]))
        res = render(scene, cam, pose)
        image = (res.rgb * 255).round().astype(np.uint8)
        out.append(
            SimpleNamespace(
                name=f"f{k}",
                image=image,
                depth=res.depth,
                camera=cam,
                cam_from_world=pose,
                primitive=res.primitive,
            )
        )
    return out


def test_rgbd_correspondences_exact_and_occlusion_checked(frames):
    a, b = frames[0], frames[2]
    v, u = np.nonzero(a.depth > 0)
    pts_a, pts_b = rgbd_correspondences(a, b, np.stack([u, v], 1))
    assert len(pts_a) > 1000
    _check_lift_project(a, b, pts_a, pts_b)
    # independent ground truth: points of a that project into b onto another, nearer surface
    X = backproject(a.depth, a.camera, a.cam_from_world)[v, u]
    p, z, inside = project(b.camera, b.cam_from_world, X)
    q = np.floor(np.nan_to_num(p[inside])).astype(int)
    occluded = b.depth[q[:, 1], q[:, 0]] < 0.9 * z[inside]
    occluded &= b.primitive[q[:, 1], q[:, 0]] != a.primitive[v[inside], u[inside]]
    assert occluded.sum() > 50  # the fixture really has occlusions
    kept = {(int(x), int(y)) for x, y in np.floor(pts_a)}
    hidden = zip(u[inside][occluded], v[inside][occluded], strict=True)
    assert not any((int(x), int(y)) in kept for x, y in hidden)
    # nearly all visible points are kept and they land on the same surface in b
    q = np.floor(pts_b).astype(int)
    ia = np.floor(pts_a).astype(int)
    same = b.primitive[q[:, 1], q[:, 0]] == a.primitive[ia[:, 1], ia[:, 0]]
    assert same.mean() > 0.95  # mismatches: box edges, grass lying 1 cm above gravel
    assert len(pts_a) > 0.9 * (inside.sum() - occluded.sum())


def test_rgbd_pairs_padding_collation_and_determinism(frames):
    ds = RGBDPairs(frames, max_gap=2, max_points=256, seed=3)
    assert ds.pairs == [(0, 1), (0, 2), (1, 2)]
    item = ds[1]
    assert set(item) == KEYS
    assert item["image_a"].shape == (3, 72, 96) and item["image_a"].dtype == torch.float32
    assert 0 <= item["image_b"].min() and item["image_b"].max() <= 1
    assert item["points_a"].shape == (256, 2) and item["valid"].shape == (256,)
    assert item["valid"].all() and (item["name_a"], item["name_b"]) == ("f0", "f2")
    _check_lift_project(
        frames[0],
        frames[2],
        item["points_a"].numpy().astype(np.float64),
        item["points_b"].numpy().astype(np.float64),
    )
    again = ds[1]
    assert all(torch.equal(item[k], again[k]) for k in ("points_a", "points_b", "image_b"))
    other = RGBDPairs(frames, max_gap=2, max_points=256, seed=4)[1]
    assert not torch.equal(item["points_a"], other["points_a"])
    ds.set_epoch(1)
    assert not torch.equal(item["points_a"], ds[1]["points_a"])
    # fewer correspondences than K: zero padding, invalid
    few = RGBDPairs(frames, max_points=64, num_samples=40)[0]
    n = int(few["valid"].sum())
    assert 0 < n < 40 and few["valid"][:n].all() and not few["valid"][n:].any()
    assert (few["points_a"][n:] == 0).all() and (few["points_b"][n:] == 0).all()
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["image_a"].shape == (3, 3, 72, 96) and batch["points_b"].shape == (3, 256, 2)
    assert batch["name_b"] == ["f1", "f2", "f2"]
    with pytest.raises(ValueError, match="out of range"):
        RGBDPairs(frames, pairs=[(0, 3)])


def test_resize_scales_points_exactly(frames):
    full = RGBDPairs(frames, max_points=128, seed=1)[0]
    half = RGBDPairs(frames, max_points=128, seed=1, resize=48)[0]
    aniso = RGBDPairs(frames, max_points=128, seed=1, resize=(48, 72))[0]
    assert half["image_a"].shape == (3, 36, 48) and aniso["image_b"].shape == (3, 72, 48)
    for k in ("points_a", "points_b"):
        torch.testing.assert_close(half[k], full[k] * 0.5)
        torch.testing.assert_close(aniso[k], full[k] * torch.tensor([0.5, 1.0]))
    # known answer: a bright pixel at index (2, 1) has its centre at (2.5, 1.5); x2 -> (5, 3)
    img = np.zeros((4, 6, 3), np.float32)
    img[1, 2] = 1
    big, s = resize_image(img, (12, 8))
    np.testing.assert_array_equal(s, [2, 2])
    w = big[..., 0]
    yy, xx = np.mgrid[0:8, 0:12] + 0.5
    np.testing.assert_allclose([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()], [5, 3])


@pytest.fixture(scope="module")
def world():
    return generate_world(TINY, progress=False)


def test_synthetic_pairs_from_world(world):
    ds = SyntheticPairs(world, num_ref=2, max_points=200, stride=4, seed=0)
    assert len(ds) == 2 * len(world.queries)
    for i in (0, 4):
        item = ds[i]
        ref, q = ds.pairs[i]
        assert item["name_a"] == ref.name and item["condition_b"] == q.condition != "reference"
        valid = item["valid"].numpy()
        assert valid.sum() > 50
        pts = [item[k].numpy()[valid].astype(np.float64) for k in ("points_a", "points_b")]
        _check_lift_project(ref, q, *pts)
        np.testing.assert_allclose(item["image_b"].permute(1, 2, 0).numpy(), q.rgb)


def test_synthetic_pairs_from_written_folder(world, tmp_path):
    write_world(world, tmp_path, progress=False)
    ds = SyntheticPairs(tmp_path, max_points=300, resize=(48, 36))
    assert len(ds) == len(world.queries)
    views = {v.name: v for v in world.views}
    for item in ds:
        ref, q = views[item["name_a"]], views[item["name_b"]]
        assert item["condition_b"] == q.condition and item["image_a"].shape == (3, 36, 48)
        valid = item["valid"].numpy()
        pts = [item[k].numpy()[valid].astype(np.float64) * 2 for k in ("points_a", "points_b")]
        _check_lift_project(ref, q, *pts, tol=1e-3)
    with pytest.raises(FileNotFoundError, match="world.json"):
        SyntheticPairs(tmp_path / "images")


@pytest.fixture
def cscd(tmp_path):
    """Two CSCD files, CMU naming (one absolute path from another machine) and RobotCar."""
    rng = np.random.default_rng(0)
    imgs = tmp_path / "images"
    cmu_a, cmu_b = "img_00100_c0_1303398474779487us.jpg", "img_00200_c1_1303398474779999us.jpg"
    _write_png(imgs / "slice2" / "database" / cmu_a, rng.uniform(size=(24, 32, 3)))
    _write_png(imgs / cmu_b, rng.uniform(size=(24, 32, 3)))
    _write_png(imgs / "rear" / "1417176458999821.jpg", rng.uniform(size=(32, 32, 3)))
    _write_png(imgs / "rear" / "1418235223450115.jpg", rng.uniform(size=(32, 32, 3)))
    pts = rng.uniform(0, 24, (2, 10, 2))
    mats = tmp_path / "mats"
    foreign = f"/home/someone/data/slice2/database/{cmu_a}"  # absolute, from another machine
    pair = CorrespondencePair(foreign, cmu_b, pts[0], pts[1], np.zeros(10))
    write_correspondences(mats / "cmu" / "0.mat", pair)
    car_a, car_b = "rear/1417176458999821.jpg", "rear\\1418235223450115.jpg"  # Windows separator
    pair = CorrespondencePair(car_a, car_b, pts[1], pts[0], np.ones(10))
    write_correspondences(mats / "robotcar" / "0.mat", pair)
    return mats, imgs, pts


def test_cscd_pairs_paths_points_and_resize(cscd):
    mats, imgs, pts = cscd
    ds = CSCDPairs(mats, image_root=imgs, max_points=16, condition="winter")
    assert [f.parent.name for f in ds.files] == ["cmu", "robotcar"]
    cmu, car = ds[0], ds[1]
    assert cmu["image_a"].shape == (3, 24, 32) and car["image_a"].shape == (3, 32, 32)
    assert cmu["name_b"].startswith("img_00200") and car["condition_b"] == "winter"
    assert int(cmu["valid"].sum()) == 10
    torch.testing.assert_close(cmu["points_a"][:10], torch.tensor(pts[0], dtype=torch.float32))
    torch.testing.assert_close(car["points_b"][:10], torch.tensor(pts[0], dtype=torch.float32))
    small = CSCDPairs(mats, ["robotcar/0.mat", "cmu/0.mat"], imgs, max_points=16, resize=(16, 16))
    batch = next(iter(DataLoader(small, batch_size=2)))
    assert batch["image_b"].shape == (2, 3, 16, 16)
    scale = torch.tensor([[0.5, 0.5], [0.5, 16 / 24]], dtype=torch.float32)
    torch.testing.assert_close(
        batch["points_a"][:, :10], torch.tensor(pts[[1, 0]]).float() * scale[:, None]
    )


def test_cscd_errors_name_the_file_and_image(cscd, tmp_path):
    mats, imgs, pts = cscd
    pair = CorrespondencePair(
        "rear/1417176458999821.jpg", "rear/missing.jpg", pts[0], pts[1], [0] * 10
    )
    write_correspondences(mats / "bad.mat", pair)
    ds = CSCDPairs(mats, ["bad.mat"], imgs)
    with pytest.raises(FileNotFoundError, match=r"bad\.mat.*rear/missing\.jpg"):
        ds[0]
    with pytest.raises(FileNotFoundError, match="no correspondence files"):
        CSCDPairs(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):
        resolve_image(imgs, "a/b/c.jpg")


@pytest.fixture
def colmap_scene(tmp_path):
    """3 images of 40 points: images 1 and 2 share 30 points, image 3 shares 5 with each."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.uniform(-1, 1, (40, 2)), rng.uniform(4, 6, (40, 1))], 1)
    cam = pycolmap.Camera(model="PINHOLE", width=40, height=30, params=[30.0, 30, 20, 15])
    cam.camera_id = 1
    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(cam)
    seen = {1: np.arange(0, 30), 2: np.arange(0, 30), 3: np.r_[0:5, 30:40]}
    xy = {}
    for image_id, ids in seen.items():
        t = np.array([0.1 * image_id, 0, 0])
        xy[image_id] = np.asarray((X[ids] + t)[:, :2] / X[ids, 2:] * 30 + [20, 15])
        image = pycolmap.Image(
            name=f"im{image_id}.png", keypoints=xy[image_id], camera_id=1, image_id=image_id
        )
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(np.c_[np.eye(3), t]))
        _write_png(tmp_path / "images" / f"im{image_id}.png", rng.uniform(size=(30, 40, 3)))
    for n in range(40):
        track = pycolmap.Track()
        for image_id, ids in seen.items():
            if n in ids:
                track.add_element(image_id, int(np.flatnonzero(ids == n)[0]))
        rec.add_point3D(X[n], track, np.zeros(3, np.uint8))
    (tmp_path / "sfm").mkdir()
    rec.write_binary(str(tmp_path / "sfm"))
    return rec, tmp_path, xy


def test_colmap_pairs_shared_observations(colmap_scene):
    rec, root, xy = colmap_scene
    ds = ColmapPairs(root / "sfm", root / "images", min_shared=10, max_points=32)
    assert len(ds) == 1 and ds.pairs == [(1, 2)]
    item = ds[0]
    assert (item["name_a"], item["name_b"]) == ("im1.png", "im2.png")
    assert int(item["valid"].sum()) == 30
    torch.testing.assert_close(item["points_a"][:30], torch.tensor(xy[1]).float())
    torch.testing.assert_close(item["points_b"][:30], torch.tensor(xy[2]).float())
    assert len(ColmapPairs(rec, root / "images", min_shared=5)) == 3
    with pytest.raises(FileNotFoundError, match="im1.png"):
        ColmapPairs(rec, root / "nowhere", min_shared=10)[0]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ColmapPairs(root / "missing", root)


def test_colmap_exclusion_and_crop(colmap_scene):
    rec, root, xy = colmap_scene
    ds = ColmapPairs(rec, root / "images", min_shared=5, exclude=["im2.png"])
    assert ds.pairs == [(1, 3)]
    assert all("im2" not in ds[i][k] for i in range(len(ds)) for k in ("name_a", "name_b"))
    crop = ColmapPairs(rec, root / "images", min_shared=10, resize=(16, 24), crop=True)
    item = crop[0]
    assert item["image_a"].shape == (3, 24, 16)  # half the width of the 32x24 resize
    n = int(item["valid"].sum())
    assert 0 < n < 30
