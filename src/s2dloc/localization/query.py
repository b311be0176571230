"""Queries (an image with its own camera) and per-query results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s2dloc.geometry import Camera, Pose
from s2dloc.localization.evidence import Evidence, FPnPRecord
from s2dloc.localization.map import read_rgb
from s2dloc.localization.s2d import RefMatches


@dataclass
class Query:
    """A query image: ``name``, its unbatched ``camera`` and either ``image (H, W, 3)`` uint8 or
    a ``path`` to read it from; ``prior`` is an initial pose for refine-only mode."""

    name: str
    camera: Camera
    image: np.ndarray | None = field(default=None, repr=False)
    path: Path | None = None
    prior: Pose | None = None

    def load(self) -> np.ndarray:
        if self.image is not None:
            return self.image
        if self.path is None:
            raise ValueError(f"query {self.name!r} has neither an image nor a path")
        image = read_rgb(self.path)
        w, h = (int(round(v)) for v in self.camera.size.tolist())
        if image.shape[:2] != (h, w):
            raise ValueError(
                f"query {self.name!r}: image is {image.shape[1]}x{image.shape[0]} "
                f"but its camera is {w}x{h}"
            )
        return image


@dataclass
class QueryResult:
    """Outcome of localizing (or refining) one query.

    ``pose`` is the final cam_from_world (None if the query failed entirely); ``pnp_pose`` the
    PnP-RANSAC estimate; ``fallback`` is True when PnP failed and ``pose`` is the best
    reference's pose. ``refs`` lists retrieved ``(name, score)``; ``matches`` / ``inliers``
    count per reference; ``fpnp`` is F-PnP's record (None when it did not run).

    ``success`` is the verdict: True only when the pose passed verification (see
    :mod:`s2dloc.localization.verify`); ``reason`` says why not ("" on success). ``verify``
    holds the :class:`~s2dloc.localization.evidence.Evidence` the verdict was taken from.

    ``ref_matches`` keeps the 2D-3D matches of every reference (query pixels, point ids, world
    points, scores and the PnP inlier mask) for plots and export; :meth:`to_json` leaves them
    out (see :mod:`s2dloc.localization.stages` for the matches file).
    """

    name: str
    pose: Pose | None = None
    pnp_pose: Pose | None = None
    pnp_success: bool = False
    fallback: bool = False
    fpnp_success: bool = False
    best_ref: str | None = None
    refs: list[tuple[str, float]] = field(default_factory=list)
    matches: dict[str, int] = field(default_factory=dict)
    inliers: dict[str, int] = field(default_factory=dict)
    fpnp: FPnPRecord | None = None
    timings: dict[str, float] = field(default_factory=dict)
    error: str = ""
    success: bool = False
    reason: str = ""
    verify: Evidence = field(default_factory=Evidence)
    ref_matches: dict[str, RefMatches] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict:
        """A JSON-serialisable record (poses as ``[qw, qx, qy, qz, tx, ty, tz]``)."""

        def pose(p):
            return None if p is None else [*p.quat().tolist(), *p.t.tolist()]

        return {
            "name": self.name,
            "pose": pose(self.pose),
            "pnp_pose": pose(self.pnp_pose),
            "pnp_success": self.pnp_success,
            "fallback": self.fallback,
            "fpnp_success": self.fpnp_success,
            "best_ref": self.best_ref,
            "refs": [[n, round(s, 5)] for n, s in self.refs],
            "matches": self.matches,
            "inliers": self.inliers,
            "fpnp": {} if self.fpnp is None else self.fpnp.to_json(),
            "timings": {k: round(v, 5) for k, v in self.timings.items()},
            "error": self.error,
            "success": self.success,
            "reason": self.reason,
            "verify": self.verify.to_json(),
        }
