"""Shared helpers for the F-PnP tests: batching the toy problem and pose errors."""

from __future__ import annotations

import torch

from s2dloc.datasets.toy import ToyProblem, perturb
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.geometry import Camera, Pose

# Translation of a perturbed start per degree of rotation (metres; scene depth is ~5.7 m).
METRES_PER_DEG = 0.05


def batch_camera(camera: Camera, B: int) -> Camera:
    return Camera(camera.model, camera.size.expand(B, 2), camera.params.expand(B, -1))


def batch_pose(pose: Pose, B: int) -> Pose:
    return Pose(pose.R.expand(B, 3, 3), pose.t.expand(B, 3))


def starts(toy: ToyProblem, deg: float, seeds) -> Pose:
    """Perturbed initial poses ``(len(seeds),)``: ``deg`` degrees and matching translation."""
    return Pose.stack([perturb(toy.query_pose, deg, deg * METRES_PER_DEG, s) for s in seeds])


def refine_toy(solver, toy: ToyProblem, refs, maps, init: Pose, levels=None, points=None):
    """Refine the same toy query from every pose of the batch ``init``."""
    B = init.shape[0]
    levels = range(len(maps)) if levels is None else levels
    points = toy.points3d.float() if points is None else points
    return solver.refine_batch(
        points.expand(B, -1, -1),
        [refs[i].expand(B, -1, -1) for i in levels],
        [maps[i].expand(B, -1, -1, -1) for i in levels],
        batch_camera(toy.camera, B),
        init,
    )


def errors(toy: ToyProblem, pose: Pose) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation error (deg) and camera-centre error relative to the scene depth."""
    rot = pose.angle_to(toy.query_pose)
    centre = pose.center_distance_to(toy.query_pose) / toy.scene_depth
    return rot, centre


def refine_one(backend, toy, oracle, points=None, refs=None, maps=None, init=None, **kwargs):
    """Refine one toy query (default: oracle features, a 3 degree start); ``(init, result)``."""
    init = init if init is not None else perturb(toy.query_pose, 3.0, 0.15, 0)
    points = toy.points3d.float() if points is None else points
    return init, FeatureMetricPnP(backend=backend, **kwargs).refine(
        points,
        oracle[0] if refs is None else refs,
        oracle[1] if maps is None else maps,
        toy.camera,
        init,
    )
