"""s2dloc's 2D-3D match HDF5 files (the output of its matching stage, in an hloc-like layout).

One group per query and reference, keyed by :func:`~s2dloc.datasets.hloc_io.names_to_pair`
``(query, ref)`` (so ``f[query][ref]``, ``/`` in names replaced by ``-``), holding
``keypoints (K, 2)`` float64 query pixels in COLMAP's convention (NOT shifted like hloc
keypoints), ``point3D_ids (K,)`` int64 and/or ``observations (K,)`` int64 (indices into the
reference image's 2D points, in the map's order), optional ``scores (K,)`` and ``ratio (K,)``.
Attributes: ``name`` (the original image name) on both groups, ``rank`` (the order of the
references) on reference groups, ``complete`` on the query group (0 while it is being written).
A query's entry is replaced as a whole by :func:`write_point_matches`.

A new file is created atomically; into an existing file entries are added in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from s2dloc.datasets.h5_files import open_h5, write_h5


@dataclass
class PointMatches:
    """2D-3D matches of a query with one reference: query ``keypoints (K, 2)`` (COLMAP pixels),
    ``point3D_ids (K,)`` and/or ``observations (K,)``, optional ``scores`` / ``ratio (K,)``;
    ``rank`` orders a query's references."""

    keypoints: np.ndarray
    point3D_ids: np.ndarray | None = None
    observations: np.ndarray | None = None
    scores: np.ndarray | None = None
    ratio: np.ndarray | None = None
    rank: int | None = None

    def __post_init__(self):
        if np.ndim(self.keypoints) != 2 or np.shape(self.keypoints)[1] != 2:
            raise ValueError(f"keypoints must be (K, 2), got {np.shape(self.keypoints)}")
        self.keypoints = np.asarray(self.keypoints, np.float64)
        if self.point3D_ids is None and self.observations is None:
            raise ValueError("needs point3D_ids or observations (K,)")
        k = len(self.keypoints)
        for field in ("point3D_ids", "observations", "scores", "ratio"):
            if getattr(self, field) is not None and np.shape(getattr(self, field)) != (k,):
                raise ValueError(f"{field} must be (K={k},), got {np.shape(getattr(self, field))}")


_POINT_FIELDS = {
    "point3D_ids": np.int64,
    "observations": np.int64,
    "scores": np.float32,
    "ratio": np.float32,
}


def write_point_matches(path: str | Path, query: str, matches: Mapping[str, PointMatches]) -> Path:
    """Write (or replace) the entry of ``query``: ``{ref name: PointMatches}``."""
    path = Path(path)
    key = query.replace("/", "-")

    def fill(f: h5py.File):
        if key in f:
            del f[key]
        g = f.create_group(key)
        g.attrs.update(name=query, complete=0)
        for rank, (ref, m) in enumerate(matches.items()):
            r = g.create_group(ref.replace("/", "-"))
            r.attrs.update(name=ref, rank=rank if m.rank is None else m.rank)
            r.create_dataset("keypoints", data=m.keypoints.astype(np.float64))
            for field, dtype in _POINT_FIELDS.items():
                if getattr(m, field) is not None:
                    r.create_dataset(field, data=np.asarray(getattr(m, field)).astype(dtype))
        g.attrs["complete"] = 1
        f.flush()

    return write_h5(path, fill)


def read_point_matches(path: str | Path, query: str) -> dict[str, PointMatches] | None:
    """``{ref name: PointMatches}`` of ``query`` ordered by rank (then name); None if absent."""
    key = query.replace("/", "-")
    out = []
    with open_h5(path) as f:
        if key not in f:
            return None
        g = f[key]
        if not isinstance(g, h5py.Group) or int(g.attrs.get("complete", 1)) != 1:
            raise ValueError(f"{path}: the matches of {query!r} are incomplete (interrupted write)")
        for ref_key, r in g.items():
            if not isinstance(r, h5py.Group) or "keypoints" not in r:
                raise ValueError(f"{path}: {key}/{ref_key} must be a group with 'keypoints'")
            arrays = {n: r[n][()] for n in _POINT_FIELDS if n in r}
            rank = r.attrs.get("rank")
            try:
                rank = None if rank is None else int(rank)
                m = PointMatches(r["keypoints"][()], rank=rank, **arrays)
            except ValueError as err:
                raise ValueError(f"{path}: {key}/{ref_key}: {err}") from None
            name = r.attrs.get("name", ref_key)
            out.append((str(name.decode() if isinstance(name, bytes) else name), m))
    out.sort(key=lambda x: (x[1].rank if x[1].rank is not None else np.inf, x[0]))
    return dict(out)
