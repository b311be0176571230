"""A classical sparse baseline: SIFT (OpenCV) + PnP-RANSAC (pycolmap).

Map side, once per reference image: SIFT keypoints and descriptors on the image downscaled to
``max_side``; each keypoint takes the depth (in the reference camera) of the nearest 2D
observation of the map within ``radius`` full-resolution pixels and is lifted to 3D at its own
pixel with that depth (the exact map point when the observation is within ``snap`` px, as for
COLMAP models whose observations are SIFT keypoints); keypoints without one are dropped. Query
side: SIFT on the downscaled query, mutual-nearest + ratio-test matching against every reference
(or the ``num_refs`` references with most matches), one 2D-3D correspondence per query keypoint
(the closest descriptor), then ``pycolmap.estimate_and_refine_absolute_pose`` with the query's
own camera (distortion included). Pixels follow COLMAP: OpenCV keypoint ``pt`` + 0.5, then divided
by the downscale factor.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from scipy.spatial import cKDTree

from s2dloc.geometry import Pose
from s2dloc.localization.map import Map, RefImage
from s2dloc.localization.pnp import estimate_pose
from s2dloc.localization.query import Query

logger = logging.getLogger(__name__)

DEFAULTS = {
    "max_side": 1024,  # longest image side for SIFT (images are downscaled, never upscaled)
    "num_features": 4000,
    "ratio": 0.8,  # Lowe's ratio test
    "radius": 4.0,  # full-resolution px from a keypoint to the map observation it takes
    "snap": 0.5,  # px: closer than this, the keypoint takes the observation's 3D point itself
    "num_refs": 0,  # 0: use every reference; k: the k with most matches
    "pnp": {"max_error": 4.0, "min_inliers": 12, "seed": 0, "max_trials": 10000},
}


@dataclass
class BaselineResult:
    """Result of a keypoint baseline: ``pose`` (cam_from_world, None unless PnP succeeded),
    number of 2D-3D ``matches`` and ``inliers``, references used and timings (s)."""

    name: str
    pose: Pose | None = None
    success: bool = False
    matches: int = 0
    inliers: int = 0
    refs: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    message: str = ""


def sift_features(image: np.ndarray, max_side: int, num_features: int):
    """COLMAP-convention keypoints ``(N, 2)`` (full resolution) and float32 descriptors."""
    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    s = min(1.0, max_side / max(gray.shape))
    if s < 1.0:
        size = (round(gray.shape[1] * s), round(gray.shape[0] * s))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    sx, sy = gray.shape[1] / image.shape[1], gray.shape[0] / image.shape[0]
    kps, desc = cv2.SIFT_create(nfeatures=num_features).detectAndCompute(gray, None)
    if desc is None or not kps:
        return np.zeros((0, 2)), np.zeros((0, 128), np.float32)
    xy = (np.array([k.pt for k in kps], np.float64) + 0.5) / np.array([sx, sy])
    return xy, desc.astype(np.float32)


def _ratio_matches(d1: np.ndarray, d2: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``d1`` and ``d2`` of mutual nearest neighbours passing the ratio test, and
    their descriptor distances."""
    if len(d1) < 2 or len(d2) < 2:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    bf = cv2.BFMatcher(cv2.NORM_L2)
    fwd = bf.knnMatch(d1, d2, k=2)
    back = {m.queryIdx: m.trainIdx for m in bf.match(d2, d1)}
    pairs, dist = [], []
    for m, n in (mn for mn in fwd if len(mn) == 2):
        if m.distance < ratio * n.distance and back.get(m.trainIdx) == m.queryIdx:
            pairs.append((m.queryIdx, m.trainIdx))
            dist.append(m.distance)
    return np.array(pairs, np.int64).reshape(-1, 2), np.array(dist)


def lift_keypoints(
    map_: Map, im: RefImage, xy: np.ndarray, radius: float, snap: float
) -> tuple[np.ndarray, np.ndarray]:
    """World points of reference keypoints ``xy (N, 2)`` (COLMAP pixels of ``im``).

    Each keypoint takes the depth of the nearest map observation of ``im`` within ``radius``
    px and is unprojected at its own pixel with it (the observation's own 3D point when closer
    than ``snap`` px). Returns ``keep (N,)`` bool and the points ``(keep.sum(), 3)``.
    """
    if len(im.keypoints) == 0 or len(xy) == 0:
        return np.zeros(len(xy), bool), np.zeros((0, 3))
    dist, j = cKDTree(im.keypoints).query(xy, distance_upper_bound=radius)
    keep = np.isfinite(dist)
    X_obs = map_.xyz(im.point3D_ids[j[keep]])
    T = im.cam_from_world.double()
    z = T.transform(torch.from_numpy(X_obs))[:, 2]
    X_cam = im.camera.double().unproject(torch.from_numpy(xy[keep])[None], z[None])[0]
    X = T.inv().transform(X_cam).numpy()
    near = dist[keep] < snap
    X[near] = X_obs[near]
    return keep, X


