"""Runners of the real-data validation benchmark (``benchmarks/real.py``) on strecha_dev.

A scene is localized at a reduced size: images downscaled by ``s`` (INTER_AREA), cameras and
map observations scaled by ``s`` (COLMAP convention). Each held-out image
(:data:`~s2dloc.evaluation.real.STRECHA_HELD_OUT`) is localized, under each appearance
condition, against a map triangulated with the known poses of the other images only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pycolmap
import torch

from s2dloc.evaluation.conditions import CONDITIONS, apply_condition
from s2dloc.evaluation.convergence import BasinProblem
from s2dloc.evaluation.real import (
    correct_references,
    covisible_fraction,
    depth_points,
    held_out_images,
    points_problem,
    retrieval_hit,
    training_images,
)
from s2dloc.geometry import Camera, Pose
from s2dloc.localization import descriptors as D
from s2dloc.localization.cache import DescriptorSpec
from s2dloc.localization.config import max_side, resolve
from s2dloc.localization.map import Map, RefImage, read_rgb
from s2dloc.localization.query import Query
from s2dloc.localization.retrieval import Retrieval
from s2dloc.mapping.known_poses import check_known_poses_folder, triangulate_known_poses

logger = logging.getLogger(__name__)


@dataclass
class Scene:
    """A strecha_dev scene at scale ``s``: the held-out ``map`` (scaled, images in memory),
    ground-truth ``cameras`` (scaled) and ``poses`` of every image, downscaled ``images``."""

    name: str
    s: float
    map: Map
    cameras: dict[str, Camera]
    poses: dict[str, Pose]
    images: dict[str, np.ndarray] = field(repr=False)

    @property
    def queries(self) -> tuple[str, ...]:
        return held_out_images(self.name)

    def query_image(self, name: str, condition: str) -> np.ndarray:
        """The downscaled query under ``condition``, seeded by query and condition index."""
        seed = 1000 * self.queries.index(name) + CONDITIONS.index(condition)
        return apply_condition(self.images[name], condition, seed)

    def correct_refs(self, name: str, min_fraction: float = 0.3) -> set[str]:
        """References that see the query's view (see :func:`correct_references`)."""
        pts = {im.name: self.map.xyz(im.point3D_ids) for im in self.map.images}
        return correct_references(pts, self.cameras[name], self.poses[name], min_fraction)


def held_out_map(root: Path, scene: str, maps: Path) -> Map:
    """The map of ``scene`` from its training images: ``maps/<scene>`` if it holds a model
    (a bare COLMAP model, or a ``sfm/`` folder triangulated with the same arguments), else
    triangulated there with the known poses."""
    out = maps / scene
    model = pycolmap.Reconstruction(str(root / "sparse"))
    names = training_images(scene, sorted(im.name for im in model.images.values()))
    if (out / "sfm").is_dir() or (out / "images.bin").exists():
        check_known_poses_folder(root / "images", root / "sparse", out, image_names=names)
    else:  # triangulate_known_poses guards its folder itself
        logger.info("triangulating %s from %d training images into %s", scene, len(names), out)
        triangulate_known_poses(
            root / "images", root / "sparse", out, image_names=names, progress=False
        )
    map_ = (
        Map.load(out, root / "images")
        if (out / "sfm").is_dir()
        else Map.from_colmap(out, root / "images")
    )
    leaked = set(map_.names) & set(held_out_images(scene))
    if leaked:
        raise ValueError(f"map {out} contains held-out images {sorted(leaked)}")
    return map_


def load_scene(root: Path, scene: str, maps: Path, max_side: int) -> Scene:
    """Ground truth, held-out map and downscaled images of one strecha_dev scene."""
    gt = Map.from_colmap(pycolmap.Reconstruction(str(root / scene / "sparse")), validate=False)
    map_ = held_out_map(root / scene, scene, maps)
    cam = gt.images[0].camera
    w, h = (int(v) for v in cam.size.tolist())
    s = min(1.0, max_side / max(w, h))
    size = (round(w * s), round(h * s))
    images = {
        im.name: cv2.resize(
            read_rgb(root / scene / "images" / im.name), size, interpolation=cv2.INTER_AREA
        )
        for im in gt.images
    }
    refs = [
        RefImage(im.name, im.camera.scale(s), im.cam_from_world, im.point3D_ids, im.keypoints * s)
        for im in map_.images
    ]
    small = Map(refs, map_.point_ids, map_.points3D, None, {n: images[n] for n in map_.names})
    cams = {im.name: im.camera.scale(s) for im in gt.images}
    poses = {im.name: im.cam_from_world.double() for im in gt.images}
    return Scene(scene, s, small.validate(), cams, poses, images)


@dataclass
class Record:
    """One localization: errors (deg, m; inf when failed) of the PnP and final poses."""

    method: str
    scene: str
    condition: str
    query: str
    rot_pnp: float
    trans_pnp: float
    rot: float
    trans: float
    seconds: float
    retrieval_hit: bool | None = None


