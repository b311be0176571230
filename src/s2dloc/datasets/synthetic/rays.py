"""Camera helpers in numpy for the renderer: pixel rays (with undistortion), projection,
back-projection. Cameras use COLMAP models; pixel (u, v) has its centre at (u+0.5, v+0.5)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

NEAR = 0.05  # metres


def camera_tuple(camera: Any) -> tuple[str, int, int, tuple[float, ...]]:
    """(model, width, height, params) from an s2dloc Camera, a pycolmap.Camera or a tuple."""
    if isinstance(camera, tuple):
        model, w, h, params = camera
    else:
        model = camera.model
        model = getattr(model, "name", model)
        w, h, params = camera.width, camera.height, camera.params
    if hasattr(params, "detach"):
        params = params.detach().cpu().numpy()
    params = tuple(float(p) for p in np.asarray(params, np.float64).reshape(-1))
    return str(model), int(w), int(h), params


def pose_Rt(cam_from_world: Any) -> tuple[np.ndarray, np.ndarray]:
    """(R (3, 3), t (3,)) float64 from an s2dloc Pose, a (R, t) pair or a 4x4/3x4 matrix."""
    if isinstance(cam_from_world, tuple | list):
        R, t = cam_from_world
    elif hasattr(cam_from_world, "R") and hasattr(cam_from_world, "t"):
        R, t = cam_from_world.R, cam_from_world.t
    else:
        T = np.asarray(cam_from_world, np.float64)
        R, t = T[:3, :3], T[:3, 3]
    R, t = (np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, np.float64) for x in (R, t))
    return R.reshape(3, 3), t.reshape(3)


def undistort(model: str, width: int, height: int, params: tuple[float, ...], uv: np.ndarray):
    """Normalised ray coordinates ``(K, 2)`` of pixels ``uv (K, 2)`` of a distorted COLMAP
    camera, NaN where undistortion does not converge (reprojection off by > 0.01 px)."""
    import pycolmap

    cam = pycolmap.Camera(model=model, width=width, height=height, params=list(params))
    xy = np.array(cam.cam_from_img(uv), np.float64)
    back = np.asarray(cam.img_from_cam(np.c_[xy, np.ones(len(xy))]))
    xy[np.linalg.norm(back - uv, axis=1) > 1e-2] = np.nan
    return xy


@functools.lru_cache(maxsize=16)
def pixel_rays(model: str, width: int, height: int, params: tuple[float, ...]):
    """Normalised ray coordinates (x, y) with z = 1 of every pixel centre, each (H, W) float32
    (NaN where undistortion fails), plus conservative column/row extents used for culling."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    if model in ("SIMPLE_PINHOLE", "PINHOLE"):
        f = params[:2] if model == "PINHOLE" else (params[0], params[0])
        c = params[2:4] if model == "PINHOLE" else params[1:3]
        x, y = (u - c[0]) / f[0], (v - c[1]) / f[1]
    else:
        xy = undistort(model, width, height, params, np.stack([u.ravel(), v.ravel()], 1))
        x = np.ascontiguousarray(xy[:, 0]).reshape(height, width)
        y = np.ascontiguousarray(xy[:, 1]).reshape(height, width)
    x, y = x.astype(np.float32), y.astype(np.float32)
    with np.errstate(all="ignore"):
        ext = (np.nanmin(x, 0), np.nanmax(x, 0), np.nanmin(y, 1), np.nanmax(y, 1))
    focal = float(np.mean(params[:2]) if model in ("PINHOLE", "OPENCV") else params[0])
    return x, y, ext, focal


def backproject(depth: np.ndarray, camera: Any, cam_from_world: Any) -> np.ndarray:
    """World points (H, W, 3) float64 of every pixel centre from a z-depth map (NaN where 0)."""
    xs, ys, _, _ = pixel_rays(*camera_tuple(camera))
    R, t = pose_Rt(cam_from_world)
    z = np.where(depth > 0, depth, np.nan).astype(np.float64)
    X_cam = np.stack([xs * z, ys * z, z], -1)
    return (X_cam - t) @ R


def project(camera: Any, cam_from_world: Any, X_world: np.ndarray, near: float = NEAR):
    """Project world points (N, 3) -> pixels (N, 2) (COLMAP convention), z-depth (N,), and a
    validity mask (N,) (in front of the camera and inside the image)."""
    model, w, h, params = camera_tuple(camera)
    R, t = pose_Rt(cam_from_world)
    X = np.asarray(X_world, np.float64).reshape(-1, 3) @ R.T + t
    z = X[:, 2]
    front = z > near
    p = np.full((len(X), 2), np.nan)
    if model in ("SIMPLE_PINHOLE", "PINHOLE"):
        f = params[:2] if model == "PINHOLE" else (params[0], params[0])
        c = params[2:4] if model == "PINHOLE" else params[1:3]
        p[front] = X[front, :2] / z[front, None] * f + c
    elif front.any():
        import pycolmap

        cam = pycolmap.Camera(model=model, width=w, height=h, params=list(params))
        p[front] = np.asarray(cam.img_from_cam(X[front]), np.float64)
    with np.errstate(invalid="ignore"):
        inside = (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
    return p, z, front & inside
