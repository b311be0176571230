"""Reference features computed once and cached in HDF5, keyed by image name.

Per reference image ``name`` the group ``name`` holds ``descriptors (M, D)`` (float16
hypercolumns at the observations), ``features/<l> (M, C_l)`` (float32, every level, for F-PnP),
``global (G,)``, ``point3D_ids (M,)`` and ``keypoints (M, 2)``; a group counts only once its
``complete`` attribute is set (after its data is flushed), so a half-written cache is never
trusted: incomplete groups are dropped and recomputed. The file's ``signature`` attribute (the
extractor and descriptor settings) must match, else the cache is stale and refused unless
``overwrite``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from s2dloc.localization import descriptors as D
from s2dloc.localization.map import Map

logger = logging.getLogger(__name__)


@dataclass
class DescriptorSpec:
    """Which levels make the hypercolumn / global descriptor for one extractor."""

    match: int
    levels: list[int]
    context: int
    global_levels: list[int]

    @classmethod
    def from_maps(cls, maps: list[torch.Tensor], width: int, conf: dict) -> DescriptorSpec:
        strides = D.level_strides(maps, width)
        m = D.match_level(strides, conf["s2d"]["match_stride"])
        levels = D.hypercolumn_levels(strides, m)
        ctx = conf["s2d"]["context"]
        if ctx == "auto":
            ctx = 1 if sum(maps[i].shape[0] for i in levels) < 32 else 0
        n = len(maps)
        glevels = sorted({int(i) % n for i in conf["retrieval"]["levels"]})
        return cls(m, levels, int(ctx), glevels)


@dataclass
class RefFeatures:
    """Cached features of one reference image (``M`` observations)."""

    descriptors: torch.Tensor  # (M, D) float32, unit norm
    features: list[torch.Tensor]  # per level (M, C_l), finest first
    global_desc: torch.Tensor  # (G,)
    point3D_ids: np.ndarray  # (M,)
    keypoints: np.ndarray  # (M, 2)


def signature(conf: dict) -> str:
    """The settings a cache depends on, as a canonical JSON string."""
    keys = {"extractor": conf["extractor"],
            "s2d": {k: conf["s2d"][k] for k in ("match_stride", "context")},
            "retrieval": {k: conf["retrieval"][k] for k in ("levels", "grid", "gem_p")}}  # fmt: skip
    return json.dumps(keys, sort_keys=True)


def compute_features(extractor, image: np.ndarray, pixels: np.ndarray, conf: dict):
    """Maps of ``image`` and the cached quantities at ``pixels (M, 2)``."""
    maps = extractor.extract(image)
    size = (image.shape[1], image.shape[0])
    spec = DescriptorSpec.from_maps(maps, size[0], conf)
    pts = torch.from_numpy(np.asarray(pixels, np.float64)).float()
    desc = D.point_descriptors(maps, pts, size, spec.levels, spec.match, spec.context)
    feats = D.sample_levels(maps, pts, size)
    r = conf["retrieval"]
    glob = D.global_descriptor(maps, spec.global_levels, r["grid"], r["gem_p"])
    return maps, desc, feats, glob


def build_cache(
    map_: Map, extractor, path: str | Path, conf: dict, overwrite: bool = False,
    progress: bool = True,
) -> int:  # fmt: skip
    """Compute the features of every reference image not yet cached; returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sig = signature(conf)
    if overwrite and path.exists():
        path.unlink()
    try:
        f = h5py.File(path, "a")
    except OSError as err:
        raise ValueError(f"cache {path} is unreadable ({err}); rerun with overwrite") from None
    computed = 0
    with f:
        old = f.attrs.get("signature")
        if old is not None and old != sig:
            raise ValueError(f"cache {path} was built with other settings ({old}); "
                             f"rerun with overwrite or use another cache path")  # fmt: skip
        f.attrs["signature"] = sig
        todo = [im for im in map_.images if not _complete(f, im.name)]
        for im in tqdm(todo, desc="reference features", disable=not progress, leave=False):
            if im.name in f:  # a group left incomplete by an interrupted run
                del f[im.name]
            _, desc, feats, glob = compute_features(
                extractor, map_.load_image(im.name), im.keypoints, conf
            )
            g = f.create_group(im.name)
            g.create_dataset("descriptors", data=desc.numpy().astype(np.float16))
            for li, x in enumerate(feats):
                g.create_dataset(f"features/{li}", data=x.numpy().astype(np.float32))
            g.create_dataset("global", data=glob.numpy().astype(np.float32))
            g.create_dataset("point3D_ids", data=im.point3D_ids)
            g.create_dataset("keypoints", data=im.keypoints)
            f.flush()
            g.attrs["complete"] = True
            f.flush()
            computed += 1
    logger.info("feature cache %s: %d computed, %d reused", path, computed,
                len(map_.images) - computed)  # fmt: skip
    return computed


def _complete(f: h5py.File, name: str) -> bool:
    return name in f and isinstance(f[name], h5py.Group) and bool(f[name].attrs.get("complete"))


def load_cache(map_: Map, path: str | Path, conf: dict) -> dict[str, RefFeatures]:
    """All reference features of ``map_`` from a complete cache (checked against the map)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"feature cache {path} does not exist; build it first")
    out = {}
    with h5py.File(path, "r") as f:
        if f.attrs.get("signature") != signature(conf):
            raise ValueError(f"cache {path} was built with other settings; rebuild it")
        for im in map_.images:
            if not _complete(f, im.name):
                raise ValueError(f"cache {path} lacks reference {im.name!r}; rebuild it")
            g = f[im.name]
            ids = g["point3D_ids"][()]
            if not np.array_equal(ids, im.point3D_ids):
                raise ValueError(f"cache {path} is stale for {im.name!r} (observations differ)")
            n = len(g["features"])
            out[im.name] = RefFeatures(
                torch.from_numpy(g["descriptors"][()].astype(np.float32)),
                [torch.from_numpy(g[f"features/{i}"][()]) for i in range(n)],
                torch.from_numpy(g["global"][()]), ids, g["keypoints"][()],
            )  # fmt: skip
    return out


def compute_all(map_: Map, extractor, conf: dict, progress: bool = True) -> dict[str, RefFeatures]:
    """Reference features of every map image, in memory (no cache file)."""
    out = {}
    for im in tqdm(map_.images, desc="reference features", disable=not progress, leave=False):
        _, desc, feats, glob = compute_features(
            extractor, map_.load_image(im.name), im.keypoints, conf
        )
        out[im.name] = RefFeatures(desc, feats, glob, im.point3D_ids, im.keypoints)
    return out