def pose_error(gt: Pose, pose: Pose | None) -> tuple[float, float]:
    if pose is None:
        return float("inf"), float("inf")
    return float(gt.angle_to(pose)), float(gt.center_distance_to(pose))


Run = Callable[[Query], tuple[Pose | None, Pose | None, list[str]]]


def run_method(
    scene: Scene, method: str, run: Run, conditions, max_queries: int = 0, k: int = 5
) -> list[Record]:
    """Localize the held-out queries under ``conditions`` with ``run(query) -> (PnP pose,
    final pose, retrieved names)``; retrieval hit at ``k`` when names are returned."""
    out = []
    for name in scene.queries[: max_queries or None]:
        correct = scene.correct_refs(name)
        for cond in conditions:
            query = Query(name, scene.cameras[name], image=scene.query_image(name, cond))
            t = time.perf_counter()
            pnp, final, refs = run(query)
            secs = time.perf_counter() - t
            e_pnp, e = pose_error(scene.poses[name], pnp), pose_error(scene.poses[name], final)
            hit = retrieval_hit(refs, correct, k) if refs else None
            out.append(Record(method, scene.name, cond, name, *e_pnp, *e, secs, hit))
            logger.info("%s %s %s: %.2f deg %.3f m (%.1f s)", method, name, cond, *e, secs)
    return out


def basin_reference(scene: Scene, name: str, min_fraction: float = 0.5) -> RefImage:
    """The training image nearest in viewing direction to query ``name`` among those that see
    its view (at least ``min_fraction`` of their map points project into it at its true pose):
    the reference a retrieval step would put first."""
    cam, pose = scene.cameras[name], scene.poses[name]
    seeing = [
        im
        for im in scene.map.images
        if covisible_fraction(scene.map.xyz(im.point3D_ids), cam, pose) >= min_fraction
    ]
    if not seeing:
        raise ValueError(f"{scene.name}: no training image sees {min_fraction:.0%} of {name}")
    return min(seeing, key=lambda im: float(pose.angle_to(im.cam_from_world.double())))


def basin_problems(
    scene: Scene, extract, conditions, max_queries: int = 0, num_points: int = 4000
) -> list[BasinProblem]:
    """One F-PnP problem per held-out query and condition: the reference of
    :func:`basin_reference`, its map points visible in the query (evenly subsampled to
    ``num_points``, the localizer's ``fpnp.max_points``)."""
    problems = []
    for name in scene.queries[: max_queries or None]:
        cam, pose = scene.cameras[name], scene.poses[name]
        ref = basin_reference(scene, name)
        X = scene.map.xyz(ref.point3D_ids)
        _, valid = cam.double().project(pose.transform(torch.from_numpy(X)))
        idx = np.flatnonzero(valid.numpy())
        idx = idx[np.linspace(0, len(idx) - 1, min(num_points, len(idx))).round().astype(int)]
        for cond in conditions:
            problems.append(
                points_problem(
                    scene.map.load_image(ref.name),
                    ref.keypoints[idx],
                    ref.camera,
                    X[idx],
                    scene.query_image(name, cond),
                    cam,
                    pose,
                    extract,
                    f"{ref.name}->{name} {cond}",
                )
            )
    return problems


def synthetic_retrieval(
    world,
    describe: Callable[[np.ndarray], torch.Tensor],
    k: int = 5,
    min_fraction: float = 0.3,
) -> float:
    """Retrieval recall@k (%) on a synthetic world: database views ranked as the pipeline ranks
    them (:class:`~s2dloc.localization.retrieval.Retrieval`) by ``describe(image uint8) ->
    (G,)``; a view is correct when ``min_fraction`` of its depth-lifted grid points project
    into the query at its true pose."""
    db = list(world.database)
    retrieval = Retrieval(
        [str(i) for i in range(len(db))],
        torch.stack([describe(_uint8(v.rgb)) for v in db]),
    )
    pts = {str(i): depth_points(v.depth, v.camera, v.cam_from_world) for i, v in enumerate(db)}
    hits = []
    for q in world.queries:
        top = [name for name, _ in retrieval(describe(_uint8(q.rgb)), k)]
        correct = correct_references(pts, q.camera, q.cam_from_world, min_fraction)
        hits.append(retrieval_hit(top, correct, k))
    return 100 * float(np.mean(hits))


def _uint8(rgb: np.ndarray) -> np.ndarray:
    return (255 * np.clip(rgb, 0, 1)).round().astype(np.uint8)


def global_describer(extractor, conf: dict | None = None) -> Callable[[np.ndarray], torch.Tensor]:
    """The pipeline's global descriptor ``(G,)`` of an image with ``extractor`` (as
    :meth:`~s2dloc.localization.pipeline.Localizer.features` computes it)."""
    conf = resolve(conf)
    r = conf["retrieval"]

    def describe(image: np.ndarray) -> torch.Tensor:
        maps = extractor.extract(image, max_side(conf))
        levels = DescriptorSpec.from_maps(maps, extractor.strides, conf).global_levels
        return D.global_descriptor(maps, levels, r["grid"], r["gem_p"])

    return describe
