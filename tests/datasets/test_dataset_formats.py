"""Readers/writers of the hloc text formats and Cross-Season correspondence files."""

import h5py
import numpy as np
import pytest
import torch

from s2dloc.datasets.colmap_io import (
    read_pairs,
    read_poses,
    read_query_list,
    write_pairs,
    write_poses,
    write_query_list,
)
from s2dloc.datasets.correspondences import (
    CorrespondencePair,
    read_correspondences,
    write_correspondences,
)
from s2dloc.geometry import Pose


def test_query_list_round_trip(tmp_path):
    cams = {
        "query/night/0001.png": ("OPENCV", 640, 480, [500.5, 501, 320, 240, -0.1, 0.01, 1e-3, 0]),
        "q2.jpg": ("SIMPLE_RADIAL", 320, 240, np.array([250.0, 160, 120, 0.02])),
    }
    path = write_query_list(tmp_path / "q.txt", cams)
    assert path.read_text().splitlines()[1] == "q2.jpg SIMPLE_RADIAL 320 240 250.0 160.0 120.0 0.02"
    back = read_query_list(path)
    assert list(back) == list(cams)
    for name, (model, w, h, params) in cams.items():
        assert back[name][:3] == (model, w, h)
        np.testing.assert_array_equal(back[name][3], np.asarray(params, float))


def test_poses_round_trip_with_pose_objects(tmp_path):
    g = torch.Generator().manual_seed(0)
    pose = Pose.exp(torch.randn(6, generator=g, dtype=torch.float64))
    path = write_poses(tmp_path / "p.txt", {"a.png": pose, "b.png": ([1.0, 0, 0, 0], [1, 2, 3])})
    back = read_poses(path)
    q, t = back["a.png"]
    np.testing.assert_allclose(q, pose.quat().numpy(), atol=1e-15)
    np.testing.assert_allclose(t, pose.t.numpy(), atol=1e-15)
    np.testing.assert_array_equal(back["b.png"][1], [1, 2, 3])
    line = path.read_text().splitlines()[1]
    assert line == "b.png 1.0 0.0 0.0 0.0 1.0 2.0 3.0"


def test_no_poses_write_an_empty_file(tmp_path):
    path = write_poses(tmp_path / "p.txt", {})
    assert path.read_text() == "" and read_poses(path) == {}


def test_pairs_round_trip(tmp_path):
    pairs = [("q/1.png", "db/2.png"), ("q/1.png", "db/3.png")]
    assert read_pairs(write_pairs(tmp_path / "pairs.txt", pairs)) == pairs


@pytest.mark.parametrize(
    "reader, text, match",
    [
        (read_poses, "a.png 1 0 0 0 1 2\n", r"p\.txt:1: expected 'name qw"),
        (read_poses, "# c\n\na.png 1 0 0 0 1 2 x\n", r"p\.txt:3: pose values must be numbers"),
        (read_poses, "a.png 2 0 0 0 1 2 3\n", r"p\.txt:1: quaternion norm 2"),
        (read_poses, "a 1 0 0 0 0 0 0\na 1 0 0 0 0 0 0\n", r"p\.txt:2: duplicate image name"),
        (read_poses, "a 1 0 0 0 nan 0 0\n", r"p\.txt:1: pose values must be finite"),
        (read_query_list, "q.png PINHOLE 640 480 1 2 3\n", r"p\.txt:1: model PINHOLE takes 4"),
        (read_query_list, "q.png FISH 640 480 1\n", r"p\.txt:1: unknown camera model 'FISH'"),
        (read_query_list, "q.png PINHOLE 640 -4 1 1 1 1\n", r"p\.txt:1: width/height must be"),
        (read_query_list, "q.png PINHOLE 64\n", r"p\.txt:1: expected 'name MODEL W H"),
        (read_pairs, "a b c\n", r"p\.txt:1: expected 'name0 name1'"),
    ],
)
def test_text_readers_reject_bad_lines(tmp_path, reader, text, match):
    path = tmp_path / "p.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        reader(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_poses(tmp_path / "nope.txt")


