"""hloc feature / match HDF5 files: layout, pixel convention and round trips."""

import h5py
import numpy as np
import pytest

from s2dloc.datasets import hloc_io as H


def _feats(rng, n=7, d=16, w=640, h=480):
    kp = rng.uniform([0, 0], [w, h], (n, 2))
    return H.LocalFeatures(
        kp,
        rng.standard_normal((n, d)).astype(np.float32),
        rng.uniform(0, 1, n).astype(np.float32),
        np.array([w, h]),
        1.5,
    )


def test_features_round_trip_and_layout(tmp_path):
    rng = np.random.default_rng(0)
    feats = {"db/img_0.jpg": _feats(rng), "query/night/q.jpg": _feats(rng, n=3)}
    path = H.write_features(tmp_path / "feats.h5", feats)
    assert H.list_names(path) == sorted(feats)
    with h5py.File(path, "r") as f:  # hloc's layout: nested groups, (D, N) descriptors, kp - 0.5
        g = f["query/night/q.jpg"]
        assert g["descriptors"].shape == (16, 3) and g["image_size"][()].tolist() == [640, 480]
        np.testing.assert_allclose(
            g["keypoints"][()], feats["query/night/q.jpg"].keypoints - 0.5, atol=1e-4
        )
        assert g["keypoints"].attrs["uncertainty"] == 1.5
    for name, ref in feats.items():
        back = H.read_features(path, name)
        np.testing.assert_allclose(back.keypoints, ref.keypoints, atol=1e-4)
        np.testing.assert_array_equal(back.descriptors, ref.descriptors)
        np.testing.assert_array_equal(back.scores, ref.scores)
        assert back.image_size.tolist() == [640, 480] and back.uncertainty == 1.5


def test_reads_hloc_written_file(tmp_path):
    """A file as hloc writes it (as_half): keypoint (0, 0) is the top-left pixel centre."""
    path = tmp_path / "hloc.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("a/b.png")
        g.create_dataset("keypoints", data=np.array([[0, 0], [9, 4]], np.float16))
        g.create_dataset("descriptors", data=np.ones((4, 2), np.float16))
        g.create_dataset("image_size", data=np.array([10, 5]))
    back = H.read_features(path, "a/b.png")
    np.testing.assert_array_equal(back.keypoints, [[0.5, 0.5], [9.5, 4.5]])
    assert back.descriptors.shape == (2, 4) and back.descriptors.dtype == np.float32
    assert back.scores is None and back.uncertainty is None


def test_resume_and_overwrite(tmp_path):
    rng = np.random.default_rng(1)
    a, b = _feats(rng), _feats(rng)
    path = H.write_features(tmp_path / "f.h5", {"x.jpg": a}, as_half=True)
    assert H.read_features(path, "x.jpg").descriptors.dtype == np.float32
    H.write_features(path, {"x.jpg": b, "y.jpg": b})  # x kept, y added
    np.testing.assert_allclose(H.read_features(path, "x.jpg").keypoints, a.keypoints, atol=1e-4)
    H.write_features(path, {"x.jpg": b}, overwrite=True)
    np.testing.assert_allclose(H.read_features(path, "x.jpg").keypoints, b.keypoints, atol=1e-4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_missing_entries_name_the_file(tmp_path):
    path = H.write_features(tmp_path / "f.h5", {"x.jpg": _feats(np.random.default_rng(2))})
    with pytest.raises(KeyError, match="no features for image 'y.jpg'"):
        H.read_features(path, "y.jpg")
    with pytest.raises(FileNotFoundError, match="nope.h5: file not found"):
        H.read_features(tmp_path / "nope.h5", "x.jpg")
    with pytest.raises(ValueError):
        H.LocalFeatures(np.zeros((3, 2)), descriptors=np.zeros((2, 8)))


def test_names_to_pair():
    assert H.names_to_pair("db/a.jpg", "q/n/b.jpg") == "db-a.jpg/q-n-b.jpg"
    assert H.names_to_pair("a", "b", separator="_") == "a_b"


def test_matches_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    pairs = np.array([[0, 4], [2, 1], [5, 0]])
    m0 = H.matches0_from_pairs(pairs, 6)
    assert m0.tolist() == [4, -1, 1, -1, -1, 0]
    s0 = rng.uniform(0, 1, 6).astype(np.float32)
    path = H.write_matches(tmp_path / "m.h5", {("q/n/a.jpg", "db/b.jpg"): (m0, s0)})
    with h5py.File(path, "r") as f:
        assert "q-n-a.jpg/db-b.jpg/matches0" in f
    m, s = H.read_matches(path, "q/n/a.jpg", "db/b.jpg")
    np.testing.assert_array_equal(m, pairs)
    np.testing.assert_array_equal(s, s0[pairs[:, 0]])
    m_rev, _ = H.read_matches(path, "db/b.jpg", "q/n/a.jpg")  # reversed lookup swaps columns
    np.testing.assert_array_equal(m_rev, pairs[:, ::-1])
    with pytest.raises(KeyError, match="no matches for pair"):
        H.read_matches(path, "q/n/a.jpg", "db/c.jpg")
    with pytest.raises(ValueError):
        H.matches0_from_pairs([[0, 1], [0, 2]], 3)


def test_reads_old_pair_keys(tmp_path):
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("a.jpg_b.jpg")
        g.create_dataset("matches0", data=np.array([-1, 0, 2], np.int16))
        g.create_dataset("matching_scores0", data=np.array([0, 0.5, 0.25], np.float16))
    m, s = H.read_matches(path, "a.jpg", "b.jpg")
    assert m.tolist() == [[1, 0], [2, 2]] and s.tolist() == [0.5, 0.25]
