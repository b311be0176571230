"""Fountain RGB-D loader (fake folders) and F-PnP on the real data (``shared_data``)."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from s2dloc.datasets.fountain import (
    FountainDataset,
    primesense_camera,
    read_trajectory_log,
)
from s2dloc.evaluation import SuccessCriterion, convergence_sweep, fpnp_solver
from s2dloc.evaluation.problems import pair_problem
from s2dloc.features import lift_textured_points, photometric_pyramid
from s2dloc.fpnp import FeatureMetricPnP

FOUNTAIN = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "fountain_rgbd"

# Camera-to-world of the fake frames: rotation by 90 deg about z, camera centre (1, 2, 3).
C2W = [[0, -1, 0, 1], [1, 0, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]]


def _log_entry(i: int, matrix) -> str:
    rows = "".join(" ".join(f"{v:g}" for v in row) + "\r\n" for row in matrix)
    return f"{i}\t{i}\t{i + 1}\r\n{rows}"


def _fake_fountain(root: Path, n: int = 3, size=(64, 48)) -> Path:
    """``n`` frames: textured RGB PNGs, uint16 depth 1500 mm (0 in the top-left corner)."""
    rng = np.random.default_rng(0)
    for sub in ("image", "depth", "scene"):
        (root / sub).mkdir(parents=True)
    w, h = size
    for i in range(n):
        bgr = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (3, 3), 0)
        bgr[0, 0] = (255, 0, 0)  # blue in BGR
        depth = np.full((h, w), 1500, np.uint16)
        depth[:2, :2] = 0
        cv2.imwrite(str(root / "image" / f"{i:07d}-{1000 * i:012d}.png"), bgr)
        cv2.imwrite(str(root / "depth" / f"{i:07d}-{1000 * i + 5:012d}.png"), depth)
    text = "".join(_log_entry(i, C2W) for i in range(n))
    (root / "scene" / "key.log").write_bytes(text.encode())
    return root


def _lift_frame(frame, num_points: int = 1024, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Lift well-textured pixels with valid depth to world points.

    Pixels are chosen among the stronger image gradients (above the median), away from the
    border and from depth discontinuities (the toy example's selection).

    Returns:
        points3d ``(N, 3)`` float64 world coordinates and their pixels ``(N, 2)`` float64 in
        ``frame`` (pixel centres), ``N <= num_points``.
    """
    rgb = frame.image.astype(np.float32)
    rng = np.random.default_rng(seed)
    points, pixels, _ = lift_textured_points(
        rgb, frame.depth, frame.camera, frame.cam_from_world, num_points, rng
    )
    return points, pixels


def test_camera_to_world_conversion(tmp_path):
    ds = FountainDataset(_fake_fountain(tmp_path))
    assert len(ds) == 3
    pose = ds[1].cam_from_world
    # cam_from_world = inverse of C2W: R = Rz(90)^T, t = -R^T c with c = (1, 2, 3).
    R = np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]], float)
    np.testing.assert_allclose(pose.R.numpy(), R, atol=1e-12)
    np.testing.assert_allclose(pose.t.numpy(), [-2, 1, -3], atol=1e-12)
    np.testing.assert_allclose(pose.center().numpy(), [1, 2, 3], atol=1e-12)
    # A point 1 m in front of the camera lands 1 m along the camera's z axis (world z here).
    X = torch.tensor([[1.0, 2.0, 4.0]], dtype=torch.float64)
    np.testing.assert_allclose(pose.transform(X).numpy(), [[0, 0, 1]], atol=1e-12)


def test_frame_contents(tmp_path):
    frame = FountainDataset(_fake_fountain(tmp_path))[0]
    assert frame.name == "0000000-000000000000.png"
    assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
    assert tuple(frame.image[0, 0]) == (0, 0, 255)  # RGB order
    assert frame.depth.dtype == np.float32 and frame.depth[5, 5] == pytest.approx(1.5)
    assert frame.depth[0, 0] == 0
    assert frame.camera.model == "PINHOLE"
    np.testing.assert_allclose(frame.camera.params.numpy(), [52.5, 52.5, 32.0, 24.0])


def test_primesense_camera_pixel_convention():
    # Open3D's cx, cy = 319.5, 239.5 (integer pixel centres) -> 320, 240 (centres at +0.5).
    cam = primesense_camera()
    np.testing.assert_allclose(cam.params.numpy(), [525, 525, 320, 240])
    p, _ = cam.project(torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64))
    np.testing.assert_allclose(p.numpy(), [[320, 240]])  # the image centre


