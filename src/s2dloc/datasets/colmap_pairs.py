"""Training pairs of images of a COLMAP model, matched through the 3D points they share."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .image_sets import cover_scale, exclude_names, scale_image
from .pairs import PairDataset, load_image

logger = logging.getLogger(__name__)


def _observations(image: Any) -> tuple[np.ndarray, np.ndarray]:
    """Ids ``(K,)`` (ascending) of the 3D points a ``pycolmap.Image`` sees and the pixels
    ``(K, 2)`` of their first observation in it."""
    ids, xy, seen = [], [], set()
    for p in image.points2D:
        if p.has_point3D() and p.point3D_id not in seen:
            seen.add(p.point3D_id)
            ids.append(p.point3D_id)
            xy.append(np.asarray(p.xy, np.float64))
    order = np.argsort(ids, kind="stable")
    return np.asarray(ids, np.int64)[order], np.asarray(xy, np.float64).reshape(-1, 2)[order]


def _covisible_pairs(
    obs: dict[int, tuple[str, np.ndarray, np.ndarray]], min_shared: int
) -> list[tuple[int, int]]:
    """Image id pairs ``(a, b)``, a < b, that share at least ``min_shared`` 3D points."""
    keys = sorted(obs)
    pairs = []
    for k, a in enumerate(keys):
        for b in keys[k + 1 :]:
            shared = len(np.intersect1d(obs[a][1], obs[b][1], assume_unique=True))
            if shared >= min_shared:
                pairs.append((a, b))
    return pairs


class ColmapPairs(PairDataset):
    """Pairs of images of a COLMAP model that share at least ``min_shared`` 3D points; the
    correspondences are the two observations of each shared point (first one per image).

    ``model`` is a ``pycolmap.Reconstruction`` or a model folder; images under ``image_root``.
    Images whose names match an ``exclude`` pattern (``fnmatch``; held-out images) are left out
    of every pair.
    """

    def __init__(
        self,
        model: Any,
        image_root: str | Path,
        min_shared: int = 20,
        condition: str = "",
        exclude: Sequence[str] = (),
        **kw,
    ):
        super().__init__(**kw)
        import pycolmap

        if isinstance(model, str | Path):
            if not Path(model).is_dir():
                raise FileNotFoundError(f"COLMAP model folder {model} does not exist")
            model = pycolmap.Reconstruction(str(model))
        self.image_root, self.condition = Path(image_root), condition
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        names = sorted(image.name for image in model.images.values())
        kept = set(exclude_names(names, exclude, f"COLMAP model of {image_root}"))
        self.obs: dict[int, tuple[str, np.ndarray, np.ndarray]] = {
            image_id: (image.name, *_observations(image))
            for image_id, image in model.images.items()
            if image.name in kept
        }
        self.pairs = _covisible_pairs(self.obs, min_shared)
        logger.info(
            "COLMAP pairs: %d of %d images, >= %d shared points",
            len(self.pairs),
            len(self.obs),
            min_shared,
        )

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index, rng):
        (name_a, ids_a, xy_a), (name_b, ids_b, xy_b) = (self.obs[i] for i in self.pairs[index])
        _, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
        (img_a, s_a), (img_b, s_b) = self._image(name_a), self._image(name_b)
        return img_a, img_b, xy_a[ia] * s_a, xy_b[ib] * s_b, name_a, name_b, self.condition

    def _image(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The image and the scale (sx, sy) of its points; with ``crop``, resized once to cover
        the crop size and kept in memory (decoding full-size photos dominates otherwise)."""
        if name in self._cache:
            return self._cache[name]
        path = self.image_root / name
        if not path.is_file():
            raise FileNotFoundError(f"COLMAP image {name!r} not found under {self.image_root}")
        out = load_image(path), np.ones(2)
        if self.crop:
            out = scale_image(out[0], cover_scale(out[0].shape, self.resize))
            self._cache[name] = out
        return out
