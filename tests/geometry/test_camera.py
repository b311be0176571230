"""Tests of the batched COLMAP cameras (s2dloc.geometry.camera) against pycolmap."""

from __future__ import annotations

import math

import numpy as np
import pycolmap
import pytest
import torch

from s2dloc.geometry.camera import MODELS, Camera

from ._helpers import assert_close, gen, randn

W, H = 640, 480
PARAMS = {
    "SIMPLE_PINHOLE": [500.0, 320.0, 240.0],
    "PINHOLE": [500.0, 520.0, 319.5, 241.2],
    "SIMPLE_RADIAL": [500.0, 321.0, 239.0, -0.1],
    "RADIAL": [480.0, 320.0, 240.0, -0.12, 0.03],
    "OPENCV": [500.0, 510.0, 322.0, 238.0, -0.12, 0.03, 0.001, -0.002],
}
ALL_MODELS = list(PARAMS)


def _cameras(model: str, dtype=torch.float64) -> tuple[Camera, pycolmap.Camera]:
    ref = pycolmap.Camera(model=model, width=W, height=H, params=PARAMS[model])
    return Camera.from_colmap(model, W, H, PARAMS[model], dtype=dtype), ref


def _border_and_random_pixels(n_random: int = 200, seed: int = 0) -> np.ndarray:
    """Pixels on and next to the image border (corners, edges, outer pixel centres) + random."""
    edge = [0.0, 0.5, 1.0, 2.5]
    us = edge + [W - v for v in edge] + [W / 2]
    vs = edge + [H - v for v in edge] + [H / 2]
    grid = np.array([(u, v) for u in us for v in vs], dtype=np.float64)
    rand = torch.rand(n_random, 2, generator=gen(seed), dtype=torch.float64).numpy() * [W, H]
    return np.concatenate([grid, rand])


def _points_from_pixels(ref: pycolmap.Camera, pixels: np.ndarray, seed: int = 1) -> np.ndarray:
    """3D camera-frame points (random depths) that pycolmap projects onto ``pixels``."""
    xy = ref.cam_from_img(pixels)
    depth = 0.5 + 10 * torch.rand(len(pixels), 1, generator=gen(seed), dtype=torch.float64).numpy()
    return np.concatenate([xy, np.ones_like(xy[:, :1])], 1) * depth


# ----- agreement with pycolmap
@pytest.mark.parametrize("model", ALL_MODELS)
def test_project_agrees_with_pycolmap(model):
    cam, ref = _cameras(model)
    pixels = _border_and_random_pixels()
    X = _points_from_pixels(ref, pixels)
    expected = ref.img_from_cam(X)
    p, valid = cam.project(torch.from_numpy(X))
    assert p.dtype == torch.float64
    assert_close(p, torch.from_numpy(expected), atol=1e-6, rtol=0)
    assert_close(p, torch.from_numpy(pixels), atol=1e-6, rtol=0)  # and hits the border pixels
    # margin 0: [0, W] x [0, H] is inside; points exactly on the edge may round either way
    inside = ((pixels > 1e-6) & (pixels < np.array([W, H]) - 1e-6)).all(1)
    assert inside.sum() > len(pixels) - 40 and valid[torch.from_numpy(inside)].all()


@pytest.mark.parametrize("model", ALL_MODELS)
def test_project_random_points_agrees_with_pycolmap(model):
    cam, ref = _cameras(model)
    X = randn(300, 3, seed=2) * torch.tensor([0.4, 0.3, 0.0], dtype=torch.float64)
    X[:, 2] = 1.0
    X = X * (1 + 5 * torch.rand(300, 1, generator=gen(3), dtype=torch.float64))
    p, _ = cam.project(X)
    assert_close(p, torch.from_numpy(ref.img_from_cam(X.numpy())), atol=1e-6, rtol=0)


@pytest.mark.parametrize("model", ALL_MODELS)
def test_unproject_agrees_with_pycolmap(model):
    cam, ref = _cameras(model)
    pixels = _border_and_random_pixels(seed=4)
    xy = cam.unproject(torch.from_numpy(pixels))
    assert xy.shape == (len(pixels), 2)
    assert_close(xy, torch.from_numpy(ref.cam_from_img(pixels)), atol=1e-10, rtol=0)


