"""Toy problem cameras: every model, distortion padded with zeros, bad input rejected."""

from __future__ import annotations

import pytest

from s2dloc.datasets.toy import make_toy_problem


@pytest.mark.parametrize(
    ("model", "distortion", "params"),
    [
        ("PINHOLE", (), [51.2, 51.2, 32.0, 24.0]),
        ("SIMPLE_RADIAL", (), [51.2, 32.0, 24.0, 0.0]),
        ("RADIAL", (0.01,), [51.2, 32.0, 24.0, 0.01, 0.0]),
        ("OPENCV", (0.01, 0.0, 0.001), [51.2, 51.2, 32.0, 24.0, 0.01, 0.0, 0.001, 0.0]),
    ],
)
def test_camera_of_each_model(model, distortion, params):
    problem = make_toy_problem(
        width=64, height=48, num_points=16, camera_model=model, distortion=distortion
    )
    assert problem.camera.model == model
    assert problem.camera.params.tolist() == pytest.approx(params)
    assert len(problem.points3d) == 16


def test_bad_camera_requests():
    with pytest.raises(ValueError, match="takes 0 distortion"):
        make_toy_problem(width=64, height=48, camera_model="PINHOLE", distortion=(0.1,))
    with pytest.raises(ValueError, match="Unsupported camera model"):
        make_toy_problem(width=64, height=48, camera_model="FISHEYE")


@pytest.mark.parametrize("num_points", [0, 9, -1, 16.0])
def test_too_few_or_non_integer_points(num_points):
    with pytest.raises(ValueError, match=r"num_points must be an integer >= 10"):
        make_toy_problem(width=64, height=48, num_points=num_points)


def test_too_small_image():
    with pytest.raises(ValueError, match=r"width and height must be >= 32 pixels, got 64x16"):
        make_toy_problem(width=64, height=16)
