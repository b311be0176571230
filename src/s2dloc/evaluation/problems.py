"""Alignment problems with exact ground truth, built from synthetic worlds or RGB-D frames,
for comparing feature extractors with F-PnP (see :mod:`s2dloc.evaluation.convergence`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from s2dloc.datasets.synthetic.export import nearest_database
from s2dloc.evaluation.convergence import BasinProblem
from s2dloc.features import lift_textured_points, photometric_pyramid
from s2dloc.features.base import DenseExtractor
from s2dloc.geometry import sample

Extractor = Callable[[np.ndarray], list[torch.Tensor]]


def lifted_problem(
    ref_view,
    query_view,
    extractor: DenseExtractor | Extractor,
    num_points: int = 512,
    seed: int = 0,
    name: str = "",
    depth_stat: str = "median",
) -> BasinProblem:
    """Points lifted from ``ref_view``'s depth, features from both images by ``extractor``.

    Views need ``rgb`` (H, W, 3) float in [0, 1] (or ``image`` uint8), ``depth`` (H, W) metric
    z-depth, ``camera`` and ``cam_from_world``. ``extractor`` is a :class:`DenseExtractor` or a
    callable ``image -> [(C, H_l, W_l)]``. The scene depth is the ``depth_stat`` (``median`` or
    ``mean``) of the points' depths in the query camera.
    """
    extract = extractor.extract if hasattr(extractor, "extract") else extractor
    ref_rgb = _rgb(ref_view)
    cam_ref = ref_view.camera
    points, pixels, _ = lift_textured_points(
        ref_rgb,
        ref_view.depth,
        cam_ref,
        ref_view.cam_from_world,
        num_points,
        np.random.default_rng(seed),
    )
    ref_features = []
    for m in extract(ref_rgb):
        s = m.shape[-1] / float(cam_ref.width)
        ref_features.append(sample(m[None].float(), (pixels * s)[None].float())[0][0])
    query_maps = [m.float() for m in extract(_rgb(query_view))]
    z = query_view.cam_from_world.transform(points)[:, 2]
    depth = float({"median": z.median, "mean": z.mean}[depth_stat]())
    return BasinProblem(
        points.float(),
        ref_features,
        query_maps,
        query_view.camera,
        query_view.cam_from_world,
        depth,
        name,
        pixels,
        cam_ref,
        ref_view.cam_from_world,
    )


def pair_problem(
    ref,
    query,
    num_points: int = 1024,
    seed: int = 0,
    extractor: DenseExtractor | Extractor | None = None,
) -> BasinProblem:
    """Alignment problem between two RGB-D frames (e.g. :class:`~s2dloc.datasets.fountain.
    FountainFrame`): points lifted from ``ref`` with its depth, features sampled from ``ref``'s
    maps at their pixels, query maps and ground-truth pose from ``query``.

    ``extractor`` maps an RGB image to maps ``(C, H_l, W_l)`` (default: photometric pyramid).
    ``scene_depth`` is the mean depth of the points in the query camera.
    """
    name = f"{ref.name}->{query.name}"
    extract = extractor or photometric_pyramid
    return lifted_problem(ref, query, extract, num_points, seed, name, depth_stat="mean")


def _rgb(view) -> np.ndarray:
    rgb = getattr(view, "rgb", None)
    if rgb is None:
        rgb = np.asarray(view.image, np.float32) / 255.0
    return np.asarray(rgb, np.float32)


def synthetic_problems(
    world,
    extractor: DenseExtractor,
    conditions: tuple[str, ...],
    num_points: int = 512,
    max_problems: int | None = None,
) -> list[BasinProblem]:
    """One problem per query of ``world`` under ``conditions``: its nearest database view
    (reference condition) against the query image, with the query's true pose."""
    problems = []
    for k, q in enumerate(v for v in world.queries if v.condition in conditions):
        ref = world.database[nearest_database(world, q, 1)[0]]
        problems.append(
            lifted_problem(ref, q, extractor, num_points, seed=k, name=f"{ref.name}->{q.name}")
        )
        if max_problems is not None and len(problems) >= max_problems:
            break
    return problems
