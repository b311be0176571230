"""Swappable pipeline stages: the retrieval pairs and the S2D matches of each query can be written
to files and read back instead of being computed (like hloc's intermediate files), so a user can
inspect or replace either stage.

- Pairs (``--export-pairs FILE``): hloc's pairs format, ``query ref`` per line, the references
  each query was matched against, in retrieval order; read back with ``--pairs FILE``.
- Matches (``--export-matches FILE.h5``): per query and reference, the query pixels, the
  reference observation indices / 3D point ids, similarities and ratios, in the HDF5 layout of
  :mod:`s2dloc.datasets.point_matches` (``f[query][ref]``). ``--matches FILE.h5`` reads them: a
  query listed there is matched against the file's references only, and dense matching is skipped
  (the extractor still runs: F-PnP needs the query's feature maps).

Example of a user-made file (the references' 3D point ids seen at pixels ``p2d``)::

    write_point_matches("m.h5", "q.jpg", {"db/1.jpg": PointMatches(p2d, point3D_ids=ids)})
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from s2dloc.datasets.colmap_io import write_pairs
from s2dloc.datasets.point_matches import (
    PointMatches,
    read_point_matches,
    write_point_matches,
)
from s2dloc.geometry import Camera, Pose
from s2dloc.localization.cache import DescriptorSpec
from s2dloc.localization.map import Map
from s2dloc.localization.query import QueryResult
from s2dloc.localization.s2d import RefMatches

logger = logging.getLogger(__name__)


@dataclass
class QueryFeatures:
    """The extraction stage's output for one query: feature ``maps [(C_l, H_l, W_l)]``, their
    descriptor ``spec``, the ``dense (D, H_m, W_m)`` matching hypercolumn and the global
    retrieval descriptor ``glob (G,)``."""

    maps: list[torch.Tensor]
    spec: DescriptorSpec
    dense: torch.Tensor
    glob: torch.Tensor


def export_pairs(path: str | Path, records: dict[str, dict]) -> Path:
    """Write ``query ref`` lines of every record's retrieved references (atomically)."""
    pairs = [(r["name"], ref) for r in records.values() for ref, _ in r.get("refs") or []]
    path = write_pairs(path, pairs)
    logger.info("wrote %d pairs of %d queries to %s", len(pairs), len(records), path)
    return path


def export_matches(path: str | Path, result: QueryResult) -> bool:
    """Write (or replace) the S2D matches of ``result`` in ``path``; False if it has none."""
    if not result.ref_matches:
        return False
    entries = {
        name: PointMatches(m.p2d, m.point3D_ids, m.obs, m.scores, m.ratio, rank)
        for rank, (name, m) in enumerate(result.ref_matches.items())
    }
    write_point_matches(path, result.name, entries)
    return True


def merge_matches(path: str | Path, parts: list[Path]) -> None:
    """Move the queries of the match files ``parts`` (e.g. one per process) into ``path``."""
    parts = [Path(p) for p in parts if Path(p).exists()]
    if not parts:
        return
    with h5py.File(path, "a") as dst:
        for part in parts:
            with h5py.File(part, "r") as src:
                for key in src:
                    if key in dst:
                        del dst[key]
                    src.copy(src[key], dst, name=key)
    for part in parts:
        part.unlink()


def _observations(path, key: str, ids: np.ndarray, image_ids: np.ndarray) -> np.ndarray:
    """Index ``(K,)`` of the first observation of each point id ``(K,)`` in ``image_ids (M,)``."""
    order = np.argsort(image_ids, kind="stable")
    pos = np.searchsorted(image_ids[order], ids).clip(0, max(len(order) - 1, 0))
    found = image_ids[order][pos] == ids if len(order) else np.zeros(len(ids), bool)
    if not found.all():
        raise ValueError(
            f"{path}: {key}: point3D_ids {ids[~found][:5].tolist()} are not observed in the "
            "reference image"
        )
    return order[pos]


def to_ref_matches(path, query: str, ref: str, m: PointMatches, map_: Map) -> RefMatches:
    """Check a file's matches against the map; fill in observations or point ids."""
    key = f"{query}/{ref}"
    if ref not in map_:
        raise ValueError(f"{path}: {key}: reference {ref!r} is not in the map")
    image_ids = np.asarray(map_[ref].point3D_ids, np.int64)
    if m.observations is not None:
        obs = np.asarray(m.observations, np.int64)
        if len(obs) and (obs.min() < 0 or obs.max() >= len(image_ids)):
            raise ValueError(f"{path}: {key}: observations must be in [0, {len(image_ids)})")
        if m.point3D_ids is not None and not np.array_equal(image_ids[obs], m.point3D_ids):
            raise ValueError(f"{path}: {key}: point3D_ids disagree with the observations")
    else:
        obs = _observations(path, key, np.asarray(m.point3D_ids, np.int64), image_ids)
    k = len(obs)
    return RefMatches(
        m.keypoints,
        obs,
        image_ids[obs],
        map_.xyz(image_ids[obs]),
        np.ones(k, np.float32) if m.scores is None else m.scores,
        np.full(k, np.nan, np.float32) if m.ratio is None else m.ratio,
    )


def import_matches(path: str | Path, query: str, map_: Map) -> dict[str, RefMatches] | None:
    """The matches of ``query`` in ``path`` by reference (file order); None if it has none."""
    entries = read_point_matches(path, query)
    if entries is None:
        return None
    return {ref: to_ref_matches(path, query, ref, m, map_) for ref, m in entries.items()}


def observations_seen_at(map_: Map, name: str, camera: Camera, pose: Pose) -> np.ndarray:
    """Indices ``(N,)`` of reference ``name``'s observations whose points project into
    ``camera`` at ``pose`` (cam_from_world)."""
    X = pose.double().transform(torch.from_numpy(map_.xyz(map_[name].point3D_ids)))
    _, valid = camera.double().project(X)
    return np.flatnonzero(valid.numpy())


def references_seen_at(map_: Map, camera: Camera, pose: Pose) -> dict[str, np.ndarray]:
    """:func:`observations_seen_at` of every reference, the references that see most first
    (map order breaks ties)."""
    seen = {im.name: observations_seen_at(map_, im.name, camera, pose) for im in map_.images}
    return dict(sorted(seen.items(), key=lambda x: -len(x[1])))
