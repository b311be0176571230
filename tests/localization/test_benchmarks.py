"""``s2dloc benchmark cmu`` end to end on a tiny world rewritten in the CMU Seasons layout."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pycolmap
import pytest

from s2dloc.cli import main
from s2dloc.datasets.colmap_io import read_poses
from s2dloc.geometry import Pose


def _centre_line(name: str, q, t) -> str:
    c = Pose.from_quat_t(np.asarray(q, float), np.asarray(t, float)).center().tolist()
    return " ".join([name, *(f"{v:.9f}" for v in (*q, *c))])


@pytest.fixture(scope="module")
def cmu_root(world_dir, tmp_path_factory):
    """Slice 2 with the world's database as ``database/``, its queries as ``query/`` (c0)."""
    root = tmp_path_factory.mktemp("cmu")
    s = root / "slice2"
    for sub in ("database", "query", "camera-poses", "sparse"):
        (s / sub).mkdir(parents=True)
    rec = pycolmap.Reconstruction(str(world_dir / "sfm"))
    cam = next(iter(rec.cameras.values()))
    f, cx, cy = cam.params[0], cam.params[-2], cam.params[-1]
    (root / "intrinsics.txt").write_text(
        f"c0 OPENCV {cam.width} {cam.height} {f} {f} {cx} {cy} 0 0 0 0\n"
    )
    gt_db = []
    for k, image in enumerate(sorted(rec.images.values(), key=lambda im: im.name)):
        new = f"img_{k:05d}_c0_{1000 + k}us.png"
        shutil.copy(world_dir / "images" / image.name, s / "database" / new)
        pose = Pose.from_colmap(image.cam_from_world())
        gt_db.append(_centre_line(new, pose.quat().tolist(), pose.t.tolist()))
        image.name = new
    rec.write(str(s / "sparse"))
    (s / "ground-truth-database-images-slice2.txt").write_text("\n".join(gt_db) + "\n")
    names, gt_q = [], []
    for k, (name, (q, t)) in enumerate(sorted(read_poses(world_dir / "poses_query.txt").items())):
        new = f"img_{10000 + k:05d}_c0_{9000 + k}us.png"
        shutil.copy(world_dir / "images" / name, s / "query" / new)
        names.append(new)
        gt_q.append(_centre_line(new, q, t))
    (s / "test-images-slice2.txt").write_text("\n".join(names) + "\n")
    (s / "camera-poses" / "slice2.txt").write_text("\n".join(gt_q) + "\n")
    return root


def _cmu_args(root, out) -> list[str]:
    slice_and_out = ["--slices", "2", "--out", str(out)]
    return ["benchmark", "cmu", "--root", str(root), *slice_and_out, "--conf", "s2d.match_stride=4"]


def test_cmu_runner_writes_submission_and_resumes(cmu_root, tmp_path, capsys):
    args = _cmu_args(cmu_root, tmp_path)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "slice2" in out and "submission:" in out
    sub = tmp_path / "submission_cmu.txt"
    lines = sub.read_text().splitlines()
    queries = (cmu_root / "slice2" / "test-images-slice2.txt").read_text().split()
    for line in lines:  # basenames, 8 fields, world-to-camera unit quaternions
        fields = line.split()
        assert len(fields) == 8 and fields[0] in queries
        assert abs(np.linalg.norm(np.array(fields[1:5], float)) - 1) < 1e-6
    log = (tmp_path / "slice2" / "log.jsonl").read_text()
    assert len(log.splitlines()) == len(queries)
    assert main(args) == 0  # resumes: nothing recomputed, the log is unchanged
    assert (tmp_path / "slice2" / "log.jsonl").read_text() == log
    assert sub.read_text().splitlines() == lines


def test_missing_slice_names_the_folder(cmu_root, tmp_path):
    assert (
        main(["benchmark", "cmu", "--root", str(cmu_root), "--slices", "3", "--out", str(tmp_path)])
        == 2
    )