@pytest.mark.parametrize("model", ALL_MODELS)
def test_unproject_with_depth_then_project(model):
    cam, _ = _cameras(model)
    pixels = torch.from_numpy(_border_and_random_pixels(seed=5))
    depth = 1 + torch.rand(len(pixels), generator=gen(6), dtype=torch.float64)
    X = cam.unproject(pixels, depth)
    assert X.shape == (len(pixels), 3)
    assert_close(X[:, 2], depth)
    assert_close(cam.project(X)[0], pixels, atol=1e-8, rtol=0)


@pytest.mark.parametrize("model", ALL_MODELS)
def test_colmap_round_trip(model):
    ref = pycolmap.Camera(model=model, width=W, height=H, params=PARAMS[model])
    cam = Camera.from_colmap(ref)
    assert cam.model == model and cam.shape == () and cam.dtype == torch.float64
    assert_close(cam.size, torch.tensor([W, H], dtype=torch.float64), atol=0, rtol=0)
    assert_close(cam.params, torch.tensor(PARAMS[model], dtype=torch.float64), atol=0, rtol=0)
    back = cam.to_colmap()
    assert isinstance(back, pycolmap.Camera)
    assert back.model.name == model and (back.width, back.height) == (W, H)
    np.testing.assert_array_equal(np.asarray(back.params), np.asarray(PARAMS[model]))
    assert Camera.from_colmap(ref, dtype=torch.float32).dtype == torch.float32


@pytest.mark.parametrize("model", ALL_MODELS)
def test_as_opencv_projects_identically(model):
    cam, _ = _cameras(model)
    X = randn(50, 3, seed=7) * 0.3 + torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)
    assert_close(cam.as_opencv().project(X)[0], cam.project(X)[0])
    assert cam.as_opencv().model == "OPENCV"


def test_K_known_answer():
    cam, _ = _cameras("PINHOLE")
    expected = torch.tensor([[500.0, 0, 319.5], [0, 520.0, 241.2], [0, 0, 1]], dtype=torch.float64)
    assert_close(cam.K, expected, atol=0, rtol=0)
    assert_close(
        cam.K,
        torch.from_numpy(
            pycolmap.Camera(
                model="PINHOLE", width=W, height=H, params=PARAMS["PINHOLE"]
            ).calibration_matrix()
        ),
    )


# ----- scaling and the pixel-centre convention
@pytest.mark.parametrize("model", ALL_MODELS)
@pytest.mark.parametrize("s", [0.5, 0.25, 2.0, 1 / 3])
def test_scale_scales_pixels(model, s):
    cam, ref = _cameras(model)
    X = torch.from_numpy(_points_from_pixels(ref, _border_and_random_pixels(seed=8)))
    scaled = cam.scale(s)
    assert_close(scaled.size, cam.size * s)
    assert_close(scaled.project(X)[0], cam.project(X)[0] * s)
    if (W * s).is_integer() and (H * s).is_integer():  # pycolmap rounds the new size
        ref.rescale(s)
        assert_close(scaled.params, torch.from_numpy(np.asarray(ref.params)))


def test_scale_pixel_centre_convention():
    """Downsampling by 2: the centre of new pixel (0, 0) is (0.5, 0.5), which is (1, 1) in the
    original image (the mean of the centres 0.5 and 1.5 of the two source pixels)."""
    cam = Camera.from_colmap("PINHOLE", 8, 6, [10.0, 10.0, 4.0, 3.0])
    X = torch.from_numpy(_points_from_pixels(cam.to_colmap(), np.array([[1.0, 1.0], [8.0, 6.0]])))
    small = cam.scale(0.5)
    assert_close(small.project(X)[0], torch.tensor([[0.5, 0.5], [4.0, 3.0]], dtype=torch.float64))
    assert_close(small.params, torch.tensor([5.0, 5.0, 2.0, 1.5], dtype=torch.float64))


