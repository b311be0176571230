"""The run driver behind ``s2dloc localize``: strict settings, the stale-settings guard, the lock
on ``--out``, ``--rebuild-cache`` / ``--discard-results``, pairs files, strict JSON logs, result
files that follow the success verdict, and one-line errors (exit 2) for bad inputs."""

from __future__ import annotations

import json
import logging
import shutil

import cv2
import pytest
import torch

from s2dloc.cli import main
from s2dloc.datasets.colmap_io import read_poses
from s2dloc.geometry import Camera
from s2dloc.localization.io import write_results
from s2dloc.localization.lock import RunLock
from s2dloc.localization.map import Map


def _args(world_dir, out, *extra: str) -> list[str]:
    return [
        "localize",
        "--map",
        str(world_dir),
        "--queries",
        str(world_dir / "queries_with_intrinsics.txt"),
        "--out",
        str(out),
        "--conf",
        "s2d.match_stride=4",
        "retrieval.num_refs=2",
        *extra,
    ]


def _strict_records(path) -> list[dict]:
    def refuse(token):
        raise AssertionError(f"{path} holds the non-JSON token {token}")

    return [json.loads(x, parse_constant=refuse) for x in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("fpnp.enabled=ture", "'fpnp.enabled' must be of type bool"),
        ("s2d.ratio=abc", "'s2d.ratio' must be of type float"),
        ("s2d.ratio=1.5", "'s2d.ratio' = 1.5 must be <= 1"),
        ("fpnp.solver.loss=l2", "must be one of ['squared', 'huber', 'cauchy', 'barron']"),
        (
            "fpnp.solver.max_iter=3",
            "unknown setting 'fpnp.solver.max_iter'; valid keys: ['backend'",
        ),
        ("retrieval.num_refs=0", "'retrieval.num_refs' = 0 must be >= 1"),
        ("device=gpu", "'device' = 'gpu' must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ],
)
def test_bad_settings_stop_the_run_with_exit_2(world_dir, tmp_path, caplog, setting, message):
    out = tmp_path / "out"
    assert main(_args(world_dir, out, setting)) == 2
    assert message in caplog.text
    assert not (out / "log.jsonl").exists()


def test_a_cuda_device_without_cuda_stops_the_run_with_exit_2(
    world_dir, tmp_path, caplog, monkeypatch
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    assert main(_args(world_dir, out, "device=cuda:1", "--num-queries", "1")) == 2
    assert "device 'cuda:1': CUDA is not available" in caplog.text
    assert "Traceback" not in caplog.text and not (out / "log.jsonl").exists()


def test_argument_errors(world_dir, tmp_path, capsys, caplog):
    with pytest.raises(SystemExit) as info:
        main(_args(world_dir, tmp_path / "o", "--num-queries", "0"))
    assert info.value.code == 2 and "--num-queries: must be >= 1, got 0" in capsys.readouterr().err
    file = tmp_path / "file.txt"
    file.write_text("not a folder\n")
    assert main(_args(world_dir, file)) == 2
    assert f"--out {file} is an existing file; expected a folder" in caplog.text


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_broken_images_bin_is_named(world_dir, tmp_path, caplog, damage):
    model = tmp_path / "model"
    shutil.copytree(world_dir / "sfm", model)
    data = (model / "images.bin").read_bytes()
    bad = b"garbage!" * 40 if damage == "garbage" else data[: len(data) * 2 // 3]
    (model / "images.bin").write_bytes(bad)
    args = _args(world_dir, tmp_path / "out")
    args[2] = str(model)
    assert main([*args, "--images", str(world_dir / "images")]) == 2
    assert str(model / "images.bin") in caplog.text


def test_lock_refuses_a_second_run_on_the_same_out(world_dir, tmp_path, caplog):
    out = tmp_path / "out"
    with RunLock(out):
        assert main(_args(world_dir, out, "--num-queries", "1")) == 2
    assert f"{out} is in use by another run" in caplog.text
    assert not (out / "log.jsonl").exists()
    with RunLock(out):  # released at exit: can be taken again
        pass


def test_settings_guard_rebuild_cache_and_discard_results(world_dir, tmp_path, caplog):
    out = tmp_path / "out"
    log = out / "log.jsonl"
    assert main(_args(world_dir, out, "--num-queries", "2")) == 0
    first = log.read_bytes()
    saved = json.loads((out / "config.json").read_text())
    assert saved["mode"] == "localize" and saved["conf"]["fpnp"]["solver"]["loss"] == "cauchy"
    assert main(_args(world_dir, out, "--num-queries", "2")) == 0  # resumed: no duplicates
    assert log.read_bytes() == first
    # Where the extractor runs does not change the results: a resume may change it.
    assert saved["conf"]["device"] == "auto"
    assert main(_args(world_dir, out, "device=cpu", "--num-queries", "2")) == 0
    assert log.read_bytes() == first
    caplog.clear()
    assert main(_args(world_dir, out, "retrieval.num_refs=3", "--num-queries", "2")) == 2
    assert "changed: conf.retrieval.num_refs" in caplog.text and "--discard-results" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(_args(world_dir, out, "--num-queries", "3", "--rebuild-cache")) == 0
    assert "12 computed, 0 reused" in caplog.text  # the cache was rebuilt ...
    assert log.read_bytes().startswith(first)  # ... the finished results were kept
    assert len(log.read_text().splitlines()) == 3
    args = _args(world_dir, out, "retrieval.num_refs=3", "--num-queries", "1")
    assert main([*args, "--discard-results"]) == 0
    assert len(log.read_text().splitlines()) == 1
    assert json.loads((out / "config.json").read_text())["conf"]["retrieval"]["num_refs"] == 3


def test_pairs_strict_json_and_bad_cameras(world_dir, tmp_path, caplog):
    lines = (world_dir / "queries_with_intrinsics.txt").read_text().splitlines()
    names = [x.split()[0] for x in lines[:3]]
    f = lines[2].split()
    lines[2] = " ".join([f[0], "PINHOLE", f[2], f[3], "5", "5", *f[-2:]])  # 172 deg wide
    queries = tmp_path / "queries.txt"
    queries.write_text("\n".join(lines[:3]) + "\n")
    refs = Map.load(world_dir).names
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{names[0]} {refs[0]}\n{names[0]} {refs[1]}\n")
    args = _args(world_dir, tmp_path / "out", "output.write_failed=true", "--pairs", str(pairs))
    args[4] = str(queries)
    with caplog.at_level(logging.WARNING):
        assert main([*args, "--query-images", str(world_dir / "images")]) == 0
    assert f"the pairs file lists no references for 1 of 2 queries (e.g. {names[1]})" in caplog.text
    records = {r["name"]: r for r in _strict_records(tmp_path / "out" / "log.jsonl")}
    assert [r[0] for r in records[names[0]]["refs"]] == refs[:2]
    assert [r[1] for r in records[names[0]]["refs"]] == [None, None]  # no score: null, not NaN
    assert all(isinstance(s, float) for _, s in records[names[1]]["refs"])  # retrieved
    bad = records[names[2]]
    assert bad["pose"] is None and "horizontal field of view" in bad["error"]
    assert f"camera of query {names[2]!r}" in bad["error"]


def test_implausible_reference_camera_is_refused_by_name(world_dir):
    map_ = Map.load(world_dir)
    map_.validate()
    bad = map_.images[2]
    w, h = (int(v) for v in bad.camera.size.tolist())
    bad.camera = Camera.from_colmap("PINHOLE", w, h, [-100.0, 100.0, w / 2, h / 2])
    with pytest.raises(ValueError, match="focal length must be > 0") as info:
        map_.validate()
    assert f"camera of reference image {bad.name!r}" in str(info.value)


def test_reference_image_of_another_size_is_refused(world_dir, tmp_path):
    shutil.copytree(world_dir / "images", tmp_path / "images")
    map_ = Map.load(world_dir, tmp_path / "images")
    name = map_.names[4]
    image = cv2.imread(str(tmp_path / "images" / name))
    cv2.imwrite(str(tmp_path / "images" / name), cv2.resize(image, (80, 60)))
    assert map_.load_image(map_.names[3]).shape == (120, 160, 3)
    with pytest.raises(ValueError, match="is 80x60 but its camera is 160x120") as info:
        map_.load_image(name)
    assert str(tmp_path / "images" / name) in str(info.value)


def test_results_follow_the_success_verdict(tmp_path):
    pose = [1.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0]
    records = {
        "ok": {"name": "ok", "pose": pose, "pnp_pose": pose, "success": True},
        "rejected": {"name": "rejected", "pose": pose, "pnp_pose": pose, "success": False},
        "old": {"name": "old", "pose": pose},  # an older log without a verdict
        "failed": {"name": "failed", "pose": None, "pnp_pose": None, "success": False},
    }
    assert list(read_poses(write_results(tmp_path / "a.txt", records, write_failed=False))) == [
        "ok",
        "old",
    ]
    every = write_results(tmp_path / "b.txt", records, write_failed=True)
    assert list(read_poses(every)) == ["ok", "rejected", "old"]
    assert list(read_poses(write_results(tmp_path / "c.txt", records, "pnp_pose"))) == [
        "ok",
        "rejected",
    ]