def _pair(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return CorrespondencePair(
        "db/0001.png",
        "query/snow/0004.png",
        rng.random((n, 2)) * 100,
        rng.random((n, 2)) * 90,
        rng.random(n),
    )


def test_correspondences_round_trip_matlab_layout(tmp_path):
    pair = _pair()
    path = write_correspondences(tmp_path / "c.mat", pair)
    raw = path.read_bytes()
    assert raw.startswith(b"MATLAB 7.3 MAT-file") and raw[126:128] == b"IM"
    assert raw[512:520] == b"\x89HDF\r\n\x1a\n"  # HDF5 superblock after the 512-byte userblock
    with h5py.File(path, "r") as f:
        assert f["pt_i"].shape == (7, 2) and f["dist_from_center"].shape == (1, 7)
        assert f["im_i_path"].dtype == np.uint16 and f["im_i_path"].shape == (11, 1)
        assert f["im_i_path"].attrs["MATLAB_class"] == b"char"
        assert f["pt_j"].attrs["MATLAB_class"] == b"double"
        # the file stores the dataset's convention: pixel centres at integers
        np.testing.assert_allclose(f["pt_i"][()], pair.pt_i - 0.5)
    back = read_correspondences(path)
    assert (back.im_i_path, back.im_j_path) == (pair.im_i_path, pair.im_j_path)
    np.testing.assert_allclose(back.pt_i, pair.pt_i, atol=1e-12)
    np.testing.assert_allclose(back.pt_j, pair.pt_j, atol=1e-12)
    np.testing.assert_allclose(back.dist_from_center, pair.dist_from_center)
    assert write_correspondences(tmp_path / "d.mat", pair).read_bytes() == raw


def test_correspondences_as_the_dataset_loader_reads_them(tmp_path):
    """The dataset's loader swaps the axes of pt_i, pt_j and dist_from_center read by h5py,
    then selects points with one boolean mask along pt's second and the weights' first axis."""
    pair = _pair()
    path = write_correspondences(tmp_path / "c.mat", pair)
    with h5py.File(path, "r") as f:
        pts1 = np.swapaxes(np.array(f["pt_i"]), 0, 1)
        weights = np.exp(-np.swapaxes(np.array(f["dist_from_center"]), 0, 1))
    assert pts1.shape == (2, 7) and weights.shape == (7, 1)
    keep = pts1[0] + 0.5 > 50  # as the loader's random crop does
    np.testing.assert_allclose(weights[keep, :][:, 0], np.exp(-pair.dist_from_center[keep]))
    np.testing.assert_allclose(pts1[:, keep].T + 0.5, pair.pt_i[keep])


def test_reads_dist_from_center_in_either_orientation(tmp_path):
    pair = _pair()
    path = write_correspondences(tmp_path / "c.mat", pair)
    with h5py.File(path, "r+") as f:  # the transposed layout, (N, 1) in HDF5
        data = f["dist_from_center"][()]
        del f["dist_from_center"]
        f["dist_from_center"] = data.T
        assert f["dist_from_center"].shape == (7, 1)
    np.testing.assert_allclose(read_correspondences(path).dist_from_center, pair.dist_from_center)


def test_reads_matlab_style_files(tmp_path):
    """Files as MATLAB writes them: extra #refs# group, empty arrays flagged MATLAB_empty."""
    path = tmp_path / "m.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_group("#refs#")
        f["im_i_path"] = np.array([[ord(c)] for c in "a.jpg"], np.uint16)
        f["im_j_path"] = np.array([[ord(c)] for c in "b.jpg"], np.uint16)
        for key in ("pt_i", "pt_j", "dist_from_center"):
            f[key] = np.array([0, 0], np.uint64)  # MATLAB's encoding of an empty array
            f[key].attrs["MATLAB_empty"] = np.uint8(1)
    pair = read_correspondences(path)
    assert pair.im_i_path == "a.jpg" and pair.pt_i.shape == (0, 2) and pair.pt_j.shape == (0, 2)
    with h5py.File(path, "r+") as f:  # 3 points stored row-major by a non-MATLAB tool
        for key, arr in (("pt_i", np.zeros((2, 3))), ("pt_j", np.ones((2, 3)))):
            del f[key]
            f[key] = arr
        del f["dist_from_center"]
        f["dist_from_center"] = np.zeros((1, 3))
    pair = read_correspondences(path)
    np.testing.assert_allclose(pair.pt_j, np.full((3, 2), 1.5))


def test_bad_correspondence_files(tmp_path):
    bad = tmp_path / "bad.mat"
    bad.write_text("not hdf5")
    with pytest.raises(ValueError, match=r"bad\.mat: not a MATLAB v7\.3"):
        read_correspondences(bad)
    path = tmp_path / "short.mat"
    write_correspondences(path, _pair())
    with h5py.File(path, "r+") as f:
        del f["pt_j"]
        f["pt_j"] = np.zeros((5, 2))
    with pytest.raises(ValueError, match=r"short\.mat: field lengths differ: pt_i 7, pt_j 5"):
        read_correspondences(path)
    with h5py.File(path, "r+") as f:
        del f["pt_j"]
    with pytest.raises(ValueError, match=r"short\.mat: missing field 'pt_j'"):
        read_correspondences(path)
    with pytest.raises(ValueError, match="lengths differ"):
        CorrespondencePair("a", "b", np.zeros((3, 2)), np.zeros((2, 2)), np.zeros(3))
