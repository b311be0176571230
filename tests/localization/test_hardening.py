"""Hardening: up-front input checks (bad queries skipped, global problems raise, each message
naming the file) and a localize run killed mid-way then resumed."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from s2dloc.cli import main
from s2dloc.datasets.colmap_io import read_poses
from s2dloc.geometry import Camera
from s2dloc.localization.io import read_queries
from s2dloc.localization.map import Map
from s2dloc.localization.query import Query
from s2dloc.localization.validate import (
    DEFAULT_FEATURE_BUDGET,
    attach_priors,
    check_map,
    check_queries,
    feature_bytes,
    load_map,
    read_priors,
)

CONF = ["--conf", "s2d.match_stride=4", "output.write_failed=true"]  # every pose in results


def _query_lines(world: Path) -> list[str]:
    return [x for x in (world / "queries_with_intrinsics.txt").read_text().splitlines() if x]


def _copy_queries(world: Path, root: Path, n: int) -> Path:
    """``n`` queries ``q/NNN.png`` under ``root`` (copies of the world's queries, cycled) and
    their list file; returns the list file."""
    lines = _query_lines(world)
    (root / "q").mkdir(parents=True)
    out = []
    for i in range(n):
        name, *cam = lines[i % len(lines)].split()
        shutil.copy(world / "images" / name, root / "q" / f"{i:03d}.png")
        out.append(" ".join([f"q/{i:03d}.png", *cam]))
    path = root / "queries.txt"
    path.write_text("\n".join(out) + "\n")
    return path


def _log_names(log: Path) -> list[str]:
    return [json.loads(x)["name"] for x in log.read_text().splitlines()]


# ---------------------------------------------------------------------- kill and resume
def _kill_after_first_record(cmd: list[str], env: dict, log: Path, output: Path) -> None:
    """Start ``cmd`` and SIGKILL it while running, once ``log`` holds a complete line."""
    with open(output, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                if log.exists() and b"\n" in log.read_bytes():
                    break
                time.sleep(0.005)
            running = proc.poll() is None
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)
    assert running, "the run ended before a query was logged:\n" + output.read_text()
    assert proc.returncode == -signal.SIGKILL


def test_killed_run_resumes_without_recomputing(world_dir, tmp_path):
    n = 12  # the first run is killed as soon as one query is logged, long before the last
    qlist = _copy_queries(world_dir, tmp_path / "qroot", n)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "s2dloc", "localize", "--map", str(world_dir)]
    cmd += ["--queries", str(qlist), "--query-images", str(tmp_path / "qroot")]
    cmd += ["--out", str(out), *CONF]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = out / "log.jsonl"
    _kill_after_first_record(cmd, env, log, tmp_path / "run1.txt")
    before = log.read_bytes()
    complete = before[: before.rfind(b"\n") + 1]
    done_before = complete.decode().splitlines()
    assert 1 <= len(done_before) < n, "the kill did not land mid-way"

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{len(done_before)} already done" in rerun.stderr

    after = log.read_bytes()
    assert after.startswith(complete)  # records written before the kill: kept byte for byte
    names = _log_names(log)
    expected = [f"q/{i:03d}.png" for i in range(n)]
    assert sorted(names) == expected  # every query exactly once
    records = [json.loads(x) for x in after.decode().splitlines()]
    assert not any(r["error"] for r in records)
    results = read_poses(out / "results.txt")
    assert sorted(results) == sorted(r["name"] for r in records if r["pose"])
    assert len(results) == n
    assert len(read_poses(out / "results_pnp.txt")) == sum(bool(r["pnp_pose"]) for r in records)
    leftovers = [
        p.name
        for p in out.iterdir()
        if p.name != ".lock"
        and (p.name.startswith(".") or p.suffix in (".tmp", ".part") or "rank" in p.name)
    ]
    assert not leftovers, f"temporary files left in {out}: {leftovers}"


# ---------------------------------------------------------------------- bad queries
def _bad_query_files(world: Path, root: Path) -> tuple[Path, dict[str, str]]:
    """A query list under ``root`` with one good query and bad ones; ``{name: expected text}``."""
    name, *cam = _query_lines(world)[0].split()
    (root / "q").mkdir(parents=True)
    good = (world / "images" / name).read_bytes()
    (root / "q" / "good.png").write_bytes(good)
    (root / "q" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "q" / "garbage.png").write_bytes(b"this is not an image\n" * 10)
    (root / "q" / "empty.png").write_bytes(b"")
    # A plausible camera of half the size (the image itself is not halved).
    cam_small = [cam[0], "80", "60", *(str(float(v) / 2) for v in cam[3:])]
    shutil.copy(world / "images" / name, root / "q" / "wrongsize.png")
    bad = {
        "q/missing.png": "does not exist",
        "q/truncated.png": "cannot read query image",
        "q/garbage.png": "cannot read query image",
        "q/empty.png": "is empty",
        "q/wrongsize.png": "but its camera is 80x60",
    }
    lines = [" ".join(["q/good.png", *cam])]
    lines += [" ".join([n, *(cam_small if "wrongsize" in n else cam)]) for n in bad]
    path = root / "queries.txt"
    path.write_text("\n".join(lines) + "\n")
    return path, bad


def test_check_queries_skips_bad_images_naming_them(world_dir, tmp_path, caplog):
    qlist, bad = _bad_query_files(world_dir, tmp_path)
    queries = read_queries(qlist, tmp_path)
    skipped: dict[str, str] = {}
    with caplog.at_level(logging.ERROR):
        good = check_queries(queries, None, skipped)
    assert [q.name for q in good] == ["q/good.png"]
    assert sorted(skipped) == sorted(bad)
    for name, text in bad.items():
        assert text in skipped[name], skipped[name]
        assert str(tmp_path / name) in skipped[name]  # the message names the file
        assert str(tmp_path / name) in caplog.text


def test_memory_budget(world_dir, tmp_path):
    queries = read_queries(world_dir / "queries_with_intrinsics.txt", world_dir / "images")
    assert check_queries(queries) == queries  # 160x120 is far below the default budget
    # photometric: 3 channels at strides 1, 2, 4, 8, 16, extracted at 160x128 (multiples of 16)
    need = feature_bytes(160, 128, (3,) * 5, (1, 2, 4, 8, 16))
    assert need == 4 * 3 * (160 * 128 + 80 * 64 + 40 * 32 + 20 * 16 + 10 * 8)
    skipped: dict[str, str] = {}
    photometric = {"extractor": "photometric"}
    assert check_queries(queries[:2], photometric, budget=need - 1, skipped=skipped) == []
    msg = skipped[queries[0].name]
    assert str(queries[0].path) in msg and "160x120" in msg and "GiB" in msg and "budget" in msg
    assert "extracted at 160x128" in msg and "resize_max" in msg
    assert check_queries(queries[:2], photometric, budget=need) == queries[:2]
    # a huge image in memory: estimated, never extracted
    big = np.zeros((1, 1, 3), np.uint8)
    cam = Camera.from_colmap("PINHOLE", 40000, 30000, [3e4, 3e4, 2e4, 1.5e4])
    q = Query("huge", cam, image=np.broadcast_to(big, (30000, 40000, 3)))
    skipped = {}
    assert check_queries([q], {"resize_max": 0}, skipped=skipped) == []  # at full resolution
    assert feature_bytes(40000, 30000, (3,) * 5, (1, 2, 4, 8, 16)) > DEFAULT_FEATURE_BUDGET
    assert "'huge'" in skipped["huge"] and "40000x30000" in skipped["huge"]
    assert check_queries([q]) == [q]  # the default resize_max extracts it at 1024x768
    with pytest.raises(ValueError, match="budget"):
        check_queries(queries, budget=0)


def test_localize_cli_reports_and_skips_bad_queries(world_dir, tmp_path):
    qlist, bad = _bad_query_files(world_dir, tmp_path / "qroot")
    out = tmp_path / "out"
    args = [
        "localize",
        "--map",
        str(world_dir),
        "--queries",
        str(qlist),
        "--query-images",
        str(tmp_path / "qroot"),
        "--out",
        str(out),
        *CONF,
    ]
    assert main(args) == 0
    records = {json.loads(x)["name"]: json.loads(x) for x in (out / "log.jsonl").open()}
    assert sorted(records) == sorted(["q/good.png", *bad])
    assert records["q/good.png"]["pnp_success"] and not records["q/good.png"]["error"]
    for name, text in bad.items():
        assert text in records[name]["error"] and name in records[name]["error"]
        assert records[name]["pose"] is None
    assert list(read_poses(out / "results.txt")) == ["q/good.png"]
    assert main(args) == 0  # resumed: nothing new, failures are not logged twice
    assert len((out / "log.jsonl").read_text().splitlines()) == 1 + len(bad)


# ---------------------------------------------------------------------- map
def test_map_without_points_names_the_model(world_dir, tmp_path, world_map):
    import pycolmap

    rec = pycolmap.Reconstruction(str(world_dir / "sfm"))
    for pid in list(rec.points3D):
        rec.delete_point3D(pid)
    model = tmp_path / "empty_model"
    model.mkdir()
    rec.write(str(model))
    with pytest.raises(ValueError, match="no 3D points") as info:
        load_map(model)
    assert str(model) in str(info.value)
    empty = Map(world_map.images[:0], np.zeros(0, np.int64), np.zeros((0, 3)))
    with pytest.raises(ValueError, match=f"map {tmp_path}.*no 3D points"):
        check_map(empty, tmp_path)
    assert check_map(world_map, world_dir) is world_map
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_map(tmp_path / "nowhere")
    out = tmp_path / "out"
    rc = main(
        [
            "localize",
            "--map",
            str(model),
            "--images",
            str(world_dir / "images"),
            "--queries",
            str(world_dir / "queries_with_intrinsics.txt"),
            "--out",
            str(out),
            *CONF,
        ]
    )
    assert rc == 2 and not (out / "log.jsonl").exists()


# ---------------------------------------------------------------------- prior poses (refine)
def test_priors_with_nan_and_inf_are_skipped_naming_the_line(world_dir, tmp_path, caplog):
    lines = (world_dir / "poses_query.txt").read_text().splitlines()
    names = [x.split()[0] for x in lines]
    f = lines[1].split()
    lines[1] = " ".join([f[0], *f[1:5], "nan", *f[6:]])
    f = lines[2].split()
    lines[2] = " ".join([f[0], "inf", *f[2:]])
    path = tmp_path / "priors.txt"
    path.write_text("\n".join(lines) + "\n")
    poses, bad = read_priors(path)
    assert sorted(bad) == sorted(names[1:3])
    assert f"{path}:2:" in bad[names[1]] and "NaN/inf" in bad[names[1]]
    assert f"{path}:3:" in bad[names[2]]
    assert sorted(poses) == sorted(names[:1] + names[3:])
    queries = read_queries(world_dir / "queries_with_intrinsics.txt", world_dir / "images")
    with caplog.at_level(logging.ERROR):
        kept = attach_priors(queries, path)
    assert [q.name for q in kept] == [n for n in [q.name for q in queries] if n not in bad]
    assert all(q.prior is not None and np.isfinite(q.prior.t.numpy()).all() for q in kept)
    assert f"{path}:2:" in caplog.text and f"{path}:3:" in caplog.text


def test_unreadable_pose_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_priors(tmp_path / "missing.txt")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(ValueError, match="binary.txt"):
        read_priors(binary)
    allbad = tmp_path / "allbad.txt"
    allbad.write_text("a nan 0 0 0 0 0 0\nb 1 0 0\n")
    with pytest.raises(ValueError, match=r"allbad.txt: no usable pose.*allbad.txt:1"):
        read_priors(allbad)
    dup = tmp_path / "dup.txt"
    dup.write_text("a 1 0 0 0 0 0 0\na 1 0 0 0 0 0 0\n")
    with pytest.raises(ValueError, match=r"dup.txt:2: duplicate"):
        read_priors(dup)
    ok = tmp_path / "ok.txt"
    ok.write_text("# comment\n\na 1 0 0 0 1 2 3\nb 1 0 0\nc 2 0 0 0 1 2 3\n")
    poses, bad = read_priors(ok)
    assert list(poses) == ["a"]
    assert "ok.txt:4: expected" in bad["b"] and "ok.txt:5: quaternion norm" in bad["c"]


def test_exif_rotated_query_is_checked_as_decoded(tmp_path):
    from PIL import Image

    from s2dloc.localization.map import read_rgb
    from s2dloc.localization.validate import image_size

    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when decoding
    Image.new("RGB", (64, 48), (10, 200, 30)).save(path, exif=exif)
    h, w = read_rgb(path).shape[:2]
    assert image_size(path) == (w, h) == (48, 64)
    cam = Camera.from_colmap("PINHOLE", w, h, [50.0, 50.0, w / 2, h / 2])
    assert check_queries([Query("r", cam, path=path)]) != []
