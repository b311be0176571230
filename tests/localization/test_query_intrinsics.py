"""Query folders without ``--camera``: intrinsics from the map / EXIF / a default focal, one
warning per source, and unreadable images reported and skipped."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from s2dloc.cli import main
from s2dloc.datasets.colmap_io import read_poses
from s2dloc.localization.io import read_queries

EXIF_IFD, FOCAL_35MM = 0x8769, 0xA405


def _save(path, size=(64, 48), focal_35mm: int | None = None) -> None:
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    exif = Image.Exif()
    if focal_35mm is not None:
        exif.get_ifd(EXIF_IFD)[FOCAL_35MM] = focal_35mm
    im.save(path, exif=exif)


def test_folder_exif_and_default(tmp_path, caplog):
    for i in range(3):
        _save(tmp_path / f"exif{i}.jpg", focal_35mm=36)  # f = 36 / 36 * max(W, H) = 64 px
    for i in range(2):
        _save(tmp_path / f"plain{i}.jpg")
    with caplog.at_level(logging.WARNING):
        queries = read_queries(tmp_path)
    cams = {q.name: q.camera for q in queries}
    assert sorted(cams) == ["exif0.jpg", "exif1.jpg", "exif2.jpg", "plain0.jpg", "plain1.jpg"]
    assert cams["exif0.jpg"].model == "SIMPLE_RADIAL"
    np.testing.assert_allclose(cams["exif1.jpg"].params.tolist(), [64, 32, 24, 0])
    np.testing.assert_allclose(cams["plain0.jpg"].params.tolist(), [1.2 * 64, 32, 24, 0])
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(msgs) == 2, msgs  # once per source, not once per image
    assert any("3 of 5" in m and "EXIF" in m for m in msgs)
    assert any("2 of 5" in m and "default focal of 1.2" in m for m in msgs)


def test_folder_default_factor(tmp_path):
    _save(tmp_path / "a.png")
    (q,) = read_queries(tmp_path, default_focal_factor=2.0)
    assert float(q.camera.params[0]) == pytest.approx(128)


def test_folder_camera_of_map(world_map, world_dir, tmp_path, caplog):
    shutil.copy(world_map.image_root / world_map.names[0], tmp_path / "same_size.png")
    with caplog.at_level(logging.WARNING):
        (q,) = read_queries(tmp_path, model=world_map)
    ref = world_map.images[0].camera
    assert q.camera.model == ref.model
    np.testing.assert_allclose(q.camera.params.tolist(), ref.params.tolist())
    assert "map's COLMAP model" in caplog.text


def test_bad_folders(tmp_path, caplog):
    with pytest.raises(ValueError, match="no query images in"):
        read_queries(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.jpg"):
        read_queries(tmp_path)
    _save(tmp_path / "good.jpg")
    skipped: dict[str, str] = {}
    with caplog.at_level(logging.WARNING):
        queries = read_queries(tmp_path, skipped=skipped)
    assert [q.name for q in queries] == ["good.jpg"]
    assert list(skipped) == ["broken.jpg"] and "broken.jpg" in caplog.text


def test_cli_folder_without_camera(world_dir, tmp_path, caplog):
    """An unreadable query is reported (log record with its error) and skipped; the others are
    localized with the map's camera."""
    queries = tmp_path / "q"
    queries.mkdir()
    for path in sorted((world_dir / "images" / "query" / "reference").iterdir())[:2]:
        shutil.copy(path, queries / path.name)
    (queries / "zz_truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out"
    args = [
        "localize",
        "--map",
        str(world_dir),
        "--queries",
        str(queries),
        "--out",
        str(out),
        "--conf",
        "s2d.match_stride=4",
        "retrieval.num_refs=2",
        "output.write_failed=true",
    ]
    with caplog.at_level(logging.WARNING):
        assert main(args) == 0
    assert "zz_truncated.png" in caplog.text
    assert "intrinsics of 2 of 2 query images from the map's COLMAP model" in caplog.text
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    by_name = {r["name"]: r for r in records}
    assert len(by_name) == 3 and "zz_truncated.png" in by_name["zz_truncated.png"]["error"]
    ok = [r for n, r in by_name.items() if n != "zz_truncated.png"]
    assert all(r["pnp_success"] and not r["error"] for r in ok)
    assert sorted(read_poses(out / "results.txt")) == ["0000.png", "0001.png"]
