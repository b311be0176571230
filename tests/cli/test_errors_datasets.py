"""User errors in models, checkpoints and generator settings: a one-line message naming the file
or the option, and exit code 2 (no traceback)."""

from __future__ import annotations

import dataclasses
import logging
import shutil

import pycolmap
import pytest
import torch

from s2dloc.cli import main
from s2dloc.datasets.synthetic.world import PRESETS, generate_world
from s2dloc.datasets.synthetic.write import write_world
from s2dloc.features import registry
from s2dloc.features.gnnet import GNNet


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny synthetic world on disk (sfm/ binary model, images/, query list)."""
    cfg = dataclasses.replace(PRESETS["tiny"], num_db=4, num_query=2)
    out = tmp_path_factory.mktemp("world")
    write_world(generate_world(cfg, progress=False), out, progress=False)
    return out


def _fails(argv: list[str], caplog, *expected: str) -> str:
    """Run the CLI; it must exit with 2 and log one line holding every ``expected`` text."""
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="s2dloc"):
        assert main(argv) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--width", "100000"], "s2dloc synth --width must be within 16-4096 pixels, got 100000"),
        (["--height", "8"], "--height must be within 16-4096 pixels, got 8"),
        (["--fov", "180"], "s2dloc synth --fov must be within 10-170 degrees, got 180"),
        (["--num-db", "0"], "--num-db must be within 1-10000 images, got 0"),
        (
            ["--camera-model", "SIMPLE_RADIAL", "--fov", "150"],
            "field of view 150 deg is too wide for a SIMPLE_RADIAL camera",
        ),
    ],
)
def test_synth_settings_out_of_range(tmp_path, caplog, args, expected):
    _fails(["synth", "--out", str(tmp_path / "w"), "--preset", "tiny", *args], caplog, expected)
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("points", ["0", "9", "-5"])
def test_toy_too_few_points(tmp_path, caplog, points):
    _fails(
        ["toy", "--out", str(tmp_path), "--points", points],
        caplog,
        "s2dloc toy --points must be >= 10",
        f"got {points}",
    )


def _damaged_model(world, tmp_path, name: str, keep: float | None):
    model = tmp_path / "model"
    shutil.copytree(world / "sfm", model)
    data = (model / name).read_bytes()
    damaged = data[: int(keep * len(data))] if keep is not None else bytes(len(data))[:8] + data
    (model / name).write_bytes(damaged)
    return model


@pytest.mark.parametrize(
    ("name", "keep", "expected"),
    [
        ("images.bin", 0.5, "images.bin: truncated: the "),
        ("cameras.bin", 0.9, "cameras.bin: truncated: the 4 parameters of PINHOLE camera"),
        ("points3D.bin", 0.3, "points (at least 51 bytes each) but"),
        ("points3D.bin", None, "unexpected bytes after the last record (at byte 8)"),
    ],
)
def test_map_import_of_a_damaged_model(world, tmp_path, caplog, name, keep, expected):
    model = _damaged_model(world, tmp_path, name, keep)
    argv = [
        "map",
        "--import-model",
        str(model),
        "--images",
        str(world / "images"),
        "--out",
        str(tmp_path / "out"),
    ]
    _fails(argv, caplog, str(model / name), expected)


def test_localize_on_a_damaged_map(world, tmp_path, caplog):
    bad = tmp_path / "world"
    shutil.copytree(world, bad)
    data = (bad / "sfm" / "images.bin").read_bytes()
    (bad / "sfm" / "images.bin").write_bytes(data[:100])
    argv = [
        "localize",
        "--map",
        str(bad),
        "--queries",
        str(world / "queries_with_intrinsics.txt"),
        "--out",
        str(tmp_path / "out"),
    ]
    _fails(argv, caplog, str(bad / "sfm" / "images.bin"), "truncated")


def _localize_with(world, tmp_path, extractor) -> list[str]:
    return [
        "localize",
        "--map",
        str(world),
        "--queries",
        str(world / "queries_with_intrinsics.txt"),
        "--out",
        str(tmp_path / "out"),
        "--extractor",
        str(extractor),
    ]


def test_localize_with_a_truncated_checkpoint(world, tmp_path, caplog):
    path = registry.save_checkpoint(GNNet(channels=8, widths=(8, 8, 16, 16)), tmp_path / "m.pt")
    path.write_bytes(path.read_bytes()[:2000])
    _fails(
        _localize_with(world, tmp_path, path),
        caplog,
        f"{path}: not a readable checkpoint",
        "truncated",
    )


def test_localize_with_mismatched_weights(world, tmp_path, caplog):
    path = registry.save_checkpoint(GNNet(channels=8, widths=(8, 8, 16, 16)), tmp_path / "m.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["heads.0.weight"] = torch.zeros(3, 3)
    torch.save(ckpt, path)
    _fails(
        _localize_with(world, tmp_path, path),
        caplog,
        f"{path}: the weights do not fit the gnnet model",
        "shape mismatches 1 (heads.0.weight (3, 3) vs (8, 8, 1, 1))",
    )


@pytest.mark.parametrize(
    "command",
    [
        ["synth", "--preset", "tiny"],
        ["toy"],
        ["demo"],
        ["map", "--import-model", "{world}/sfm", "--images", "{world}/images"],
        ["localize", "--map", "{world}", "--queries", "{world}/queries_with_intrinsics.txt"],
        ["evaluate", "--results", "{world}/poses_query.txt", "--gt", "{world}/poses_query.txt"],
    ],
    ids=lambda c: c[0],
)
@pytest.mark.parametrize("below", [False, True], ids=["file", "below-a-file"])
def test_an_output_path_through_a_file_is_refused(world, tmp_path, caplog, command, below):
    """``--out FILE`` (``--plot FILE/x.png`` for evaluate) and a path below a file: one line
    naming the path, exit 2, and the file is left alone."""
    blocker = tmp_path / "afile"
    blocker.write_text("keep")
    target = blocker / "sub" if below else blocker
    argv = [a.format(world=world) for a in command]
    if command[0] == "evaluate":
        target = blocker / "plot.png"  # a PNG path below a file
        argv += ["--plot", str(target)]
    else:
        argv += ["--out", str(target)]
    _fails(argv, caplog, str(blocker), "expected a folder")
    assert blocker.read_text() == "keep"


def test_map_refuses_implausible_cameras(world, tmp_path, caplog):
    """``--camera`` with a negative focal stops before SfM; an imported model whose camera has
    one is refused naming the model, the camera and its image (exit 2, no map written)."""
    images = str(world / "images")
    bad = "PINHOLE 160 120 -100 -100 80 60"
    argv = ["map", "--images", images, "--out", str(tmp_path / "sfm"), "--camera", bad]
    _fails(argv, caplog, f"setting 'camera' = '{bad}'", "focal length must be > 0")
    assert not (tmp_path / "sfm").exists()
    model = tmp_path / "model"
    shutil.copytree(world / "sfm", model)
    rec = pycolmap.Reconstruction(str(model))
    camera_id, camera = next(iter(rec.cameras.items()))
    params = camera.params.copy()
    params[0] = -params[0]
    camera.params = params
    rec.write(str(model))
    argv = ["map", "--import-model", str(model), "--images", images, "--out", str(tmp_path / "m")]
    _fails(argv, caplog, f"{model}: camera {camera_id} of image", "focal length must be > 0")
    assert not (tmp_path / "m").exists()
