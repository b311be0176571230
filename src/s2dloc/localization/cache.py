"""Reference features computed once and cached in HDF5, keyed by image name.

Per reference image ``name`` the group ``name`` holds ``descriptors (M, D)`` (float16
hypercolumns at the observations), ``features/<l> (M, C_l)`` (float32, every level F-PnP
refines on, :func:`fpnp_levels`),
``global (G,)``, ``point3D_ids (M,)``, ``keypoints (M, 2)`` and ``image_digest (16,)`` (of the
image the features were computed from, :meth:`Map.image_digest`).

Each entry carries a checksum over its data and the settings, and the file is only ever
replaced atomically (see :mod:`s2dloc.localization.cache_store`): an interrupted, altered or
truncated entry, or one of an image that changed under its name, is named in a warning and
recomputed by :func:`build_cache` and refused by :func:`load_cache`, and a process killed at
any moment leaves a cache that opens. The file's ``signature`` attribute (the extractor, a
digest of its weights, the descriptor settings and F-PnP's pooled levels) must match, else the
cache is refused as stale.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from s2dloc.features.base import extraction_size, size_multiple
from s2dloc.features.coarse import coarse_levels
from s2dloc.features.common import fingerprint
from s2dloc.localization import descriptors as D
from s2dloc.localization.cache_store import (
    CacheWriter,
    check_signature,
    open_cache,
    read_entry,
    remove_stale_temporaries,
    scan_cache,
    stale_entry,
)
from s2dloc.localization.config import max_side
from s2dloc.localization.map import Map, RefImage

logger = logging.getLogger(__name__)

COMMIT_SECONDS = 60.0  # seconds of work between two commits of the cache file


@dataclass
class DescriptorSpec:
    """Which levels make the hypercolumn / global descriptor for one extractor."""

    match: int
    levels: list[int]
    context: int
    global_levels: list[int]

    @classmethod
    def from_maps(
        cls, maps: list[torch.Tensor], strides: Sequence[float], conf: dict
    ) -> DescriptorSpec:
        """The spec for ``maps`` of an extractor with ``strides``: strides in the image the
        extractor saw (after ``resize_max``), so that every image, whatever its size, makes
        descriptors from the same levels."""
        strides = [float(s) for s in strides]
        m = D.match_level(strides, conf["s2d"]["match_stride"])
        levels = D.hypercolumn_levels(strides, m)
        ctx = conf["s2d"]["context"]
        if ctx is None or ctx == "auto":
            ctx = 1 if sum(maps[i].shape[0] for i in levels) < 32 else 0
        n = len(maps)
        chosen = conf["retrieval"]["levels"]
        if chosen is None or chosen == "auto":  # this image's own size (see resolve_global_levels)
            long_side = max(maps[0].shape[-2:]) * strides[0]
            chosen = [D.global_level(strides, long_side)]
        glevels = sorted({int(i) % n for i in chosen})
        return cls(m, levels, int(ctx), glevels)


def resolve_global_levels(conf: dict, extractor, map_: Map) -> dict:
    """``conf`` with ``retrieval.levels`` fixed for a whole map: null or ``"auto"`` becomes the
    level :func:`~s2dloc.localization.descriptors.global_level` picks (for the ``strides`` of
    ``extractor``) for the median long side of the map's images as extracted (after
    ``resize_max``), so that references and queries of any size pool the same level."""
    if conf["retrieval"]["levels"] not in (None, "auto"):
        return conf
    strides, multiple = extractor.strides, size_multiple(extractor)
    sides = [
        max(extraction_size(*map_[n].camera.size.round().int().tolist(), multiple, max_side(conf)))
        for n in map_.names
    ]
    # A negative index, as levels are written by hand (-1: coarsest).
    level = D.global_level(strides, float(np.median(sides))) - len(strides) if sides else -1
    out = copy.deepcopy(conf)
    out["retrieval"]["levels"] = [level]
    return out


@dataclass
class RefFeatures:
    """Cached features of one reference image (``M`` observations)."""

    descriptors: torch.Tensor  # (M, D) float32, unit norm
    features: list[torch.Tensor]  # per level (M, C_l), finest first
    global_desc: torch.Tensor  # (G,)
    point3D_ids: np.ndarray  # (M,)
    keypoints: np.ndarray  # (M, 2)


def signature(conf: dict, extractor: torch.nn.Module | None = None) -> str:
    """The settings a cache depends on, as a canonical JSON string: the extractor's name and
    the digest of its weights and settings (:func:`~s2dloc.features.common.fingerprint`), so
    features of a retrained checkpoint under the same name or path are never read back as
    current (without ``extractor``: the settings alone)."""
    keys = {
        "extractor": conf["extractor"],
        "resize_max": conf["resize_max"],
        "s2d": {k: conf["s2d"][k] for k in ("match_stride", "context")},
        "retrieval": {k: conf["retrieval"][k] for k in ("levels", "grid", "gem_p")},
    }
    if conf["fpnp"]["coarse_levels"]:  # only when set: caches without them stay current
        keys["coarse_levels"] = list(conf["fpnp"]["coarse_levels"])
    if extractor is not None:
        keys["weights"] = fingerprint(extractor)
    return json.dumps(keys, sort_keys=True)


def fpnp_levels(maps: list[torch.Tensor], conf: dict) -> list[torch.Tensor]:
    """The levels F-PnP refines on: ``maps`` (per level ``(C_l, H_l, W_l)``) and, with
    ``fpnp.coarse_levels`` set, the coarsest one pooled by those factors."""
    factors = conf["fpnp"]["coarse_levels"]
    return coarse_levels(maps, factors) if factors else list(maps)


def compute_features(extractor, image: np.ndarray, im: RefImage, conf: dict) -> RefFeatures:
    """The features of reference ``im`` (its ``image``) at its observations."""
    maps = extractor.extract(image, max_side(conf))
    size = (image.shape[1], image.shape[0])
    spec = DescriptorSpec.from_maps(maps, extractor.strides, conf)
    pts = torch.from_numpy(np.asarray(im.keypoints, np.float64)).float()
    desc = D.point_descriptors(maps, pts, size, spec.levels, spec.match, spec.context)
    feats = D.sample_levels(fpnp_levels(maps, conf), pts, size)
    r = conf["retrieval"]
    glob = D.global_descriptor(maps, spec.global_levels, r["grid"], r["gem_p"])
    return RefFeatures(desc, feats, glob, im.point3D_ids, im.keypoints)


def entry_arrays(map_: Map, extractor, name: str, conf: dict) -> dict[str, np.ndarray]:
    """The datasets of the cache entry of reference ``name`` (see the module doc)."""
    im = map_[name]
    ref = compute_features(extractor, map_.load_image(name), im, conf)
    out = {"descriptors": ref.descriptors.numpy().astype(np.float16)}
    out.update({f"features/{i}": x.numpy().astype(np.float32) for i, x in enumerate(ref.features)})
    out["global"] = ref.global_desc.numpy().astype(np.float32)
    out["point3D_ids"] = np.asarray(im.point3D_ids, np.int64)
    out["keypoints"] = np.asarray(im.keypoints, np.float64)
    out["image_digest"] = map_.image_digest(name)
    return out


def build_cache(
    map_: Map,
    extractor,
    path: str | Path,
    conf: dict,
    overwrite: bool = False,
    progress: bool = True,
    commit_seconds: float = COMMIT_SECONDS,
    sig: str | None = None,
) -> int:
    """Compute the features of every reference image without a sound entry; returns how many.

    ``overwrite`` discards the whole cache first. Broken entries are warned about and recomputed.
    ``sig``: :func:`signature` of ``conf`` and ``extractor`` when already computed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    sig = sig or signature(conf, extractor)
    if overwrite:
        path.unlink(missing_ok=True)
    good, bad = scan_cache(path, map_, sig)
    warn_broken(path, bad)
    todo = [n for n in map_.names if n not in good]
    if todo or not path.exists():
        writer = CacheWriter(path, sig, list(bad), commit_seconds)
        ok = False
        try:
            for name in tqdm(todo, desc="reference features", disable=not progress, leave=False):
                writer.add(name, entry_arrays(map_, extractor, name, conf))
            ok = True
        finally:
            writer.close(ok)
    logger.info("feature cache %s: %d computed, %d reused", path, len(todo), len(good))
    return len(todo)


