"""RobotCar Seasons reader on a tiny dataset written in the published layout."""

import math
import re

import numpy as np
import pycolmap
import pytest
import torch

from s2dloc.datasets import robotcar as rc
from s2dloc.geometry import Pose
from s2dloc.localization.benchmarks import robotcar_queries

INTRINSICS = {
    "left": (400.0, 400.0, 500.107605, 511.461426),
    "rear": (400.0, 400.0, 508.222931, 498.187378),
    "right": (400.0, 400.0, 502.503754, 490.259033),
}
Q90 = (math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4))  # R = [[0,-1,0],[1,0,0],[0,0,1]]
REF = [
    "overcast-reference/rear/1417176458999821.jpg",
    "overcast-reference/left/1417176458999822.jpg",
]
QUERIES = ["night/rear/1418721355742500.jpg", "dawn/right/1418235223450115.jpg"]


# (name, f, q, centre, r) and (point, [(image index, feature index)]): a consistent model.
CAMS = [
    (REF[0], 400.0, Q90, (1.0, 2.0, 3.0), 0.0),
    (REF[1], 400.5, (1.0, 0.0, 0.0, 0.0), (-4.5, 0.25, -7.0), 0.001),
]
POINTS = [((0.0, 0.0, 5.0), [(0, 0), (1, 4)]), ((1.0, 1.0, 6.0), [(1, 0)])]


def centred_measurement(X, q, c, f, r):
    """The NVM measurement (relative to the image centre) of world point X: the solution m of
    ``f * x / z = m * (1 + r |m / f|^2)``."""
    R = Pose.from_quat_t(torch.tensor(q, dtype=torch.float64), torch.zeros(3)).R.numpy()
    x = R @ (np.asarray(X) - np.asarray(c))
    p = f * x[:2] / x[2]
    m = p.copy()
    for _ in range(50):
        m = p / (1 + r * np.sum((m / f) ** 2))
    return m


def nvm_text(cams, points, offset=(0.0, 0.0), colors="255 128 0"):
    """An NVM_V3 file; measurements are centre-relative plus ``offset`` (w/2, h/2: absolute)."""
    lines = [
        f"./{n[:-4]}.png {f} {' '.join(map(str, q))} {' '.join(map(str, c))} {r} 0"
        for n, f, q, c, r in cams
    ]
    pts = []
    for X, obs in points:
        fields = [*X, *colors.split(), len(obs)]
        for img, feat in obs:
            _, f, q, c, r = cams[img]
            m = centred_measurement(X, q, c, f, r) + np.asarray(offset)
            fields += [img, feat, repr(float(m[0])), repr(float(m[1]))]
        pts.append(" ".join(map(str, fields)))
    return "NVM_V3\n\n" + "\n".join([str(len(lines)), *lines, "", str(len(pts)), *pts]) + "\n\n0\n"


def write_robotcar(root, offset=(0.0, 0.0)):
    (root / "intrinsics").mkdir(parents=True)
    for cam, (fx, fy, cx, cy) in INTRINSICS.items():
        text = f"fx: {fx:.6f}\nfy: {fy:.6f}\ncx: {cx:.6f}\ncy: {cy:.6f}\n"
        (root / "intrinsics" / f"{cam}_intrinsics.txt").write_text(text)
    for cond in ("overcast-reference", "night", "dawn"):
        for cam in rc.CAMERAS:
            (root / "images" / cond / cam).mkdir(parents=True)
    for n in REF + QUERIES:
        (root / "images" / n).write_bytes(b"")
    nvm = root / "3D-models" / "all-merged" / "all.nvm"
    nvm.parent.mkdir(parents=True)
    nvm.write_text(nvm_text(CAMS, POINTS, offset))
    (root / "queries.txt").write_text("\n".join(QUERIES) + "\n")
    return nvm


def test_round_trip(tmp_path):
    write_robotcar(tmp_path)
    ds = rc.load_robotcar(tmp_path)
    rear = ds.cameras["rear"]
    assert rear.model == "PINHOLE" and rear.size.tolist() == [1024, 1024]
    # The dataset README puts (0, 0) at the top-left corner (COLMAP's convention): no shift.
    np.testing.assert_allclose(rear.params.numpy(), [400, 400, 508.222931, 498.187378])
    assert ds.images("night") == [QUERIES[0]] and ds.images("dawn") == [QUERIES[1]]
    assert ds.images("overcast-reference") == sorted(
        REF, key=lambda n: rc.CAMERAS.index(n.split("/")[1])
    )
    assert ds.read_query_list(tmp_path / "queries.txt") == QUERIES
    assert ds.camera(QUERIES[1]) is ds.cameras["right"]
    ql = ds.query_list(QUERIES)
    assert ql[QUERIES[0]][:3] == ("PINHOLE", 1024, 1024)
    assert robotcar_queries(ds, QUERIES)[0].path == tmp_path / "images" / QUERIES[0]


