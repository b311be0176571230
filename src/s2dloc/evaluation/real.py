"""Real-data validation helpers: the strecha_dev held-out split, recall summaries, retrieval
correctness and F-PnP alignment problems built from a triangulated map.

Held-out split. Herz-Jesus-P25 is never used for training (scene-level generalisation); its
queries are every third image (``0000.jpg, 0003.jpg, ...``). In castle-P30 the queries
``0002.jpg, 0006.jpg, ..., 0026.jpg`` are never used for training. Each query is localized
against a map of the other images of its scene. :data:`STRECHA_HELD_OUT` lists the queries,
:data:`STRECHA_TRAINING_SCENES` the scenes training may use, and :func:`training_images`
removes the queries (``configs/gnnet_disk.yaml`` and ``configs/gnnet_distilled.yaml`` hold the
same split as exclude lists).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from s2dloc.evaluation.convergence import BasinProblem
from s2dloc.evaluation.recall import Errors, recall_table
from s2dloc.geometry import Camera, Pose, sample

STRECHA_SCENES = {"castle-P30": 30, "Herz-Jesus-P25": 25}  # scene -> number of images
STRECHA_HELD_OUT: dict[str, tuple[str, ...]] = {
    "castle-P30": tuple(f"{i:04d}.jpg" for i in range(2, 30, 4)),
    "Herz-Jesus-P25": tuple(f"{i:04d}.jpg" for i in range(0, 25, 3)),
}
STRECHA_TRAINING_SCENES = ("castle-P30",)  # Herz-Jesus-P25 is held out entirely
# Localization thresholds (metres, degrees), finest first.
REAL_THRESHOLDS = ((0.02, 0.1), (0.05, 0.5), (0.25, 2.0), (1.0, 5.0))


def held_out_images(scene: str) -> tuple[str, ...]:
    """The held-out (query) image names of a strecha_dev ``scene``."""
    if scene not in STRECHA_HELD_OUT:
        raise ValueError(f"unknown strecha_dev scene {scene!r}; known: {sorted(STRECHA_HELD_OUT)}")
    return STRECHA_HELD_OUT[scene]


def training_images(scene: str, names: Sequence[str]) -> list[str]:
    """``names`` without the held-out images of ``scene`` (order kept)."""
    held = set(held_out_images(scene))
    return [n for n in names if n not in held]


@dataclass
class RecallSummary:
    """Recall (%) per threshold label (``"2cm/0.1deg"``...), medians (inf when most failed),
    number of queries and mean seconds per query."""

    count: int
    recall: dict[str, float]
    median_rot_deg: float
    median_trans: float
    seconds_per_query: float = float("nan")


def threshold_label(trans: float, rot: float) -> str:
    """``(0.02, 0.1)`` -> ``"2cm/0.1deg"``; ``(1.0, 5.0)`` -> ``"1m/5deg"``."""
    t = f"{trans * 100:g}cm" if trans < 1 else f"{trans:g}m"
    return f"{t}/{rot:g}deg"


def summarize(
    rot_deg: Sequence[float],
    trans: Sequence[float],
    seconds: Sequence[float] = (),
    thresholds=REAL_THRESHOLDS,
) -> RecallSummary:
    """Recall of per-query errors ``(Q,)`` (rotation deg, centre distance m; inf = failed)."""
    rot, tr = np.asarray(rot_deg, np.float64), np.asarray(trans, np.float64)
    if rot.shape != tr.shape or rot.ndim != 1 or rot.size == 0:
        raise ValueError(f"need equal non-empty 1-D errors, got {rot.shape} and {tr.shape}")
    errors = Errors([str(i) for i in range(len(rot))], rot, tr)
    row = recall_table(errors, thresholds)["all"]
    recall = {threshold_label(t, r): row[f"{t}m/{r}deg"] for t, r in thresholds}
    secs = float(np.mean(seconds)) if len(seconds) else float("nan")
    return RecallSummary(len(rot), recall, row["median_rot_deg"], row["median_trans"], secs)


def covisible_fraction(points: np.ndarray, camera: Camera, cam_from_world: Pose) -> float:
    """Fraction of world ``points (M, 3)`` in front of the camera and inside its image."""
    if len(points) == 0:
        return 0.0
    X = cam_from_world.double().transform(torch.from_numpy(np.asarray(points, np.float64)))
    _, valid = camera.double().project(X)
    return float(valid.double().mean())


def correct_references(
    ref_points: dict[str, np.ndarray],
    camera: Camera,
    cam_from_world: Pose,
    min_fraction: float = 0.3,
) -> set[str]:
    """References whose camera sees the query's view: at least ``min_fraction`` of their
    observed 3D points project into the query image at its true pose."""
    return {
        n
        for n, X in ref_points.items()
        if covisible_fraction(X, camera, cam_from_world) >= min_fraction
    }


def retrieval_hit(retrieved: Sequence[str], correct: set[str], k: int = 5) -> bool:
    """Whether one of the first ``k`` retrieved names is correct."""
    return any(n in correct for n in list(retrieved)[:k])


def points_problem(
    ref_image: np.ndarray,
    ref_pixels: np.ndarray,
    ref_camera: Camera,
    points: np.ndarray,
    query_image: np.ndarray,
    query_camera: Camera,
    query_pose: Pose,
    extract: Callable[[np.ndarray], list[torch.Tensor]],
    name: str = "",
) -> BasinProblem:
    """An F-PnP alignment problem from a map: ``points (N, 3)`` observed at ``ref_pixels (N, 2)``
    (COLMAP pixels of ``ref_camera``) in ``ref_image``, features sampled there; the query's
    dense features from ``query_image``; the scene depth is the points' median query depth."""
    ref_rgb = np.asarray(ref_image, np.float32) / 255.0
    pixels = torch.from_numpy(np.asarray(ref_pixels, np.float64))
    ref_features = []
    for m in extract(ref_rgb):
        s = m.shape[-1] / float(ref_camera.width)
        ref_features.append(sample(m[None].float(), (pixels * s)[None].float())[0][0])
    query_maps = [m.float() for m in extract(np.asarray(query_image, np.float32) / 255.0)]
    X = torch.from_numpy(np.asarray(points, np.float64))
    depth = float(query_pose.double().transform(X)[:, 2].median())
    return BasinProblem(
        X.float(),
        ref_features,
        query_maps,
        query_camera,
        query_pose.double(),
        depth,
        name,
        pixels.float(),
        ref_camera,
    )


def depth_points(depth: np.ndarray, camera: Camera, cam_from_world: Pose, stride: int = 8):
    """World points ``(M, 3)`` of a grid of pixels (every ``stride``) with valid depth (> 0)."""
    depth = np.asarray(depth, np.float64)
    v, u = np.mgrid[stride // 2 : depth.shape[0] : stride, stride // 2 : depth.shape[1] : stride]
    z = depth[v, u]
    ok = np.isfinite(z) & (z > 0)
    pix = torch.from_numpy(np.stack([u[ok] + 0.5, v[ok] + 0.5], -1).astype(np.float64))
    X = camera.double().unproject(pix[None], torch.from_numpy(z[ok])[None])[0]
    return cam_from_world.double().inv().transform(X).numpy()