@pytest.fixture(scope="module")
def robotcar_root(world_dir, tmp_path_factory):
    """The world as RobotCar Seasons: database = overcast-reference/rear, queries = night/rear."""
    import cv2

    root = tmp_path_factory.mktemp("robotcar")
    rec = pycolmap.Reconstruction(str(world_dir / "sfm"))
    cam = next(iter(rec.cameras.values()))
    f, cx, cy = cam.params[0], cam.params[-2], cam.params[-1]
    (root / "intrinsics").mkdir()
    for c in ("left", "rear", "right"):  # published principal points are 0-based: -0.5
        text = f"fx: {f}\nfy: {f}\ncx: {cx - 0.5}\ncy: {cy - 0.5}\n"
        (root / "intrinsics" / f"{c}_intrinsics.txt").write_text(text)
    for cond in ("overcast-reference", "night"):
        for c in ("left", "rear", "right"):
            (root / "images" / cond / c).mkdir(parents=True)
    images = sorted(rec.images.values(), key=lambda im: im.name)
    index = {im.image_id: k for k, im in enumerate(images)}
    lines = []
    for k, im in enumerate(images):
        name = f"overcast-reference/rear/{1400000000000000 + k}.jpg"
        cv2.imwrite(str(root / "images" / name), cv2.imread(str(world_dir / "images" / im.name)))
        pose = Pose.from_colmap(im.cam_from_world())
        c = pose.center().tolist()
        lines.append(
            f"{name} {f} {' '.join(map(str, pose.quat().tolist()))} {c[0]} {c[1]} {c[2]} 0 0"
        )
    pts = []
    for p in rec.points3D.values():
        obs = []
        for el in p.track.elements:
            kp = rec.images[el.image_id].points2D[el.point2D_idx].xy
            obs += [
                index[el.image_id],
                el.point2D_idx,
                kp[0] - cam.width / 2,
                kp[1] - cam.height / 2,
            ]
        pts.append(" ".join(map(str, [*p.xyz, 0, 0, 0, len(obs) // 4, *obs])))
    nvm = root / "3D-models" / "all-merged" / "all.nvm"
    nvm.parent.mkdir(parents=True)
    nvm.write_text(
        "NVM_V3\n\n" + "\n".join([str(len(lines)), *lines, "", str(len(pts)), *pts]) + "\n\n0\n"
    )
    for k, name in enumerate(sorted(read_poses(world_dir / "poses_query.txt"))):
        out = root / "images" / "night" / "rear" / f"{1500000000000000 + k}.jpg"
        cv2.imwrite(str(out), cv2.imread(str(world_dir / "images" / name)))
    return root, (cam.width, cam.height)


def test_robotcar_runner_writes_submission(robotcar_root, tmp_path, monkeypatch):
    from s2dloc.datasets import robotcar

    root, size = robotcar_root
    monkeypatch.setattr(robotcar, "IMAGE_SIZE", size)
    args = [
        "benchmark",
        "robotcar",
        "--root",
        str(root),
        "--conditions",
        "night",
        "--out",
        str(tmp_path),
        "--conf",
        "s2d.match_stride=4",
        "output.write_failed=true",
    ]
    assert main(args) == 0
    lines = (tmp_path / "submission_robotcar.txt").read_text().splitlines()
    assert lines and all(line.split()[0].startswith("rear/") for line in lines)
    assert len((tmp_path / "night" / "log.jsonl").read_text().splitlines()) == 5


def test_interrupted_run_resumes_without_recomputing(cmu_root, tmp_path, caplog):
    args = _cmu_args(cmu_root, tmp_path)
    assert main(args) == 0
    log = tmp_path / "slice2" / "log.jsonl"
    full = log.read_text().splitlines(keepends=True)
    # Killed while writing the third record: two complete lines and half of the third.
    log.write_text("".join(full[:2]) + full[2][: len(full[2]) // 2])
    assert main(args) == 0
    lines = log.read_text().splitlines()
    assert lines[:2] == [x.rstrip("\n") for x in full[:2]]  # kept, not recomputed
    names = [json.loads(x)["name"] for x in lines if x.startswith("{") and x.endswith("}")]
    assert sorted(names) == sorted(json.loads(x)["name"] for x in full)
    # Resuming with other settings would mix results: refused, naming the changed key.
    assert main([*args, "retrieval.num_refs=2"]) == 2
    assert "slice2/config.json was written with other settings" in caplog.text
    assert "conf.retrieval.num_refs" in caplog.text
    assert log.read_text().splitlines() == lines


def test_robotcar_conditions_share_one_feature_cache(robotcar_root, tmp_path, monkeypatch):
    from s2dloc.datasets import robotcar

    root, size = robotcar_root
    monkeypatch.setattr(robotcar, "IMAGE_SIZE", size)
    args = [
        "benchmark",
        "robotcar",
        "--root",
        str(root),
        "--conditions",
        "night",
        "--out",
        str(tmp_path),
        "--conf",
        "s2d.match_stride=4",
    ]
    assert main(args) == 0
    assert [p.name for p in tmp_path.glob("cache-*.h5")] == ["cache-gnnet.h5"]
    assert not list((tmp_path / "night").glob("cache-*.h5"))