@pytest.mark.parametrize("convention", ["centred", "absolute"])
def test_nvm_centres_converted(tmp_path, convention):
    offset = (0.0, 0.0) if convention == "centred" else (512.0, 512.0)
    write_robotcar(tmp_path, offset)
    m = rc.load_robotcar(tmp_path).reference_model()
    assert m.convention == convention and m.reprojection_error < 1e-6
    assert m.names == REF  # './' stripped, .png -> .jpg
    q, t = m.poses[REF[0]]
    np.testing.assert_allclose(t, [2.0, -1.0, -3.0], atol=1e-9)  # -R c with R c = (-2, 1, 3)
    np.testing.assert_allclose(
        Pose.from_quat_t(*m.poses[REF[1]]).center().numpy(), [-4.5, 0.25, -7]
    )
    assert m.focal[REF[1]] == 400.5 and m.radial[REF[1]] == 0.001
    np.testing.assert_array_equal(m.points3D, [[0, 0, 5], [1, 1, 6]])
    np.testing.assert_array_equal(m.colors[0], [255, 128, 0])
    # Point (0, 0, 5) in camera 0: X_cam = (2, -1, 2), f = 400 -> (400, -200) from the centre,
    # whichever convention the file used.
    np.testing.assert_allclose(m.observations[0][0], [0, 0, 400, -200], atol=1e-9)
    np.testing.assert_array_equal(m.observations[0][:, :2], [[0, 0], [1, 4]])
    np.testing.assert_allclose(m.pixels(m.observations[0][:1, 2:]), [[912, 312]], atol=1e-9)
    assert rc.read_nvm(
        tmp_path / "3D-models/all-merged/all.nvm", read_points=False
    ).points3D.shape == (0, 3)


def test_intrinsics_match_pycolmap(tmp_path):
    write_robotcar(tmp_path)
    cam = rc.load_robotcar(tmp_path).cameras["left"]
    ref = pycolmap.Camera(model="PINHOLE", width=1024, height=1024, params=cam.params.numpy())
    X = torch.tensor([[0.1, -0.2, 1.0], [-1.0, 0.5, 3.0], [0.0, 0.0, 2.0]], dtype=torch.float64)
    np.testing.assert_allclose(cam.project(X)[0].numpy(), ref.img_from_cam(X.numpy()), atol=1e-9)


def test_names_and_conditions():
    assert rc.parse_image_name("night-rain/left/123.jpg") == ("night-rain", "left", 123)
    assert len(rc.CONDITIONS) == 10 and "overcast-reference" in rc.CONDITIONS
    for bad in ("night/front/1.jpg", "fog/rear/1.jpg", "night/rear/x.jpg", "rear/1.jpg"):
        with pytest.raises(ValueError):
            rc.parse_image_name(bad)


def test_missing_folder(tmp_path):
    write_robotcar(tmp_path)
    with pytest.raises(FileNotFoundError, match="images/sun/left: folder not found"):
        rc.load_robotcar(tmp_path).images("sun")
    with pytest.raises(FileNotFoundError, match="elsewhere/images: folder not found"):
        rc.load_robotcar(tmp_path / "elsewhere")


def test_truncated_intrinsics(tmp_path):
    write_robotcar(tmp_path)
    path = tmp_path / "intrinsics" / "rear_intrinsics.txt"
    path.write_text("fx: 400.0\nfy: 400.0\ncx:\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:3: expected 'fx|fy|cx|cy: value'")):
        rc.load_robotcar(tmp_path)
    path.write_text("fx: 400.0\nfy: 400.0\ncx: 508.2\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: missing ['cy']")):
        rc.load_robotcar(tmp_path)


def test_truncated_nvm_line(tmp_path):
    nvm = write_robotcar(tmp_path)
    lines = nvm.read_text().splitlines()
    lines[3] = " ".join(lines[3].split()[:7])
    nvm.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=re.escape(f"{nvm}:4: expected '<path> f qw")):
        rc.read_nvm(nvm)


def test_unknown_camera_and_absent_image(tmp_path):
    write_robotcar(tmp_path)
    lst = tmp_path / "queries.txt"
    lst.write_text(f"{QUERIES[0]}\nnight/front/1418721355742501.jpg\n")
    ds = rc.load_robotcar(tmp_path)
    with pytest.raises(ValueError, match=re.escape(f"{lst}:2: unknown camera 'front'")):
        ds.read_query_list(lst)
    lst.write_text(f"{QUERIES[0]}\n\nnight/rear/1418721355742599.jpg\n")
    with pytest.raises(
        FileNotFoundError,
        match=re.escape(f"{lst}:3: image 'night/rear/1418721355742599.jpg' listed but absent"),
    ):
        ds.read_query_list(lst)