def test_scale_anisotropic():
    cam, _ = _cameras("PINHOLE")
    scaled = cam.scale([0.5, 0.25])
    assert_close(scaled.params, torch.tensor([250.0, 130.0, 159.75, 60.3], dtype=torch.float64))
    assert_close(scaled.size, torch.tensor([320.0, 120.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="isotropic"):
        _cameras("SIMPLE_RADIAL")[0].scale([0.5, 0.25])


# ----- validity mask
@pytest.mark.parametrize("model", ALL_MODELS)
def test_behind_camera_is_invalid(model):
    cam, _ = _cameras(model)
    X = torch.tensor(
        [[0.0, 0.0, -1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1e-4], [0.0, 0.0, 0.01], [0.01, 0.0, -2.0]],
        dtype=torch.float64,
    )
    p, valid = cam.project(X)
    assert valid.tolist() == [False, False, False, True, False]
    assert torch.isfinite(p).all()
    assert cam.project(X, min_depth=0.05)[1].tolist() == [False] * 5


def test_outside_image_with_margin():
    cam = Camera.from_colmap("PINHOLE", W, H, [100.0, 100.0, 0.0, 0.0])  # pixel = 100 * (x, y)
    xy = torch.tensor(
        [[5.0, 100.0], [0.0, 0.0], [W, H], [-0.1, 10.0], [10.0, H + 0.1], [W - 5.0, H - 5.0]],
        dtype=torch.float64,
    )
    X = torch.cat([xy / 100, torch.ones(6, 1, dtype=torch.float64)], -1)
    p, valid = cam.project(X)
    assert_close(p, xy)
    assert valid.tolist() == [True, True, True, False, False, True]
    assert cam.project(X, margin=4.9)[1].tolist() == [True, False, False, False, False, True]
    assert cam.project(X, margin=5.1)[1].tolist() == [False] * 6


@pytest.mark.parametrize(
    ("model", "params", "r2_valid", "r2_invalid"),
    [
        # k < 0: d(r (1 + k r^2))/dr = 1 + 3 k r^2 vanishes at r^2 = 1 / (3 * 0.3) = 1.11
        ("SIMPLE_RADIAL", [100.0, 500.0, 500.0, -0.3], [0.5, 1.1], [1.12, 1.5, 3.0]),
        # 1 - 1.5 r^2 + 0.5 r^4 vanishes at r^2 = 1 and 2; beyond 2 it is positive again but the
        # model has already folded over: still invalid.
        ("RADIAL", [100.0, 500.0, 500.0, -0.5, 0.1], [0.5, 0.99], [1.01, 1.5, 2.5, 3.0, 5.0]),
        ("OPENCV", [100.0, 100.0, 500.0, 500.0, -0.3, 0.0, 0.0, 0.0], [1.1], [1.12, 2.0]),
    ],
)
def test_distortion_fold_over_is_invalid(model, params, r2_valid, r2_invalid):
    cam = Camera.from_colmap(model, 1000, 1000, params)
    r2 = torch.tensor(r2_valid + r2_invalid, dtype=torch.float64)
    d = torch.tensor([0.6, 0.8], dtype=torch.float64)
    X = torch.cat([r2.sqrt()[:, None] * d, torch.ones(len(r2), 1, dtype=torch.float64)], -1)
    p, valid = cam.project(X)
    assert cam.in_image(p).all()  # inside the image: only the distortion check rejects them
    assert valid.tolist() == [True] * len(r2_valid) + [False] * len(r2_invalid)
    assert cam.project_with_jacobian(X)[1].tolist() == valid.tolist()


# ----- exceptions
def test_invalid_cameras_raise():
    with pytest.raises(ValueError, match="Unsupported camera model"):
        Camera.from_colmap("FISHEYE_XYZ", W, H, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="expects 4 params"):
        Camera.from_colmap("PINHOLE", W, H, [500.0, 320.0, 240.0])
    with pytest.raises(ValueError, match="expects 8 params"):
        Camera.from_colmap("OPENCV", W, H, [500.0] * 9)
    with pytest.raises(ValueError, match="Invalid camera"):
        Camera.from_colmap("SIMPLE_RADIAL", W, H, [500.0, 320.0, math.nan, 0.0])
    with pytest.raises(ValueError, match="Invalid camera"):
        Camera.from_colmap("PINHOLE", W, H, [math.inf, 500.0, 320.0, 240.0])
    with pytest.raises(ValueError, match="Invalid camera"):
        Camera.from_colmap("PINHOLE", 0, H, [500.0, 500.0, 320.0, 240.0])
    with pytest.raises(ValueError, match="unbatched"):
        Camera.stack([_cameras("PINHOLE")[0]] * 2).to_colmap()


def test_models_table_matches_pycolmap_parameter_order():
    for model, names in MODELS.items():
        info = pycolmap.Camera(model=model, width=W, height=H, params=PARAMS[model]).params_info
        assert info.replace(" ", "").split(",") == list(names)


# ----- batching
def test_batched_cameras_and_mixed_stack(device):
    cams = [_cameras(m)[0].to(device) for m in ALL_MODELS]
    batch = Camera.stack(cams)
    assert batch.model == "OPENCV" and batch.shape == (len(cams),)
    X = randn(len(cams), 20, 3, seed=9, device=device) * 0.3
    X[..., 2] += 2.0
    p, valid, J = batch.project_with_jacobian(X)
    assert p.shape == (5, 20, 2) and valid.shape == (5, 20) and J.shape == (5, 20, 2, 3)
    assert p.device == valid.device == J.device == device
    for i, cam in enumerate(cams):
        assert_close(p[i], cam.project(X[i])[0])
        assert_close(batch[i].project(X[i])[0], cam.project(X[i])[0])
    same = Camera.stack([cams[1], cams[1].scale(0.5)])
    assert same.model == "PINHOLE" and same.shape == (2,)
    assert "shape=(2,)" in repr(same) and "PINHOLE, 640x480" in repr(cams[1])


# ----- Jacobians and precision
@pytest.mark.parametrize("model", ALL_MODELS)
def test_project_with_jacobian_matches_autograd(model, device):
    cam = _cameras(model)[0].to(device)
    X = randn(12, 3, seed=10, device=device) * 0.4
    X[:, 2] += 2.0
    p, valid, J = cam.project_with_jacobian(X)
    p_ref, valid_ref = cam.project(X)
    assert p.device == valid.device == J.device == device
    assert_close(p, p_ref)
    assert torch.equal(valid, valid_ref)
    J_auto = torch.autograd.functional.jacobian(lambda x: cam.project(x)[0], X)  # (N, 2, N, 3)
    i = torch.arange(12, device=device)
    J_auto = J_auto[i, :, i]
    assert J.shape == (12, 2, 3)
    assert_close(J, J_auto, atol=1e-9, rtol=1e-9)
    # and against a central finite difference (independent of autograd)
    eps = 1e-6
    for k in range(3):
        dX = torch.zeros(3, dtype=torch.float64, device=device)
        dX[k] = eps
        fd = (cam.project(X + dX)[0] - cam.project(X - dX)[0]) / (2 * eps)
        assert_close(J[..., k], fd, atol=1e-4, rtol=1e-6)


@pytest.mark.parametrize("model", ["SIMPLE_RADIAL", "OPENCV"])
def test_gradcheck_project_points_and_params(model, device):
    cam = _cameras(model)[0].to(device)
    X = randn(5, 3, seed=11, device=device) * 0.3
    X[:, 2] += 2.0
    params = cam.params.clone().requires_grad_()

    def f(X, params):
        return Camera(model, cam.size, params).project(X)[0]

    assert torch.autograd.gradcheck(f, (X.requires_grad_(), params))


@pytest.mark.parametrize("model", ALL_MODELS)
def test_dtype_precision(model, device, dtype):
    cam64, ref = _cameras(model)
    cam = cam64.to(device, dtype)
    assert cam.dtype == dtype and cam.float().dtype == torch.float32
    X = torch.from_numpy(_points_from_pixels(ref, _border_and_random_pixels(seed=12)))
    p = cam.project(X.to(device, dtype))[0]
    assert p.dtype == dtype and p.device == device
    atol = 1e-3 if dtype == torch.float32 else 1e-9  # pixels
    assert_close(p.cpu(), cam64.project(X)[0].to(dtype), atol=atol, rtol=0)
