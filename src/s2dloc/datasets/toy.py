"""The F-PnP toy example: a textured 3D scene seen from a reference and a query camera.

Reference pixels with strong image gradients are lifted to 3D with the rendered depth; the
query is rendered at a known ``cam_from_world``. Features are photometric pyramids of the
images or any user extractor, so the solver can be checked against exact ground truth.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from s2dloc.datasets.synthetic import render, toy_reference_pose, toy_scene
from s2dloc.features import lift_textured_points, photometric_pyramid
from s2dloc.geometry import MODELS, Camera, Pose, sample

Extractor = Callable[[np.ndarray], list[torch.Tensor]]
# Fewest points of a toy problem: F-PnP's default ``min_points`` (with fewer, every refinement
# is flagged unsuccessful).
MIN_POINTS = 10
MIN_SIZE = 32  # pixels: points are picked at least 8 pixels from the border


@dataclass
class ToyProblem:
    """Reference/query views of the toy scene and the 3D points to align.

    Attributes:
        camera: full-resolution camera shared by both views.
        ref_pose, query_pose: ``cam_from_world`` of the reference and (true) query views.
        ref_image, query_image: ``(H, W, 3)`` float32 RGB in [0, 1].
        ref_pixels: ``(N, 2)`` pixels of the points in the reference image.
        points3d: ``(N, 3)`` world points lifted from the reference depth.
        scene_depth: mean depth of the points in the reference view (metres).
    """

    camera: Camera
    ref_pose: Pose
    query_pose: Pose
    ref_image: np.ndarray
    query_image: np.ndarray
    ref_pixels: torch.Tensor
    points3d: torch.Tensor
    scene_depth: float

    def features(
        self, extractor: Extractor | None = None, oracle: bool = False
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Reference features per level ``(N, C)`` and query maps ``(C, H, W)``, finest first.

        ``extractor`` maps an image to a list of maps (default: photometric pyramid). With
        ``oracle`` the reference features are sampled from the query maps at the true
        projections, so the cost is exactly zero at the true pose (noise-free features).
        """
        extractor = extractor or photometric_pyramid
        query_maps = [m.float() for m in extractor(self.query_image)]
        if oracle:
            X = self.query_pose.transform(self.points3d)
            return [self._sample(m, X) for m in query_maps], query_maps
        ref_maps = [m.float() for m in extractor(self.ref_image)]
        X = self.ref_pose.transform(self.points3d)
        return [self._sample(m, X) for m in ref_maps], query_maps

    def _sample(self, fmap: torch.Tensor, X_cam: torch.Tensor) -> torch.Tensor:
        s = fmap.shape[-1] / float(self.camera.width)
        p, _ = self.camera.scale(s).project(X_cam.double())
        return sample(fmap[None], p[None].to(fmap.dtype))[0][0]


def perturb(pose: Pose, rotation_deg: float, translation: float, seed: int) -> Pose:
    """``exp(delta) @ pose`` with a random direction, given rotation angle and translation norm."""
    g = torch.Generator().manual_seed(seed)
    axes = torch.randn(2, 3, generator=g, dtype=torch.float64)
    axes = axes / axes.norm(dim=-1, keepdim=True)
    delta = torch.cat([axes[0] * translation, axes[1] * math.radians(rotation_deg)])
    return Pose.exp(delta.to(pose.dtype)) @ pose


def make_toy_problem(
    seed: int = 0,
    width: int = 640,
    height: int = 480,
    num_points: int = 1024,
    baseline: float = 0.4,
    yaw_deg: float = 4.0,
    camera_model: str = "PINHOLE",
    distortion: tuple[float, ...] = (),
) -> ToyProblem:
    """Render the toy scene from its reference pose and from a query pose offset by
    ``baseline`` metres sideways and ``yaw_deg`` degrees, and lift ``num_points`` points
    (at least :data:`MIN_POINTS`; fewer if the image has fewer textured pixels).
    """
    if not isinstance(num_points, numbers.Integral) or num_points < MIN_POINTS:
        raise ValueError(f"num_points must be an integer >= {MIN_POINTS}, got {num_points!r}")
    if min(width, height) < MIN_SIZE:
        raise ValueError(f"width and height must be >= {MIN_SIZE} pixels, got {width}x{height}")
    f = 0.8 * width
    if camera_model not in MODELS:
        raise ValueError(
            f"Unsupported camera model {camera_model!r}; expected one of {list(MODELS)}"
        )
    focal = [f, f] if "fx" in MODELS[camera_model] else [f]
    num_dist = len(MODELS[camera_model]) - len(focal) - 2
    if len(distortion) > num_dist:
        raise ValueError(f"{camera_model} takes {num_dist} distortion params, got {distortion}")
    params = [*focal, width / 2, height / 2, *distortion, *[0.0] * (num_dist - len(distortion))]
    camera = Camera.from_colmap(camera_model, width, height, params)
    scene = toy_scene(seed)
    ref_pose = Pose.from_Rt(*toy_reference_pose())
    rng = np.random.default_rng(seed)
    sideways = Pose.from_Rt(np.eye(3), [rng.choice([-1.0, 1.0]) * baseline, 0.1 * baseline, 0.0])
    yaw = Pose.exp(torch.tensor([0, 0, 0, 0, math.radians(yaw_deg), 0], dtype=torch.float64))
    query_pose = yaw @ sideways @ ref_pose
    ref = render(scene, camera, ref_pose)
    query = render(scene, camera, query_pose)
    points, pixels, depth = lift_textured_points(
        ref.rgb, ref.depth, camera, ref_pose, num_points, rng
    )
    return ToyProblem(
        camera, ref_pose, query_pose, ref.rgb, query.rgb, pixels, points, float(depth.mean())
    )
