"""Extended CMU Seasons reader on a tiny dataset written in the published layout."""

import math

import numpy as np
import pycolmap
import pytest
import torch

from s2dloc.datasets import cmu
from s2dloc.datasets.colmap_io import read_query_list, write_query_list
from s2dloc.geometry import Camera, Pose
from s2dloc.localization.benchmarks import cmu_map, cmu_queries
from s2dloc.localization.map import Map, RefImage

INTRINSICS = """# Camera list with one line of data per camera:
#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]
c0 OPENCV 1024 768 868.993378 866.063001 525.942323 420.042529 -0.399431 0.188924 0.000153 0.000571
c1 OPENCV 1024 768 873.382641 876.489513 529.324138 397.272397 -0.397066 0.181925 0.000176 -0.000579
"""
DB = ["img_00122_c0_1303398475046031us.jpg", "img_00123_c1_1303398475146031us.jpg"]
QUERIES = ["img_01000_c0_1283347879534213us.jpg", "img_01001_c1_1283347879634213us.jpg"]
# 90 degrees about z: R = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
Q90 = (math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4))


def _line(name, q, c):
    return " ".join([name, *(f"{v:.9f}" for v in (*q, *c))])


def write_cmu(root, slice_=2):
    """A one-slice dataset; returns ``{name: (q, centre)}`` of database and query images."""
    (root / "intrinsics.txt").write_text(INTRINSICS)
    s = root / f"slice{slice_}"
    for sub in ("database", "query", "camera-poses", "sparse"):
        (s / sub).mkdir(parents=True)
    for n in DB:
        (s / "database" / n).write_bytes(b"")
    for n in QUERIES:
        (s / "query" / n).write_bytes(b"")
    poses = {
        DB[0]: (Q90, (1.0, 2.0, 3.0)),
        DB[1]: ((1.0, 0, 0, 0), (-85.4, 55.2, -2.98)),
        QUERIES[0]: (Q90, (4.0, 5.0, 6.0)),
    }
    gt = s / f"ground-truth-database-images-slice{slice_}.txt"
    gt.write_text("".join(_line(n, *poses[n]) + "\n" for n in DB))
    (s / "camera-poses" / "query_0.txt").write_text(_line(QUERIES[0], *poses[QUERIES[0]]) + "\n")
    (s / f"test-images-slice{slice_}.txt").write_text("\n".join(QUERIES) + "\n")
    return poses


def test_centre_to_translation_by_hand():
    name, q, t = cmu.parse_centre_pose(_line("a.jpg", Q90, (1, 2, 3)))
    # t = -R c with R c = (-2, 1, 3)
    np.testing.assert_allclose(t, [2.0, -1.0, -3.0], atol=1e-8)
    T = Pose.from_quat_t(q, t)
    np.testing.assert_allclose(T.center().numpy(), [1, 2, 3], atol=1e-8)
    # the world point one metre in front of the camera maps to (0, 0, 1) in the camera frame
    R = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    X = np.array([1, 2, 3]) + R.T @ np.array([0, 0, 1.0])
    np.testing.assert_allclose(T.transform(torch.tensor(X)[None])[0].numpy(), [0, 0, 1], atol=1e-8)


def test_slice_round_trip(tmp_path):
    poses = write_cmu(tmp_path)
    sl = cmu.load_slice(tmp_path, 2)
    assert sl.scene == "urban" and sorted(sl.db_poses) == sorted(DB) and sl.queries == QUERIES
    assert list(sl.query_poses) == [QUERIES[0]]
    for name, (q, t) in {**sl.db_poses, **sl.query_poses}.items():
        np.testing.assert_allclose(
            Pose.from_quat_t(q, t).center().numpy(), poses[name][1], atol=1e-6
        )
    assert sl.camera(QUERIES[1]).params[0].item() == pytest.approx(873.382641)
    ql = write_query_list(tmp_path / "q.txt", sl.query_list())
    back = read_query_list(ql)
    assert back[QUERIES[0]][:3] == ("OPENCV", 1024, 768)
    qs = cmu_queries(sl)
    assert qs[1].path == tmp_path / "slice2" / "query" / QUERIES[1]


def test_sparse_model_through_pycolmap(tmp_path):
    poses = write_cmu(tmp_path)
    cams = cmu.read_intrinsics(tmp_path / "intrinsics.txt")
    images = []
    for n in DB:
        T = Pose.from_quat_t(*cmu.pose_from_centre(*poses[n]))
        images.append(
            RefImage(
                n,
                cams[cmu.camera_of(n)],
                T,
                np.array([1, 2]),
                np.array([[10.5, 20.5], [30.5, 40.5]]),
            )
        )
    rec = Map(images, [1, 2], [[0, 0, 5.0], [1, 1, 6.0]]).to_colmap()
    rec.write(str(tmp_path / "slice2" / "sparse"))
    m = cmu_map(cmu.load_slice(tmp_path, 2))
    assert sorted(m.names) == sorted(DB) and len(m.points3D) == 2
    np.testing.assert_allclose(m[DB[0]].cam_from_world.t.numpy(), [2, -1, -3], atol=1e-6)


