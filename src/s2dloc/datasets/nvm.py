"""NVM_V3 models (VisualSfM's format; also written by COLMAP's NVM exporter).

Camera lines are ``<path> f qw qx qy qz cx cy cz r 0``: the world-to-camera rotation and the
camera CENTRE, converted here to ``t = -R c``; ``r`` is the radial distortion of the normalised
measurement, ``f * X/Z = m * (1 + r |m / f|^2)``, with the principal point at the image centre.
Point lines are ``x y z r g b n (image feature mx my)*n``.

Two conventions exist for the measurements ``(mx, my)``: VisualSfM writes them relative to the
image centre, COLMAP's exporter writes absolute pixel coordinates. :func:`read_nvm` tells them
apart by reprojecting the points with the cameras (median error under each hypothesis), keeps
the one that fits and refuses a file where neither does. :attr:`NvmModel.observations` always
holds centre-relative measurements; :meth:`NvmModel.pixels` converts them to COLMAP pixels
(top-left pixel centre at (0.5, 0.5)).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from s2dloc.datasets.cmu import numbered_lines, parse_numbers, pose_from_centre, unit_quaternion
from s2dloc.geometry import quat_to_matrix

logger = logging.getLogger(__name__)

CENTRED, ABSOLUTE = "centred", "absolute"
MAX_CHECKED = 20000  # points whose observations are reprojected to detect the convention


def parse_nvm_camera_line(line: str, where: str = "<line>", ext: str = ".jpg"):
    """``<path> f qw qx qy qz cx cy cz r 0`` -> ``(name, f, q, t, r)`` with ``t = -R c``.
    ``.png`` names are mapped to ``ext`` and a leading ``./`` is dropped."""
    f = line.split()
    if len(f) != 11:
        raise ValueError(
            f"{where}: expected '<path> f qw qx qy qz cx cy cz r 0', got {len(f)} fields"
        )
    v = parse_numbers(where, f[1:], "camera values")
    if v[0] <= 0:
        raise ValueError(f"{where}: focal length must be positive, got {f[1]}")
    q, t = pose_from_centre(unit_quaternion(where, v[1:5]), v[5:8])
    if not np.isfinite(t).all():
        raise ValueError(f"{where}: camera centre out of range, got {f[6:9]}")
    name = f[0][2:] if f[0].startswith("./") else f[0]
    if name.endswith(".png"):
        name = name[: -len(".png")] + ext
    return name, float(v[0]), q, t, float(v[8])


@dataclass
class NvmModel:
    """Cameras and points of an NVM_V3 model.

    ``poses``: ``{name: (q, t)}`` cam_from_world; ``focal`` / ``radial``: ``{name: value}``;
    ``points3D (P, 3)``, ``colors (P, 3)`` uint8; ``observations``: per point, rows
    ``(image index, feature index, mx, my)`` with ``(mx, my)`` relative to the image centre.
    ``convention``: how the file stored the measurements (``"centred"`` or ``"absolute"``);
    ``reprojection_error``: median error in pixels of the measurements under it (NaN when the
    file has no observations or the points were not read).
    """

    names: list[str]
    poses: dict[str, tuple[np.ndarray, np.ndarray]]
    focal: dict[str, float]
    radial: dict[str, float]
    points3D: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8))
    observations: list[np.ndarray] = field(default_factory=list)
    convention: str = CENTRED
    reprojection_error: float = float("nan")

    @staticmethod
    def pixels(measurements: np.ndarray, size=(1024, 1024)) -> np.ndarray:
        """COLMAP pixels ``(K, 2)`` of centre-relative measurements ``(K, 2)`` in a ``size``
        ``(width, height)`` image."""
        return np.asarray(measurements, np.float64) + np.asarray(size, np.float64) / 2


def _parse_point(where: str, line: str, num_images: int):
    f = line.split()
    if len(f) < 7 or not f[6].isdecimal() or len(f) != 7 + 4 * int(f[6]):
        raise ValueError(
            f"{where}: expected 'x y z r g b n (img feat mx my)*n', got {len(f)} fields"
        )
    v = parse_numbers(where, f[:6], "point values")
    obs = parse_numbers(where, f[7:], "observations").reshape(-1, 4)
    if (v[3:] < 0).any() or (v[3:] > 255).any():
        raise ValueError(f"{where}: colours must be in 0-255, got {f[3:6]}")
    if ((obs[:, 0] < 0) | (obs[:, 0] >= num_images) | (obs[:, 0] % 1 != 0)).any():
        raise ValueError(f"{where}: observation image index out of range 0-{num_images - 1}")
    return v[:3], v[3:], obs


def reprojection_errors(model: NvmModel, size=(1024, 1024)) -> dict[str, float]:
    """Median reprojection error in pixels under each convention, ``{"centred": e,
    "absolute": e}``, over the observations of up to :data:`MAX_CHECKED` evenly spaced points
    (an observation behind its camera counts as infinite)."""
    num = len(model.observations)
    picked = np.unique(np.linspace(0, num - 1, min(num, MAX_CHECKED)).astype(int)) if num else []
    rows = [
        np.column_stack([np.full(len(model.observations[p]), p), model.observations[p]])
        for p in picked
        if len(model.observations[p])
    ]
    if not rows:
        return {CENTRED: float("nan"), ABSOLUTE: float("nan")}
    obs = np.concatenate(rows)
    quats = np.stack([model.poses[n][0] for n in model.names])
    R = quat_to_matrix(torch.from_numpy(quats)).numpy()
    t = np.stack([model.poses[n][1] for n in model.names])
    f = np.array([model.focal[n] for n in model.names])
    r = np.array([model.radial[n] for n in model.names])
    img = obs[:, 1].astype(int)
    X = np.einsum("kij,kj->ki", R[img], model.points3D[obs[:, 0].astype(int)]) + t[img]
    front = X[:, 2] > 1e-9
    with np.errstate(all="ignore"):
        proj = f[img, None] * X[:, :2] / X[:, 2:]
        out = {}
        for name, offset in ((CENTRED, 0.0), (ABSOLUTE, np.asarray(size, np.float64) / 2)):
            m = obs[:, 3:5] - offset
            undistorted = m * (1 + r[img, None] * ((m / f[img, None]) ** 2).sum(1, keepdims=True))
            err = np.where(front, np.linalg.norm(undistorted - proj, axis=1), np.inf)
            out[name] = float(np.median(err))
    return out


def detect_convention(
    model: NvmModel, path: str | Path, size=(1024, 1024), max_error: float | None = None
) -> tuple[str, float]:
    """``(convention, median error)`` of the measurements of ``model`` read from ``path``;
    ``ValueError`` naming the file when neither convention fits within ``max_error`` pixels
    (default: 5% of the larger image side)."""
    errors = reprojection_errors(model, size)
    if np.isnan(errors[CENTRED]):
        return CENTRED, float("nan")
    tol = 0.05 * max(size) if max_error is None else max_error
    best = min(errors, key=errors.get)
    if not errors[best] <= tol:
        raise ValueError(
            f"{path}: the 2D measurements fit the cameras in neither NVM convention for "
            f"{size[0]}x{size[1]} images (median reprojection error: relative to the image "
            f"centre {errors[CENTRED]:.1f} px, absolute pixels {errors[ABSOLUTE]:.1f} px; "
            f"expected below {tol:.1f} px): wrong image size, or not a consistent model"
        )
    logger.info(
        "%s: measurements %s (median reprojection error %.2f px, other %.1f px)",
        path,
        "relative to the image centre" if best == CENTRED else "in absolute pixels",
        errors[best],
        max(errors.values()),
    )
    return best, errors[best]


def read_nvm(
    path: str | Path, read_points: bool = True, ext: str = ".jpg", size=(1024, 1024)
) -> NvmModel:
    """Read the first model of an NVM_V3 file of ``size`` ``(width, height)`` images; the
    measurement convention is detected (see the module docstring)."""
    lines = numbered_lines(path)
    where, line = next(lines, (f"{path}:1", ""))
    if not line.startswith("NVM_V3"):
        raise ValueError(f"{where}: not an NVM_V3 file (header {line[:20]!r})")

    def count(what: str, default: str = "") -> int:
        where, line = next(lines, (f"{path}:end", default))
        if not line.isdecimal():
            raise ValueError(f"{where}: expected the number of {what}, got {line[:30]!r}")
        return int(line)

    model = NvmModel([], {}, {}, {})
    for _ in range(count("cameras")):
        where, line = next(lines, (f"{path}:end", ""))
        name, f, q, t, r = parse_nvm_camera_line(line, where, ext)
        if name in model.poses:
            raise ValueError(f"{where}: duplicate image {name!r}")
        model.names.append(name)
        model.poses[name], model.focal[name], model.radial[name] = (q, t), f, r
    if not read_points:
        return model
    xyz, rgb = [], []
    for _ in range(count("points", "0")):
        where, line = next(lines, (f"{path}:end", ""))
        p, c, obs = _parse_point(where, line, len(model.names))
        xyz.append(p)
        rgb.append(c)
        model.observations.append(obs)
    model.points3D = np.array(xyz, np.float64).reshape(-1, 3)
    model.colors = np.array(rgb, np.uint8).reshape(-1, 3)
    model.convention, model.reprojection_error = detect_convention(model, path, size)
    if model.convention == ABSOLUTE:
        half = np.asarray(size, np.float64) / 2
        for obs in model.observations:
            obs[:, 2:4] -= half
    return model
