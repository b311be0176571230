"""NVM measurement conventions: centre-relative (VisualSfM) and absolute pixels (COLMAP's
exporter) are told apart by reprojection; a file that fits neither is refused."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from s2dloc.datasets.nvm import ABSOLUTE, CENTRED, NvmModel, read_nvm, reprojection_errors
from s2dloc.geometry import Camera, Pose

SIZE = (640, 480)
F = 500.0


def synthetic_nvm(path, convention, noise=0.3, seed=0, shuffle=False):
    """Three cameras looking at 80 points 4-8 m away, measurements from their PINHOLE
    projections (principal point at the image centre) plus ``noise`` px."""
    rng = np.random.default_rng(seed)
    camera = Camera.from_colmap("PINHOLE", *SIZE, [F, F, SIZE[0] / 2, SIZE[1] / 2])
    poses = [
        Pose.exp(torch.tensor([0.3 * k, 0.1, 0.0, 0.0, 0.05 * k, 0.02], dtype=torch.float64))
        for k in range(3)
    ]
    X = np.c_[rng.uniform(-2, 2, (80, 2)), rng.uniform(4, 8, 80)]
    lines = []
    for k, pose in enumerate(poses):
        q, c = pose.quat().numpy(), pose.center().numpy()
        lines.append(
            f"im{k}.jpg {F} {' '.join(map(repr, q.tolist()))} {' '.join(map(repr, c.tolist()))} 0 0"
        )
    pixels = []
    for pose in poses:
        p, _ = camera.project(pose.transform(torch.from_numpy(X)))
        pixels.append(p.numpy() + rng.normal(0, noise, (len(X), 2)))
    if shuffle:  # measurements of other points: consistent with no camera
        pixels = [p[rng.permutation(len(p))] for p in pixels]
    offset = np.asarray(SIZE) / 2 if convention == CENTRED else np.zeros(2)
    pts = []
    for i, x in enumerate(X):
        obs = [v for k in range(3) for v in (k, i, *(pixels[k][i] - offset).tolist())]
        pts.append(" ".join(map(str, [*x.tolist(), 10, 20, 30, 3, *obs])))
    path.write_text("NVM_V3\n\n" + "\n".join([str(len(lines)), *lines, "", str(len(pts)), *pts]))
    return X, pixels


@pytest.mark.parametrize("convention", [CENTRED, ABSOLUTE])
def test_convention_detected_and_pixels_recovered(tmp_path, convention):
    path = tmp_path / "model.nvm"
    _, pixels = synthetic_nvm(path, convention)
    model = read_nvm(path, size=SIZE)
    assert model.convention == convention
    assert 0.1 < model.reprojection_error < 1.0  # about the 0.3 px noise
    for k in range(3):
        obs = np.stack([o[o[:, 0] == k][0] for o in model.observations])
        np.testing.assert_allclose(NvmModel.pixels(obs[:, 2:], SIZE), pixels[k], atol=1e-9)


def test_errors_under_both_hypotheses(tmp_path):
    path = tmp_path / "model.nvm"
    synthetic_nvm(path, ABSOLUTE, noise=0.0)
    errors = reprojection_errors(read_nvm(path, size=SIZE), SIZE)
    # Read back as centre-relative: the model's observations now fit with no offset at all.
    assert errors[CENTRED] < 1e-6 and errors[ABSOLUTE] > 300  # |(320, 240)| = 400 px off


def test_inconsistent_measurements_are_refused(tmp_path):
    path = tmp_path / "model.nvm"
    synthetic_nvm(path, CENTRED, shuffle=True)
    with pytest.raises(ValueError, match=re.escape(f"{path}: the 2D measurements fit")):
        read_nvm(path, size=SIZE)


def test_wrong_image_size_is_refused_for_absolute_measurements(tmp_path):
    path = tmp_path / "model.nvm"
    synthetic_nvm(path, ABSOLUTE)
    with pytest.raises(ValueError, match=r"neither NVM convention for 1024x1024 images"):
        read_nvm(path)  # the default size is RobotCar's 1024x1024


def test_models_without_observations_default_to_centred(tmp_path):
    path = tmp_path / "model.nvm"
    path.write_text("NVM_V3\n1\na.jpg 400 1 0 0 0 0 0 0 0 0\n1\n0 0 5 1 2 3 0\n")
    model = read_nvm(path)
    assert model.convention == CENTRED and np.isnan(model.reprojection_error)
    assert model.points3D.shape == (1, 3)