@pytest.mark.parametrize("cam_id", ["c0", "c1"])
def test_intrinsics_match_pycolmap_projection(tmp_path, cam_id):
    (tmp_path / "intrinsics.txt").write_text(INTRINSICS)
    cam = cmu.read_intrinsics(tmp_path / "intrinsics.txt")[cam_id]
    line = next(ln for ln in INTRINSICS.splitlines() if ln.startswith(cam_id)).split()
    ref = pycolmap.Camera(
        model="OPENCV", width=1024, height=768, params=[float(x) for x in line[4:]]
    )
    g = torch.Generator().manual_seed(0)
    xy = (torch.rand(50, 2, generator=g, dtype=torch.float64) - 0.5) * torch.tensor([0.9, 0.6])
    depth = 1 + 9 * torch.rand(50, 1, generator=g, dtype=torch.float64)
    X = torch.cat([xy, torch.ones(50, 1, dtype=torch.float64)], 1) * depth
    p, valid = cam.project(X)
    assert valid.all()
    np.testing.assert_allclose(p.numpy(), ref.img_from_cam(X.numpy()), atol=1e-6)
    assert cmu.camera_of(f"img_00001_{cam_id}_123us.jpg") == cam_id


def test_slices_and_scenes():
    assert cmu.parse_slices("2-6") == [2, 3, 4, 5, 6]
    assert cmu.parse_slices("2,4,7-8") == [2, 4, 7, 8]
    assert cmu.parse_slices(13) == [13] and cmu.parse_slices([18, 2]) == [2, 18]
    assert cmu.parse_slices("park") == list(range(18, 26))
    assert cmu.parse_slices("all") == list(range(2, 26))
    assert [cmu.scene_of(s) for s in (2, 8, 9, 17, 18, 25)] == ["urban"] * 2 + ["suburban"] * 2 + [
        "park"
    ] * 2
    for bad in ("6-2", "1", "26", "2-", "x", ""):
        with pytest.raises(ValueError):
            cmu.parse_slices(bad)


def test_missing_folder(tmp_path):
    write_cmu(tmp_path)
    (tmp_path / "slice2" / "query" / QUERIES[0]).unlink()
    (tmp_path / "slice2" / "query" / QUERIES[1]).unlink()
    (tmp_path / "slice2" / "query").rmdir()
    with pytest.raises(FileNotFoundError, match=r"slice2/query: folder not found"):
        cmu.load_slice(tmp_path, 2)
    with pytest.raises(FileNotFoundError, match="slice3: folder not found"):
        cmu.load_slice(tmp_path, 3)


def test_truncated_line(tmp_path):
    write_cmu(tmp_path)
    gt = tmp_path / "slice2" / "ground-truth-database-images-slice2.txt"
    gt.write_text(gt.read_text().splitlines()[0] + "\n" + DB[1] + " 1 0 0 0 1.0\n")
    with pytest.raises(ValueError, match=rf"{gt}:2: expected 'name qw"):
        cmu.load_slice(tmp_path, 2)


def test_unknown_camera(tmp_path):
    write_cmu(tmp_path)
    lst = tmp_path / "slice2" / "test-images-slice2.txt"
    lst.write_text(f"{QUERIES[0]}\n\nimg_01002_c2_1283347879734213us.jpg\n")
    with pytest.raises(ValueError, match=rf"{lst}:3: unknown camera 'c2'"):
        cmu.load_slice(tmp_path, 2)


def test_listed_image_absent(tmp_path):
    write_cmu(tmp_path)
    (tmp_path / "slice2" / "database" / DB[1]).unlink()
    gt = tmp_path / "slice2" / "ground-truth-database-images-slice2.txt"
    with pytest.raises(FileNotFoundError, match=rf"{gt}:2: image '{DB[1]}' listed but absent"):
        cmu.load_slice(tmp_path, 2)
    assert DB[1] in cmu.load_slice(tmp_path, 2, check_images=False).db_poses


def test_bad_intrinsics(tmp_path):
    path = tmp_path / "intrinsics.txt"
    path.write_text("c0 OPENCV 1024 768 868.9 866.0 525.9 420.0 -0.39 0.18 0.0001\n")
    with pytest.raises(ValueError, match=rf"{path}:1: model OPENCV takes 8 params, got 7"):
        cmu.read_intrinsics(path)
    with pytest.raises(FileNotFoundError, match="missing.txt: file not found"):
        cmu.read_intrinsics(tmp_path / "missing.txt")


def test_camera_is_opencv():
    name, cam = cmu.parse_intrinsics_line(INTRINSICS.splitlines()[2])
    assert name == "c0" and isinstance(cam, Camera) and cam.model == "OPENCV"
    assert cam.size.tolist() == [1024, 768]
