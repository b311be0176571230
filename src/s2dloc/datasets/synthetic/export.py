"""Ground truth from a rendered world: visibility tests, COLMAP model, dense correspondences."""

from __future__ import annotations

import logging

import numpy as np

from ..correspondences import CorrespondencePair
from .render import backproject, camera_tuple, pixel_rays, pose_Rt, project
from .world import View, World

logger = logging.getLogger(__name__)


def visible_in(view: View, X_world: np.ndarray, prim_ids: np.ndarray, rel_tol: float = 0.01):
    """Which world points (N, 3), lying on primitives ``prim_ids`` (N,), are seen by ``view``.

    A point is visible if it projects inside the image, the nearest pixel shows the same
    primitive, its z-depth agrees within ``rel_tol`` (relative) and the pixel's ray agrees with
    the projection (guards against wrapped distortion). Returns pixels (N, 2), valid (N,).
    """
    p, z, valid = project(view.camera, view.cam_from_world, X_world)
    model, w, h, params = camera_tuple(view.camera)
    xs, ys, _, focal = pixel_rays(model, w, h, params)
    u = np.clip(np.nan_to_num(p[:, 0]).astype(np.int64), 0, w - 1)
    v = np.clip(np.nan_to_num(p[:, 1]).astype(np.int64), 0, h - 1)
    R, t = pose_Rt(view.cam_from_world)
    X_cam = X_world @ R.T + t
    with np.errstate(invalid="ignore", divide="ignore"):
        ray_err = np.hypot(xs[v, u] - X_cam[:, 0] / z, ys[v, u] - X_cam[:, 1] / z) * focal
        depth = view.depth[v, u]
        valid &= view.primitive[v, u] == prim_ids
        valid &= np.abs(depth - z) <= rel_tol * z
        valid &= ray_err < 1.5
    return p, valid


def sample_pixels(view: View, stride: int, rng: np.random.Generator, static: int | None = None):
    """Pixel indices (N, 2) (u, v) on a jittered grid with valid depth (and primitive id below
    ``static`` if given, i.e. not a transient occluder)."""
    h, w = view.depth.shape
    v, u = np.mgrid[stride // 2 : h : stride, stride // 2 : w : stride]
    u = np.clip(u + rng.integers(-(stride // 2), stride // 2 + 1, u.shape), 0, w - 1).ravel()
    v = np.clip(v + rng.integers(-(stride // 2), stride // 2 + 1, v.shape), 0, h - 1).ravel()
    keep = view.depth[v, u] > 0
    if static is not None:
        keep &= view.primitive[v, u] < static
    return np.stack([u[keep], v[keep]], 1)


def surface_points(view: View, pix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) and primitive ids (N,) at pixel indices (N, 2) of ``view``."""
    X = backproject(view.depth, view.camera, view.cam_from_world)
    return X[pix[:, 1], pix[:, 0]], view.primitive[pix[:, 1], pix[:, 0]]


def dense_correspondences(
    ref: View, other: View, stride: int = 8, seed: int = 0, num_static: int | None = None
) -> CorrespondencePair:
    """Correspondences from pixel centres of ``ref`` to ``other`` via depth, occlusion-checked.

    ``dist_from_center`` is the distance in metres between the 3D point seen by ``ref`` and the
    one back-projected from ``other``'s depth at the nearest pixel (~0 for exact geometry).
    """
    pix = sample_pixels(ref, stride, np.random.default_rng(seed), num_static)
    X, prim = surface_points(ref, pix)
    p, valid = visible_in(other, X, prim)
    X_other = backproject(other.depth, other.camera, other.cam_from_world)
    q = p[valid].astype(np.int64)
    dist = np.linalg.norm(X_other[q[:, 1], q[:, 0]] - X[valid], axis=1)
    return CorrespondencePair(ref.name, other.name, pix[valid] + 0.5, p[valid], dist)


def colmap_model(world: World, stride: int | None = None, seed: int = 0):
    """A pycolmap.Reconstruction of the database: cameras, posed images, and 3D points sampled on
    visible static surfaces (grid ``stride``, default width / 20) with tracks over every database
    image that sees them."""
    import pycolmap

    stride = stride or max(4, world.config.width // 20)
    rng = np.random.default_rng(seed)
    db = world.database
    num_static = len(world.scene.primitives)
    points, prims, colors = [], [], []
    for view in db:
        pix = sample_pixels(view, stride, rng, num_static)
        X, prim = surface_points(view, pix)
        points.append(X)
        prims.append(prim)
        colors.append(view.rgb[pix[:, 1], pix[:, 0]])
    X = np.concatenate(points)
    prim = np.concatenate(prims)
    color = (np.concatenate(colors) * 255).round().astype(np.uint8)
    obs = [visible_in(view, X, prim) for view in db]
    track_len = np.sum([v for _, v in obs], axis=0)
    keep = track_len >= 2
    index = np.cumsum(keep) - 1

    rec = pycolmap.Reconstruction()
    cam_ids: dict[tuple, int] = {}
    point2d_idx = []
    for image_id, (view, (p, valid)) in enumerate(zip(db, obs, strict=True), start=1):
        key = camera_tuple(view.camera)
        if key not in cam_ids:
            cam = pycolmap.Camera(model=key[0], width=key[1], height=key[2], params=list(key[3]))
            cam.camera_id = cam_ids[key] = len(cam_ids) + 1
            rec.add_camera_with_trivial_rig(cam)
        sel = np.flatnonzero(valid & keep)
        image = pycolmap.Image(
            name=view.name, keypoints=p[sel], camera_id=cam_ids[key], image_id=image_id
        )
        R, t = pose_Rt(view.cam_from_world)
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(np.hstack([R, t[:, None]])))
        point2d_idx.append(dict(zip(index[sel].tolist(), range(len(sel)), strict=True)))
    obs_valid = np.stack([v & keep for _, v in obs])  # (num_db, N)
    for n in np.flatnonzero(keep):
        track = pycolmap.Track()
        for i in np.flatnonzero(obs_valid[:, n]):
            track.add_element(int(i) + 1, point2d_idx[i][int(index[n])])
        rec.add_point3D(X[n], track, color[n])
    logger.info(
        "COLMAP model: %d images, %d points, mean track length %.1f",
        rec.num_images(),
        rec.num_points3D(),
        float(track_len[keep].mean()) if keep.any() else 0.0,
    )
    return rec


def nearest_database(world: World, view: View, k: int = 1) -> list[int]:
    """Indices of the ``k`` database views closest to ``view`` (centre distance + 5 m per radian
    of viewing-direction difference)."""
    R, t = pose_Rt(view.cam_from_world)
    c, d = -R.T @ t, R[2]
    scores = []
    for ref in world.database:
        Rr, tr = pose_Rt(ref.cam_from_world)
        angle = np.arccos(np.clip(d @ Rr[2], -1, 1))
        scores.append(np.linalg.norm(c + Rr.T @ tr) + 5.0 * angle)
    return [int(i) for i in np.argsort(scores, kind="stable")[:k]]
