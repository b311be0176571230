"""A small rendered image sequence (10 views sliding along a synthetic street) and its SfM map."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from s2dloc.datasets.synthetic import SCENES, look_at
from s2dloc.datasets.synthetic.world import make_camera, render_view
from s2dloc.geometry import Pose

SEQUENCE_CAMERA = make_camera("PINHOLE", 320, 240, 65.0)


def render_sequence(
    folder: Path,
    num: int = 10,
    step: float = 0.25,
    start: float = 4.0,
    condition: str = "reference",
    depths: dict | None = None,
) -> dict[str, Pose]:
    """Render ``num`` 320x240 views as PNGs into ``folder``.

    Views are 0.25 m apart (less than the 3 m texture period) and look 45 degrees off the street
    axis. Returns the ground-truth cam_from_world poses by name (and fills ``depths`` with the
    (H, W) depth maps by name when given)."""
    scene, camera = SCENES["street"](0), SEQUENCE_CAMERA
    heading = np.deg2rad(45.0)
    folder.mkdir(parents=True, exist_ok=True)
    poses = {}
    for i in range(num):
        c = np.array([0.0, start + step * i, 1.6])
        R, _ = look_at(c, c + np.array([np.cos(heading), np.sin(heading), -0.07]))
        pose = Pose.from_Rt(R, -R @ c)
        view = render_view(scene, camera, pose, condition, np.random.default_rng(i))
        rgb = (np.clip(view.rgb, 0, 1) * 255).round().astype(np.uint8)
        cv2.imwrite(str(folder / f"{i:04d}.png"), rgb[..., ::-1])
        poses[f"{i:04d}.png"] = pose
        if depths is not None:
            depths[f"{i:04d}.png"] = view.depth
    return poses


@pytest.fixture(scope="session")
def sequence(tmp_path_factory) -> tuple[Path, dict[str, Pose]]:
    folder = tmp_path_factory.mktemp("own") / "images"
    return folder, render_sequence(folder)


@pytest.fixture(scope="session")
def sfm_map(sequence, tmp_path_factory) -> tuple[Path, dict]:
    from s2dloc.mapping import SfMConfig, build_map

    out = tmp_path_factory.mktemp("map")
    summary = build_map(sequence[0], out, SfMConfig(num_threads=1, single_camera=True))
    return out, summary


def align_to_gt(est: dict, ref: dict):
    """Similarity ``X_gt = s R_s X_est + t`` from poses ``{name: (R, t)}`` of both frames.

    The rotation comes from the camera orientations (``R_gt = R_est R_s^T``), since the camera
    centres of a straight sequence lie on a line; scale and offset from the centres. Returns
    ``(R_sT, s, mean_est, mean_gt)`` with aligned centres ``s (c_est R_sT - mean_est) + mean_gt``.
    """
    names = sorted(est)
    U, _, Vt = np.linalg.svd(sum(est[n][0].T @ ref[n][0] for n in names))
    R_sT = U @ np.diag([1, 1, np.linalg.det(U @ Vt)]) @ Vt
    c_est = np.array([-est[n][0].T @ est[n][1] for n in names]) @ R_sT
    c_gt = np.array([-ref[n][0].T @ ref[n][1] for n in names])
    a, b = c_est - c_est.mean(0), c_gt - c_gt.mean(0)
    return R_sT, float((a * b).sum() / (a * a).sum()), c_est.mean(0), c_gt.mean(0)
