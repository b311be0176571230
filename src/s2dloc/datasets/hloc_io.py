"""hloc's local-feature and match HDF5 files (cvg/Hierarchical-Localization).

Features: one group per image name (a name with ``/`` gives nested groups) holding
``keypoints (N, 2)``, ``descriptors (D, N)`` (descriptor dimension FIRST), ``scores (N,)`` and
``image_size (2,)`` = ``(width, height)``; ``keypoints`` may carry an ``uncertainty`` attribute.

hloc keypoints put the centre of the top-left pixel at ``(0, 0)`` (hloc adds 0.5 when it hands
them to COLMAP). s2dloc uses COLMAP's convention, so :func:`read_features` returns
``keypoints + 0.5`` and :func:`write_features` stores ``keypoints - 0.5``. In the API,
descriptors are ``(N, D)``.

Matches: one group per image pair, keyed by :func:`names_to_pair` (``/`` in names replaced by
``-``, the two joined by ``/``; older files join with ``_``), holding ``matches0 (N0,)`` (index
into image 1 or -1) and ``matching_scores0 (N0,)``.

Writers create a new file atomically; into an existing file they add entries in place
(resumable, like hloc), skipping names already present unless ``overwrite``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from s2dloc.datasets.h5_files import open_h5, write_h5

logger = logging.getLogger(__name__)


@dataclass
class LocalFeatures:
    """``keypoints (N, 2)`` float64 in COLMAP pixels; optional ``descriptors (N, D)``,
    ``scores (N,)``, ``image_size (2,)`` = (width, height), keypoint ``uncertainty`` (pixels)."""

    keypoints: np.ndarray
    descriptors: np.ndarray | None = None
    scores: np.ndarray | None = None
    image_size: np.ndarray | None = None
    uncertainty: float | None = None

    def __post_init__(self):
        self.keypoints = np.asarray(self.keypoints, np.float64).reshape(-1, 2)
        n = len(self.keypoints)
        if self.descriptors is not None and (
            np.ndim(self.descriptors) != 2 or len(self.descriptors) != n
        ):
            raise ValueError(f"descriptors must be (N={n}, D), got {np.shape(self.descriptors)}")
        if self.scores is not None and np.shape(self.scores) != (n,):
            raise ValueError(f"scores must be (N={n},), got {np.shape(self.scores)}")
        if self.image_size is not None and np.shape(self.image_size) != (2,):
            raise ValueError(f"image_size must be (width, height), got {np.shape(self.image_size)}")


def list_names(path: str | Path) -> list[str]:
    """Names of the groups that hold datasets (image names of a feature file), sorted."""
    names: set[str] = set()

    def visit(_, obj):
        if isinstance(obj, h5py.Dataset):
            names.add(obj.parent.name.strip("/"))

    with open_h5(path) as f:
        f.visititems(visit)
    return sorted(names)


def read_features(path: str | Path, name: str) -> LocalFeatures:
    """Features of image ``name`` (keypoints converted to COLMAP pixels)."""
    with open_h5(path) as f:
        if name not in f or not isinstance(f[name], h5py.Group) or "keypoints" not in f[name]:
            raise KeyError(f"{path}: no features for image {name!r}")
        g = f[name]
        kp = g["keypoints"][()]
        if kp.ndim != 2 or kp.shape[1] != 2:
            raise ValueError(f"{path}: {name}/keypoints must be (N, 2), got {kp.shape}")
        unc = g["keypoints"].attrs.get("uncertainty")
        desc = g["descriptors"][()] if "descriptors" in g else None
        if desc is not None and (desc.ndim != 2 or desc.shape[1] != len(kp)):
            raise ValueError(
                f"{path}: {name}/descriptors must be (D, N={len(kp)}), got {desc.shape}"
            )
        scores = g["scores"][()] if "scores" in g else None
        size = g["image_size"][()] if "image_size" in g else None
    try:
        return LocalFeatures(
            kp.astype(np.float64) + 0.5,
            None if desc is None else np.ascontiguousarray(desc.T.astype(np.float32)),
            None if scores is None else scores.astype(np.float32),
            None if size is None else size.astype(np.int64),
            None if unc is None else float(unc),
        )
    except ValueError as err:
        raise ValueError(f"{path}: image {name!r}: {err}") from None


def write_features(
    path: str | Path,
    features: Mapping[str, LocalFeatures],
    as_half: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write ``{name: LocalFeatures}`` in hloc's layout (keypoints shifted to hloc's convention).

    ``as_half`` stores descriptors and scores as float16 (keypoints stay float32).
    """
    path = Path(path)
    half = np.float16 if as_half else np.float32

    def fill(f: h5py.File):
        for name, feats in features.items():
            if name in f:
                if not overwrite:
                    logger.debug("%s: skipping %s (already present)", path, name)
                    continue
                del f[name]
            g = f.create_group(name)
            ds = g.create_dataset("keypoints", data=(feats.keypoints - 0.5).astype(np.float32))
            if feats.uncertainty is not None:
                ds.attrs["uncertainty"] = float(feats.uncertainty)
            if feats.descriptors is not None:
                g.create_dataset("descriptors", data=np.asarray(feats.descriptors).T.astype(half))
            if feats.scores is not None:
                g.create_dataset("scores", data=np.asarray(feats.scores).astype(half))
            if feats.image_size is not None:
                g.create_dataset("image_size", data=np.asarray(feats.image_size, np.int64))

    return write_h5(path, fill)


