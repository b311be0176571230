"""Alignment problems with exact ground truth, built from synthetic worlds or RGB-D frames,
for comparing feature extractors with F-PnP (see :mod:`s2dloc.evaluation.convergence`)."""

from __future__ import annotations

import numpy as np
import torch

from s2dloc.evaluation.convergence import BasinProblem
from s2dloc.features import select_textured_pixels
from s2dloc.features.base import DenseExtractor
from s2dloc.geometry import sample


def lifted_problem(ref_view, query_view, extractor: DenseExtractor, num_points: int = 512,
                   seed: int = 0, name: str = "") -> BasinProblem:  # fmt: skip
    """Points lifted from ``ref_view``'s depth, features from both images by ``extractor``.

    Views need ``rgb`` (H, W, 3) float in [0, 1] (or ``image`` uint8), ``depth`` (H, W) metric
    z-depth, ``camera`` and ``cam_from_world``.
    """
    ref_rgb = _rgb(ref_view)
    rng = np.random.default_rng(seed)
    pixels = select_textured_pixels(ref_rgb, ref_view.depth, num_points, rng).double()
    depth = torch.from_numpy(
        np.asarray(ref_view.depth)[pixels[:, 1].long(), pixels[:, 0].long()]
    ).double()
    cam_ref = ref_view.camera
    points = ref_view.cam_from_world.inv().transform(
        cam_ref.unproject(pixels[None], depth[None])[0]
    )
    ref_maps = extractor.extract(ref_rgb)
    query_maps = extractor.extract(_rgb(query_view))
    ref_features = []
    for m in ref_maps:
        s = m.shape[-1] / float(cam_ref.width)
        p = pixels * s
        ref_features.append(sample(m[None].float(), p[None].float())[0][0])
    X_q = query_view.cam_from_world.transform(points)
    return BasinProblem(points.float(), ref_features, query_maps, query_view.camera,
                        query_view.cam_from_world, float(X_q[:, 2].median()), name,
                        pixels, cam_ref, ref_view.cam_from_world)  # fmt: skip


def _rgb(view) -> np.ndarray:
    rgb = getattr(view, "rgb", None)
    if rgb is None:
        rgb = np.asarray(view.image, np.float32) / 255.0
    return np.asarray(rgb, np.float32)


def synthetic_problems(world, extractor: DenseExtractor, conditions: tuple[str, ...],
                       num_points: int = 512, max_problems: int | None = None) -> list[BasinProblem]:  # fmt: skip
    """One problem per query of ``world`` under ``conditions``: its nearest database view
    (reference condition) against the query image, with the query's true pose."""
    from s2dloc.datasets.synthetic.export import nearest_database

    problems = []
    for k, q in enumerate(v for v in world.queries if v.condition in conditions):
        ref = world.database[nearest_database(world, q, 1)[0]]
        problems.append(lifted_problem(ref, q, extractor, num_points, seed=k,
                                       name=f"{ref.name}->{q.name}"))  # fmt: skip
        if max_problems is not None and len(problems) >= max_problems:
            break
    return problems
