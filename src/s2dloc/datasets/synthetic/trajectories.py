"""Camera trajectories: a database path in the reference condition and offset query paths."""

from __future__ import annotations

import numpy as np

from .scenes import look_at


def _resample(path: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) and unit horizontal tangents (N, 3) at arclength fractions ``s`` in [0, 1]."""
    seg = np.diff(path, axis=0)
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(seg, axis=1))])
    d = np.clip(s, 0, 1) * cum[-1]
    k = np.clip(np.searchsorted(cum, d, side="right") - 1, 0, len(seg) - 1)
    frac = ((d - cum[k]) / np.maximum(cum[k + 1] - cum[k], 1e-12))[:, None]
    tangent = seg[k] * np.array([1.0, 1.0, 0.0])
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    return path[k] + frac * seg[k], tangent


def _pose(center: np.ndarray, tangent: np.ndarray, yaw: float, pitch: float, roll: float):
    heading = np.arctan2(tangent[1], tangent[0]) + yaw
    f = np.array([np.cos(pitch) * np.cos(heading), np.cos(pitch) * np.sin(heading), np.sin(pitch)])
    R, _ = look_at(center, center + f)
    c, s = np.cos(roll), np.sin(roll)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ R
    return R, -R @ center


def database_poses(path: np.ndarray, num: int, yaw_deg: float = 30.0) -> list[tuple]:
    """``num`` cam_from_world (R, t) evenly spaced along ``path`` (K, 3), looking along the path
    and alternately turning left/right by up to ``yaw_deg``, slightly pitched down."""
    s = np.linspace(0.0, 1.0, num) if num > 1 else np.zeros(1)
    centers, tangents = _resample(np.asarray(path, np.float64), s)
    yaws = np.deg2rad(yaw_deg) * np.sin(np.arange(num) * np.pi / 2.5)
    return [
        _pose(c, t, y, np.deg2rad(-4.0), 0.0)
        for c, t, y in zip(centers, tangents, yaws, strict=True)
    ]


def query_poses(
    path: np.ndarray,
    num: int,
    rng: np.random.Generator,
    lateral: tuple[float, float] = (0.4, 1.5),
    yaw_deg: float = 30.0,
    jitter_deg: float = 15.0,
) -> list[tuple]:
    """``num`` cam_from_world (R, t) near ``path``: laterally offset by ``lateral`` metres (random
    side), height +-0.15 m, yaw jittered by up to ``jitter_deg`` around the database pattern,
    pitch and roll by a few degrees."""
    s = np.sort(rng.uniform(0.02, 0.98, num))
    centers, tangents = _resample(np.asarray(path, np.float64), s)
    side = np.cross(tangents, [0.0, 0.0, 1.0])
    offset = rng.uniform(*lateral, num) * rng.choice([-1.0, 1.0], num)
    centers = centers + side * offset[:, None]
    centers[:, 2] += rng.uniform(-0.15, 0.15, num)
    base = np.deg2rad(yaw_deg) * np.sin(rng.integers(0, 5, num) * np.pi / 2.5)
    yaws = base + np.deg2rad(rng.uniform(-jitter_deg, jitter_deg, num))
    pitch = np.deg2rad(rng.uniform(-9.0, 1.0, num))
    roll = np.deg2rad(rng.uniform(-3.0, 3.0, num))
    return [_pose(*args) for args in zip(centers, tangents, yaws, pitch, roll, strict=True)]