def warn_broken(path: Path, bad: dict[str, str], show: int = 5) -> None:
    """One warning per kind of broken entry, naming the first ``show`` entries of each."""
    by_why: dict[str, list[str]] = {}
    for name, why in bad.items():
        by_why.setdefault(why, []).append(name)
    for why, names in by_why.items():
        if len(names) == 1:
            logger.warning("feature cache %s: entry %r is %s; recomputing it", path, names[0], why)
            continue
        more = f" and {len(names) - show} more" if len(names) > show else ""
        first = ", ".join(repr(n) for n in names[:show])
        logger.warning(
            "feature cache %s: %d entries are %s (%s%s); recomputing them",
            path,
            len(names),
            why,
            first,
            more,
        )


def load_cache(
    map_: Map, path: str | Path, conf: dict, extractor: torch.nn.Module, sig: str | None = None
) -> dict[str, RefFeatures]:
    """All reference features of ``map_`` from a complete, sound cache (checked against the map,
    each entry's checksum and the weights and settings of ``extractor``; ``sig`` as in
    :func:`build_cache`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"feature cache {path} does not exist; build it first")
    sig, out = sig or signature(conf, extractor), {}
    with open_cache(path, "r") as f:
        check_signature(f, path, sig)
        for im in map_.images:
            arrays, why = read_entry(f, im.name, sig)
            if arrays is None:
                raise ValueError(
                    f"feature cache {path}: entry {im.name!r} is {why or 'missing'}; rebuild it"
                )
            why = stale_entry(arrays, map_, im.name)
            if why:
                raise ValueError(f"feature cache {path}: entry {im.name!r} is {why}; rebuild it")
            out[im.name] = _features(arrays)
    return out


def _features(a: dict[str, np.ndarray]) -> RefFeatures:
    n = sum(k.startswith("features/") for k in a)
    return RefFeatures(
        torch.from_numpy(a["descriptors"].astype(np.float32)),
        [torch.from_numpy(a[f"features/{i}"]) for i in range(n)],
        torch.from_numpy(a["global"]),
        a["point3D_ids"],
        a["keypoints"],
    )


def compute_all(map_: Map, extractor, conf: dict, progress: bool = True) -> dict[str, RefFeatures]:
    """Reference features of every map image, in memory (no cache file)."""
    out = {}
    for im in tqdm(map_.images, desc="reference features", disable=not progress, leave=False):
        out[im.name] = compute_features(extractor, map_.load_image(im.name), im, conf)
    return out
