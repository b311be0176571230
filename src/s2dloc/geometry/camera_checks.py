"""Plausibility checks of camera intrinsics, before a camera is used for localization.

A camera passes when:

- every focal length is positive;
- its field of view (the angle between the rays of both image borders through the principal
  point, radial distortion undone) lies between :data:`MIN_FOV_DEG` and :data:`MAX_FOV_DEG`
  degrees, horizontally and vertically;
- its principal point lies inside the image;
- its radial distortion keeps the projection monotonic over the whole image: the distorted
  radius ``r (1 + k1 r^2 + k2 r^4)`` must still be increasing at the undistorted radius whose
  projection reaches the farthest image corner. Equivalently, if ``d/dr`` of that function first
  vanishes at ``r_f`` (the fold-over radius), the largest distorted radius it can reach,
  ``r_f (1 + k1 r_f^2 + k2 r_f^4)``, must exceed the corner's normalized radius. Tangential
  terms are not part of this test.
"""

from __future__ import annotations

import math

from s2dloc.geometry.camera import Camera

MIN_FOV_DEG = 10.0
MAX_FOV_DEG = 170.0


def fold_radius(k1: float, k2: float) -> float:
    """The smallest undistorted radius ``r > 0`` where ``d(r (1 + k1 r^2 + k2 r^4)) / dr = 0``
    (``inf`` if the radial distortion never folds over)."""
    # d/dr = 1 + 3 k1 u + 5 k2 u^2 with u = r^2: smallest positive root in u.
    if k2 == 0.0:
        return math.sqrt(-1.0 / (3.0 * k1)) if k1 < 0 else math.inf
    disc = 9.0 * k1 * k1 - 20.0 * k2
    if disc < 0:
        return math.inf
    roots = [(-3.0 * k1 + s * math.sqrt(disc)) / (10.0 * k2) for s in (-1.0, 1.0)]
    positive = [u for u in roots if u > 0]
    return math.sqrt(min(positive)) if positive else math.inf


def max_distorted_radius(k1: float, k2: float) -> float:
    """The largest normalized radius a monotonic projection reaches (``inf`` without fold)."""
    r = fold_radius(k1, k2)
    return math.inf if math.isinf(r) else r * (1.0 + k1 * r * r + k2 * r**4)


def undistorted_radius(rd: float, k1: float, k2: float) -> float:
    """The undistorted normalized radius ``r`` with ``r (1 + k1 r^2 + k2 r^4) = rd`` on the
    monotonic branch (bisection; ``nan`` when the projection folds over before ``rd``;
    ``rd`` itself without distortion)."""
    if k1 == 0.0 and k2 == 0.0:
        return rd

    def radius(r: float) -> float:
        return r * (1.0 + k1 * r * r + k2 * r**4)

    hi = fold_radius(k1, k2)
    if math.isinf(hi):
        hi = max(rd, 1e-12)
        while radius(hi) < rd:
            hi *= 2.0
    elif radius(hi) < rd:
        return math.nan
    lo = 0.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if radius(mid) < rd else (lo, mid)
    return 0.5 * (lo + hi)


def field_of_view(f: float, c: float, size: float, k1: float = 0.0, k2: float = 0.0) -> float:
    """Degrees between the rays of the two image borders ``0`` and ``size`` along one axis
    through the principal point ``c`` (focal ``f``), radial distortion undone."""
    angles = [math.atan(undistorted_radius(d / f, k1, k2)) for d in (c, size - c)]
    return math.degrees(sum(angles))


def camera_problems(camera: Camera, where: str = "camera") -> list[str]:
    """Every rule an unbatched ``camera`` violates, each message naming ``where``."""
    w, h = (float(v) for v in camera.size.reshape(-1)[:2].tolist())
    fx, fy = (float(v) for v in camera.f.reshape(-1)[:2].tolist())
    cx, cy = (float(v) for v in camera.c.reshape(-1)[:2].tolist())
    k1, k2 = (float(v) for v in camera.dist.reshape(-1)[:2].tolist())
    desc = f"{where} ({camera.model} {w:g}x{h:g}, params {camera.params.reshape(-1).tolist()})"
    if fx <= 0 or fy <= 0:
        return [f"{desc}: focal length must be > 0, got fx={fx:g}, fy={fy:g}"]
    out = []
    if not (0 < cx < w and 0 < cy < h):
        out.append(
            f"{desc}: principal point ({cx:g}, {cy:g}) must lie inside the image "
            f"(0 < cx < {w:g}, 0 < cy < {h:g})"
        )
    for axis, f, c, size in (("horizontal", fx, cx, w), ("vertical", fy, cy, h)):
        fov = field_of_view(f, c, size, k1, k2) if 0 < c < size else math.nan
        if math.isnan(fov):  # principal point outside, or a fold-over (both reported): pinhole
            fov = field_of_view(f, c, size)
        if not MIN_FOV_DEG <= fov <= MAX_FOV_DEG:
            out.append(
                f"{desc}: {axis} field of view {fov:.1f} deg must be between "
                f"{MIN_FOV_DEG:g} and {MAX_FOV_DEG:g} deg (check the focal length)"
            )
    corner = max(math.hypot((u - cx) / fx, (v - cy) / fy) for u in (0, w) for v in (0, h))
    reach = max_distorted_radius(k1, k2)
    if reach <= corner:
        out.append(
            f"{desc}: radial distortion (k1={k1:g}, k2={k2:g}) folds over at normalized "
            f"radius {reach:.3f}, inside the image (corner at {corner:.3f}): the "
            "projection must stay monotonic up to the image corner"
        )
    return out


def check_camera(camera: Camera, where: str = "camera") -> Camera:
    """Raise ``ValueError`` listing every violated rule (see :func:`camera_problems`)."""
    problems = camera_problems(camera, where)
    if problems:
        raise ValueError("; ".join(problems))
    return camera