def test_lift_frame_reprojects(tmp_path):
    frame = FountainDataset(_fake_fountain(tmp_path))[2]
    points, pixels = _lift_frame(frame, num_points=50, seed=0)
    assert points.shape == (50, 3) and pixels.shape == (50, 2)
    X = frame.cam_from_world.transform(points)
    np.testing.assert_allclose(X[:, 2].numpy(), 1.5, rtol=1e-6)
    p, _ = frame.camera.project(X)
    np.testing.assert_allclose(p.numpy(), pixels.numpy(), atol=1e-9)
    assert torch.equal(_lift_frame(frame, 50, seed=0)[1], pixels)  # seeded


@pytest.mark.parametrize(
    "line, content, message",
    [
        (2, "0.1 0.2 abc 0.4", "key.log:2: expected 4 finite numbers"),
        (6, "1 1", "key.log:6: expected a metadata line"),
        (3, "0.1 0.2 0.3", "key.log:3: expected 4 finite numbers"),
    ],
)
def test_malformed_key_log(tmp_path, line, content, message):
    root = _fake_fountain(tmp_path)
    log = root / "scene" / "key.log"
    lines = log.read_bytes().decode().split("\r\n")
    lines[line - 1] = content
    log.write_bytes("\r\n".join(lines).encode())
    with pytest.raises(ValueError, match=message):
        read_trajectory_log(log)


def test_truncated_and_non_rotation(tmp_path):
    log = tmp_path / "key.log"
    log.write_text(_log_entry(0, C2W)[:-20])
    with pytest.raises(ValueError, match="truncated|expected 4 finite"):
        read_trajectory_log(log)
    log.write_text(_log_entry(0, [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    with pytest.raises(ValueError, match="key.log:2: the 3x3 block is not a rotation"):
        read_trajectory_log(log)


def test_mismatched_counts_and_missing_folders(tmp_path):
    root = _fake_fountain(tmp_path / "a")
    next((root / "depth").iterdir()).unlink()
    with pytest.raises(ValueError, match="mismatched counts: 3 images .* 2 depth maps .* 3 poses"):
        FountainDataset(root)
    root = _fake_fountain(tmp_path / "b")
    for f in (root / "image").iterdir():
        f.unlink()
    (root / "image").rmdir()
    with pytest.raises(ValueError, match="Missing folder: .*image"):
        FountainDataset(root)
    with pytest.raises(ValueError, match="Missing Fountain"):
        FountainDataset(tmp_path / "nowhere")


# ---------------------------------------------------------------------------- real data
needs_fountain = pytest.mark.skipif(
    not FOUNTAIN.is_dir(), reason=f"Fountain RGB-D data not found at {FOUNTAIN}"
)


@pytest.fixture(scope="module")
def fountain():
    return FountainDataset(FOUNTAIN)


@pytest.mark.shared_data
@needs_fountain
def test_real_loader_and_pose_convention(fountain):
    assert len(fountain) == 33
    for i in (0, 10, 20, 31):
        ref, query = fountain[i], fountain[i + 1]
        assert ref.image.shape == (480, 640, 3) and 0.3 < ref.depth[ref.depth > 0].mean() < 4
        points, _ = _lift_frame(ref, num_points=500, seed=i)
        X = query.cam_from_world.transform(points)
        p, _ = query.camera.project(X)
        inside = query.camera.in_image(p) & (X[:, 2] > 0)
        assert inside.float().mean() > 0.5, f"frames {i}->{i + 1}: too little overlap"
        # The projected depth agrees with the neighbour's own depth map (a few cm).
        u, v = p[inside].long().T
        z_obs = torch.from_numpy(query.depth)[v, u].double()
        ok = z_obs > 0
        assert (X[inside][ok, 2] - z_obs[ok]).abs().median() < 0.05
        # The opposite (camera-to-world) reading would put most points out of view.
        Xw = query.cam_from_world.inv().transform(ref.cam_from_world.transform(points))
        assert query.camera.in_image(query.camera.project(Xw)[0]).float().mean() < 0.3


@pytest.mark.shared_data
@needs_fountain
def test_real_refinement_from_3deg(fountain):
    torch.set_num_threads(2)
    pairs = [(0, 1), (8, 9), (16, 17), (24, 25)]
    extractor = partial(photometric_pyramid, strides=(1, 2, 4, 8), blur=1.0)

    def make(k):
        i, j = pairs[k]
        return pair_problem(fountain[i], fountain[j], 1024, seed=k, extractor=extractor)

    criterion = SuccessCriterion(max_rotation_deg=2.0, max_translation=0.05, relative=False)
    solver = fpnp_solver(FeatureMetricPnP(), 8)
    (row,) = convergence_sweep(
        make, solver, [3.0], trials=3, num_problems=len(pairs), criterion=criterion, progress=False
    )
    assert row.success_rate > 0.5, (row.rot_final, row.trans_final)
    assert row.median("rot_final") < 0.6 * row.median("rot_init")
    assert row.median("trans_final") < 0.6 * row.median("trans_init")
    assert math.isclose(row.median("rot_init"), 3.0, rel_tol=1e-6)
