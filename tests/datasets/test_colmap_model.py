"""COLMAP model folders: damaged binary or text files give a ValueError naming the file."""

from __future__ import annotations

import re
import struct

import numpy as np
import pycolmap
import pytest

from s2dloc.datasets.colmap_model import (
    CAMERA_MODELS,
    check_cameras_bin,
    check_images_bin,
    check_model,
    check_points3D_bin,
    read_model,
)

CAMERAS = (
    "# Number of cameras: 2\n1 PINHOLE 64 48 50 50 32 24\n2 SIMPLE_RADIAL 80 60 70 40 30 0.01\n"
)
IMAGES = (
    "# Number of images: 3, mean observations per image: 1\n"
    "1 1 0 0 0 0 0 0 1 a.png\n10.5 11.5 1 20 21 -1\n"
    "2 1 0 0 0 1 0 0 1 b.png\n12.5 13.5 1\n"
    "3 1 0 0 0 2 0 0 2 sub/c.png\n\n"
)
POINTS = "# Number of points: 1, mean track length: 2\n1 0.5 0.25 4 10 20 30 0.1 1 0 2 0\n"


@pytest.fixture
def model_dirs(tmp_path):
    """A tiny text model and the same model written in binary by pycolmap."""
    txt, binary = tmp_path / "txt", tmp_path / "bin"
    txt.mkdir()
    binary.mkdir()
    for name, text in (("cameras", CAMERAS), ("images", IMAGES), ("points3D", POINTS)):
        (txt / f"{name}.txt").write_text(text)
    pycolmap.Reconstruction(str(txt)).write_binary(str(binary))
    return txt, binary


def test_good_models_read(model_dirs):
    txt, binary = model_dirs
    assert check_model(txt) == "txt" and check_model(binary) == "bin"
    assert check_cameras_bin(binary / "cameras.bin") == {1, 2}
    assert check_images_bin(binary / "images.bin", {1, 2}) == 3
    assert check_points3D_bin(binary / "points3D.bin") == 1
    rec = read_model(binary)
    assert rec.num_images() == 3 and rec.num_points3D() == 1
    assert sorted(im.name for im in rec.images.values()) == ["a.png", "b.png", "sub/c.png"]


def test_camera_model_table_matches_pycolmap():
    for model_id, (name, num_params) in CAMERA_MODELS.items():
        cam = pycolmap.Camera.create_from_model_id(1, model_id, 100.0, 10, 10)
        assert (cam.model.name, len(cam.params)) == (name, num_params)


@pytest.mark.parametrize("name", ["cameras.bin", "images.bin", "points3D.bin"])
@pytest.mark.parametrize("keep", [0, 5, 0.5, -1])
def test_truncated_binary_files(model_dirs, name, keep):
    _, binary = model_dirs
    path = binary / name
    data = path.read_bytes()
    cut = int(keep * len(data)) if isinstance(keep, float) else keep % len(data)
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=re.escape(str(path)) + r": (truncated|the header says)"):
        read_model(binary)


@pytest.mark.parametrize("name", ["cameras.bin", "images.bin", "points3D.bin"])
@pytest.mark.parametrize("seed", range(5))
def test_garbage_binary_files(model_dirs, name, seed):
    _, binary = model_dirs
    path = binary / name
    size = len(path.read_bytes())
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_model(binary)


def test_specific_damage_is_named(model_dirs):
    _, binary = model_dirs
    cams = binary / "cameras.bin"
    good = cams.read_bytes()
    cams.write_bytes(good[:12] + struct.pack("<i", 99) + good[16:])
    with pytest.raises(ValueError, match=r"cameras\.bin: camera 1 \(record 0\) has model id 99"):
        read_model(binary)
    cams.write_bytes(good + b"\0\0")
    with pytest.raises(ValueError, match=r"cameras\.bin: 2 unexpected bytes after the last"):
        read_model(binary)
    cams.write_bytes(good)
    with pytest.raises(ValueError, match=r"images\.bin: image \d \(record \d\) uses camera 2, "):
        check_images_bin(binary / "images.bin", {1})


def test_truncated_text_file_against_its_header(model_dirs):
    txt, _ = model_dirs
    path = txt / "points3D.txt"
    path.write_text(POINTS.splitlines()[0] + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: the header says 1 points but")):
        read_model(txt)
    path.write_text(POINTS)
    path = txt / "images.txt"
    path.write_text("\n".join(IMAGES.splitlines()[:3]) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: the header says 3 images but")):
        read_model(txt)


def test_not_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_model(tmp_path / "nowhere")
    (tmp_path / "images.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"is not a COLMAP model: expected cameras, images"):
        read_model(tmp_path)


def test_pycolmap_errors_become_value_errors(model_dirs):
    txt, _ = model_dirs
    (txt / "images.txt").write_text("# no count\n1 1 0 0 0 0 0 0 7 a.png\n\n")  # camera 7: none
    with pytest.raises(ValueError, match=re.escape(f"could not read the COLMAP model {txt}: ")):
        read_model(txt)
