"""visuallocalization.net submission files: naming, concatenation, failures, atomic writes."""

import logging

import numpy as np
import pytest
import torch

from s2dloc.datasets.colmap_io import read_poses
from s2dloc.evaluation.submission import (
    cmu_name,
    record_success,
    robotcar_name,
    write_submission,
)
from s2dloc.geometry import Pose
from s2dloc.localization.query import QueryResult


def _pose(seed):
    return Pose.exp(
        torch.randn(6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    )


def test_cmu_slices_concatenated(tmp_path, caplog):
    s2 = {"slice2/query/img_1_c0_1us.jpg": _pose(0), "slice2/query/img_2_c1_2us.jpg": None}
    s3 = {
        "img_3_c0_3us.jpg": QueryResult("img_3_c0_3us.jpg", pose=_pose(1), fallback=True),
        "img_4_c1_4us.jpg": QueryResult("img_4_c1_4us.jpg", pose=_pose(2), success=True),
    }
    expected = [*s2, *s3, "img_5_c0_5us.jpg"]
    with caplog.at_level(logging.WARNING):
        rep = write_submission(tmp_path / "cmu.txt", [s2, s3], "cmu", queries=expected)
    lines = (tmp_path / "cmu.txt").read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == ["img_1_c0_1us.jpg", "img_4_c1_4us.jpg"]
    assert rep.written == 2 and rep.failed == ["slice2/query/img_2_c1_2us.jpg", "img_3_c0_3us.jpg"]
    assert rep.missing == ["img_5_c0_5us.jpg"] and len(rep.not_localized) == 3
    assert "3 of 5 queries not localized" in caplog.text
    back = read_poses(tmp_path / "cmu.txt")
    q, t = back["img_1_c0_1us.jpg"]  # world-to-camera, quaternion w first
    np.testing.assert_allclose(
        Pose.from_quat_t(q, t).matrix().numpy(), _pose(0).matrix().numpy(), atol=1e-12
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_write_failed_uses_fallback_pose(tmp_path):
    res = {"a.jpg": QueryResult("a.jpg", pose=_pose(1), fallback=True), "b.jpg": None}
    rep = write_submission(tmp_path / "s.txt", res, write_failed=True)
    assert list(read_poses(tmp_path / "s.txt")) == ["a.jpg"]
    assert rep.fallback_written == ["a.jpg"] and rep.failed == ["a.jpg", "b.jpg"]


def test_robotcar_naming_and_tuples(tmp_path):
    q, t = _pose(3).quat().numpy(), _pose(3).t.numpy()
    night = {"night/rear/1418721355742500.jpg": (q, t)}
    dawn = {
        "dawn/left/1418235223450115.jpg": (q * 1.0000001, t),
        "dawn/rear/1418235223450999.jpg": (np.full(4, np.nan), t),
    }
    rep = write_submission(tmp_path / "rc.txt", [night, dawn], "robotcar")
    assert list(read_poses(tmp_path / "rc.txt")) == [
        "rear/1418721355742500.jpg",
        "left/1418235223450115.jpg",
    ]
    assert rep.failed == ["dawn/rear/1418235223450999.jpg"]
    assert (
        robotcar_name("images/sun/right/12.jpg") == "right/12.jpg" == robotcar_name("right/12.jpg")
    )
    assert cmu_name("slice9/query/img_1_c0_1us.jpg") == "img_1_c0_1us.jpg"


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="both map to 'img_1.jpg'"):
        write_submission(
            tmp_path / "x.txt",
            [{"slice2/img_1.jpg": _pose(0)}, {"slice3/img_1.jpg": _pose(1)}],
            "cmu",
        )
    with pytest.raises(ValueError, match="unknown camera 'front'"):
        write_submission(tmp_path / "x.txt", {"night/front/1.jpg": _pose(0)}, "robotcar")
    with pytest.raises(ValueError, match="unknown benchmark"):
        write_submission(tmp_path / "x.txt", {}, "aachen")
    assert not (tmp_path / "x.txt").exists()


def test_log_records_follow_the_success_verdict(tmp_path):
    pose = [1.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0]
    records = {
        "ok.jpg": {"name": "ok.jpg", "pose": pose, "success": True},
        "rejected.jpg": {"name": "rejected.jpg", "pose": pose, "success": False},
        "old.jpg": {"name": "old.jpg", "pose": pose},  # an older log: no verdict, a pose
        "none.jpg": {"name": "none.jpg", "pose": None, "success": False},
    }
    assert [n for n, r in records.items() if record_success(r)] == ["ok.jpg", "old.jpg"]
    rep = write_submission(tmp_path / "s.txt", records)
    assert list(read_poses(tmp_path / "s.txt")) == ["ok.jpg", "old.jpg"]
    assert rep.failed == ["rejected.jpg", "none.jpg"]
    rep = write_submission(tmp_path / "s.txt", records, write_failed=True)
    assert list(read_poses(tmp_path / "s.txt")) == ["ok.jpg", "rejected.jpg", "old.jpg"]
    assert rep.fallback_written == ["rejected.jpg"]
