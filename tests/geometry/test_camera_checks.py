"""Camera plausibility checks: focal, field of view, principal point, monotonic distortion."""

import math

import pytest
import torch

from s2dloc.geometry import Camera
from s2dloc.geometry.camera_checks import (
    camera_problems,
    check_camera,
    field_of_view,
    fold_radius,
    max_distorted_radius,
)
from s2dloc.geometry.distortion import distortion_valid


def _cam(model, params, size=(640, 480)):
    return Camera.from_colmap(model, size[0], size[1], params)


def test_plausible_cameras_pass():
    for cam in (
        _cam("PINHOLE", [500, 500, 320, 240]),
        _cam("SIMPLE_RADIAL", [500, 320, 240, -0.2]),
        _cam("RADIAL", [500, 320, 240, 0.1, 0.05]),
        _cam("OPENCV", [500, 510, 300, 250, -0.1, 0.01, 1e-3, 1e-3]),
    ):
        assert camera_problems(cam) == []
        assert check_camera(cam) is cam


@pytest.mark.parametrize(
    ("model", "params", "rule"),
    [
        ("PINHOLE", [-500, 500, 320, 240], "focal length must be > 0"),
        ("PINHOLE", [500, 500, 700, 240], "principal point (700, 240) must lie inside"),
        ("PINHOLE", [500, 500, 320, -1], "principal point"),
        ("PINHOLE", [20, 20, 320, 240], "horizontal field of view 172.8 deg"),  # 2 atan(16)
        ("PINHOLE", [5000, 5000, 320, 240], "vertical field of view 5.5 deg"),  # 2 atan(0.048)
        ("SIMPLE_RADIAL", [500, 320, 240, -0.3], "folds over at normalized radius 0.703"),
        # a huge pincushion squeezes the view into a degree: r (1 + k r^2) = 0.64 at r ~ 0.0086
        ("SIMPLE_RADIAL", [500, 320, 240, 1e6], "horizontal field of view 1.0 deg"),
        ("RADIAL", [500, 320, 240, 0.0, 1e6], "vertical field of view"),
    ],
)
def test_implausible_cameras_name_the_rule(model, params, rule):
    with pytest.raises(ValueError) as err:
        check_camera(_cam(model, params), "query 'q/0001.jpg'")
    assert rule in str(err.value)
    assert "query 'q/0001.jpg'" in str(err.value) and model in str(err.value)


def test_fold_radius_known_answers_and_reference():
    # k2 = 0: 1 + 3 k1 r^2 = 0 -> r = sqrt(-1 / (3 k1)); the reach is 2/3 of it.
    assert fold_radius(-0.3, 0.0) == pytest.approx(math.sqrt(1 / 0.9))
    assert max_distorted_radius(-0.3, 0.0) == pytest.approx(2 / 3 * math.sqrt(1 / 0.9))
    assert math.isinf(fold_radius(0.1, 0.0)) and math.isinf(fold_radius(0.0, 0.0))
    assert math.isinf(fold_radius(0.1, 0.05))  # pincushion: never folds
    # Against the projection's own validity mask (an independent formulation).
    for k1, k2 in ((-0.3, 0.0), (-0.5, 0.1), (0.2, -0.4), (-0.05, -0.02)):
        r = fold_radius(k1, k2)
        assert math.isfinite(r)
        xy = torch.tensor([[[r * 0.999, 0.0], [r * 1.001, 0.0]]], dtype=torch.float64)
        dist = torch.tensor([[[k1, k2, 0.0, 0.0]]], dtype=torch.float64)
        assert distortion_valid(xy, dist).tolist() == [[True, False]]


def test_distortion_limit_depends_on_the_image_corner():
    # Corner of a 640x480 image at f=500, centred: normalized radius 400 / 500 = 0.8.
    assert camera_problems(_cam("SIMPLE_RADIAL", [500, 320, 240, -0.2])) == []  # reach 0.861
    assert camera_problems(_cam("SIMPLE_RADIAL", [500, 320, 240, -0.2], (800, 600))) != []


@pytest.mark.parametrize("k1, k2", [(0.0, 0.0), (-0.2, 0.0), (0.1, 0.05), (50.0, 0.0), (1e6, 0.0)])
def test_field_of_view_rays_project_onto_the_image_borders(k1, k2):
    cam = _cam("RADIAL", [500, 300, 240, k1, k2])
    left = math.radians(field_of_view(500, 300, 600, k1, k2)) / 2  # 300 px on either side
    right = math.radians(field_of_view(500, 300, 640, k1, k2)) - left
    rays = torch.tensor([[-math.tan(left), 0, 1], [math.tan(right), 0, 1]], dtype=torch.float64)
    px, _ = cam.double().project(rays)
    assert px[:, 0].tolist() == pytest.approx([0.0, 640.0], abs=1e-6)