def names_to_pair(name0: str, name1: str, separator: str = "/") -> str:
    """hloc's key of a pair: ``/`` in names replaced by ``-``, joined by ``separator``."""
    return separator.join((name0.replace("/", "-"), name1.replace("/", "-")))


def find_pair(f: h5py.File, name0: str, name1: str) -> tuple[str, bool]:
    """``(key, reversed)`` of a pair in an open match file (either order, new or old keys)."""
    for sep in ("/", "_"):
        for a, b, rev in ((name0, name1, False), (name1, name0, True)):
            key = names_to_pair(a, b, sep)
            if key in f and isinstance(f[key], h5py.Group) and "matches0" in f[key]:
                return key, rev
    raise KeyError(f"{f.filename}: no matches for pair ({name0!r}, {name1!r})")


def read_matches(path: str | Path, name0: str, name1: str) -> tuple[np.ndarray, np.ndarray]:
    """``matches (M, 2)`` int64 indices ``(i0, i1)`` and ``scores (M,)`` float32 for a pair."""
    with open_h5(path) as f:
        key, rev = find_pair(f, name0, name1)
        m0 = f[key]["matches0"][()].astype(np.int64)
        s0 = f[key]["matching_scores0"][()] if "matching_scores0" in f[key] else None
    if m0.ndim != 1 or (s0 is not None and s0.shape != m0.shape):
        raise ValueError(
            f"{path}: {key}: matches0/matching_scores0 must be (N0,), "
            f"got {m0.shape}, {None if s0 is None else s0.shape}"
        )
    idx = np.flatnonzero(m0 >= 0)
    matches = np.stack([idx, m0[idx]], -1)
    scores = np.ones(len(idx), np.float32) if s0 is None else s0[idx].astype(np.float32)
    return (matches[:, ::-1].copy() if rev else matches), scores


def matches0_from_pairs(matches: np.ndarray, num0: int) -> np.ndarray:
    """hloc's ``matches0 (num0,)`` (-1 where unmatched) from index pairs ``(M, 2)``."""
    matches = np.asarray(matches, np.int64).reshape(-1, 2)
    if (
        len(np.unique(matches[:, 0])) != len(matches)
        or (matches < 0).any()
        or (len(matches) and matches[:, 0].max() >= num0)
    ):
        raise ValueError(f"matches must be one-to-one indices below num0={num0} for image 0")
    m0 = np.full(num0, -1, np.int64)
    m0[matches[:, 0]] = matches[:, 1]
    return m0


def write_matches(
    path: str | Path,
    matches: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    overwrite: bool = False,
) -> Path:
    """Write ``{(name0, name1): (matches0 (N0,), matching_scores0 (N0,))}`` under hloc's keys."""
    path = Path(path)

    def fill(f: h5py.File):
        for (n0, n1), (m0, s0) in matches.items():
            m0, s0 = np.asarray(m0).reshape(-1), np.asarray(s0).reshape(-1)
            if m0.shape != s0.shape:
                raise ValueError(f"pair ({n0}, {n1}): matches0 {m0.shape} != scores0 {s0.shape}")
            key = names_to_pair(n0, n1)
            if key in f:
                if not overwrite:
                    continue
                del f[key]
            g = f.create_group(key)
            g.create_dataset("matches0", data=m0.astype(np.int32))
            g.create_dataset("matching_scores0", data=s0.astype(np.float32))

    return write_h5(path, fill)