def keep_best(
    best: dict[int, tuple[float, np.ndarray]],
    pairs: np.ndarray,
    values: np.ndarray,
    points: np.ndarray,
    higher_is_better: bool,
) -> None:
    """Update ``best`` (query keypoint -> (value, world point)) with the matches ``pairs
    (K, 2)`` (query index, reference index) of values ``(K,)`` to reference ``points (M, 3)``."""
    sign = 1.0 if higher_is_better else -1.0
    for (qi, ri), v in zip(pairs.tolist(), values.tolist()):
        if qi not in best or sign * v > sign * best[qi][0]:
            best[qi] = (v, points[ri])


def pose_from_best(
    best: dict[int, tuple[float, np.ndarray]],
    xy: np.ndarray,
    camera,
    pnp_conf: dict,
    res: BaselineResult,
) -> None:
    """PnP-RANSAC on the best 2D-3D match of each query keypoint ``xy (N, 2)``; fills ``res``
    (matches, inliers, pose when successful, message, PnP time)."""
    res.matches = len(best)
    if not best:
        res.message = "no matches"
        return
    q_idx = np.array(list(best), np.int64)
    p3d = np.stack([best[i][1] for i in q_idx.tolist()])
    t = time.perf_counter()
    pnp = estimate_pose(xy[q_idx], p3d, camera, pnp_conf)
    res.timings["pnp"] = time.perf_counter() - t
    res.success, res.message, res.inliers = pnp.success, pnp.message, pnp.num_inliers
    res.pose = pnp.pose if pnp.success else None


class SiftBaseline:
    """SIFT + PnP localizer over a :class:`Map` (reference features computed once)."""

    def __init__(self, map_: Map, conf: dict | None = None, features: dict | None = None):
        """``features``: optional ``{name: (xy, desc)}`` cache of reference SIFT, filled here and
        reused across maps over the same images (e.g. leave-one-out folds)."""
        self.map = map_
        self.conf = {**DEFAULTS, **(conf or {})}
        self.conf["pnp"] = {**DEFAULTS["pnp"], **(conf or {}).get("pnp", {})}
        self.refs: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # name -> (points3D, desc)
        c = self.conf
        features = {} if features is None else features
        for im in map_.images:
            if im.name not in features:
                image = map_.load_image(im.name)
                features[im.name] = sift_features(image, c["max_side"], c["num_features"])
            xy, desc = features[im.name]
            if len(im.keypoints) == 0 or len(xy) == 0:
                continue
            keep, X = lift_keypoints(map_, im, xy, c["radius"], c["snap"])
            self.refs[im.name] = (X, desc[keep])
        logger.info(
            "SIFT map: %d references, %d keypoints with a 3D point",
            len(self.refs),
            sum(len(v[0]) for v in self.refs.values()),
        )

    def localize(self, query: Query) -> BaselineResult:
        c, res = self.conf, BaselineResult(query.name)
        t = time.perf_counter()
        xy, desc = sift_features(query.load(), c["max_side"], c["num_features"])
        res.timings["extract"] = time.perf_counter() - t
        t = time.perf_counter()
        per_ref = []
        for name, (X, rdesc) in self.refs.items():
            pairs, dist = _ratio_matches(desc, rdesc, c["ratio"])
            per_ref.append((len(pairs), name, pairs, dist, X))
        per_ref.sort(key=lambda r: -r[0])
        if c["num_refs"]:
            per_ref = per_ref[: int(c["num_refs"])]
        best: dict[int, tuple[float, np.ndarray]] = {}  # query keypoint -> (distance, point)
        for _, name, pairs, dist, X in per_ref:
            res.refs.append(name)
            keep_best(best, pairs, dist, X, higher_is_better=False)
        res.timings["match"] = time.perf_counter() - t
        pose_from_best(best, xy, query.camera, c["pnp"], res)
        return res
