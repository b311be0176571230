"""Training pairs with pixel correspondences: the sample format and the base dataset.

Every dataset returns :meth:`Pair.to_dict`: ``image_a``, ``image_b`` float32 ``(3, H, W)`` in
[0, 1]; ``points_a``, ``points_b`` float32 ``(K, 2)`` in COLMAP pixel coordinates (top-left pixel
centre at (0.5, 0.5)); ``valid`` bool ``(K,)`` (rows past the real correspondences are zero and
invalid); ``name_a``, ``name_b``, ``condition_b`` strings. K is the dataset's ``max_points``, so
:func:`torch.utils.data.default_collate` batches pairs when the images share a size (pass
``resize=(W, H)``). Resizing an image by ``(sx, sy)`` scales its points by exactly ``(sx, sy)``.
Item ``i`` is deterministic for ``(seed, epoch, i)``; call :meth:`set_epoch` to vary it.

Sources: CSCD files (:mod:`.cscd_pairs`), the synthetic world (:mod:`.synthetic_pairs`), RGB-D
sequences (:mod:`.rgbd_pairs`), COLMAP models (:mod:`.colmap_pairs`) and homographies of photos
(:mod:`.homography_pairs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from .image_sets import crop_pair

Resize = int | tuple[int, int] | None
Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclasses.dataclass
class Pair:
    """One training sample; see the module docstring for shapes and conventions."""

    image_a: torch.Tensor
    image_b: torch.Tensor
    points_a: torch.Tensor
    points_b: torch.Tensor
    valid: torch.Tensor
    name_a: str
    name_b: str
    condition_b: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] (grey images are replicated)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def as_float_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from uint8 or float input."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return np.clip(image.astype(np.float32), 0, 1)


def resize_image(image: np.ndarray, resize: Resize) -> tuple[np.ndarray, np.ndarray]:
    """Resize (H, W, 3) to ``resize`` (longer side if int, (W, H) if a pair); return the image
    and the exact scale (sx, sy) = new size / old size, by which COLMAP pixel coordinates scale."""
    h, w = image.shape[:2]
    if resize is None:
        return image, np.ones(2)
    if isinstance(resize, int):
        s = resize / max(w, h)
        size = (max(1, round(w * s)), max(1, round(h * s)))
    else:
        size = (int(resize[0]), int(resize[1]))
    if size == (w, h):
        return image, np.ones(2)
    interp = cv2.INTER_AREA if size[0] < w else cv2.INTER_LINEAR
    out = cv2.resize(image, size, interpolation=interp)
    return out, np.array([size[0] / w, size[1] / h])


class PairDataset(torch.utils.data.Dataset):
    """Base class: subsamples or pads to ``max_points``, resizes, augments, converts.

    Subclasses implement ``__len__`` and ``load(index) -> (img_a, img_b, pts_a (N, 2),
    pts_b (N, 2), name_a, name_b, condition_b)`` with images (H, W, 3) float32 in [0, 1].
    ``augment`` (e.g. :class:`s2dloc.datasets.augment.Augmentation`) is applied to image b, and
    to image a too if ``augment_both``. With ``crop`` (``resize`` = (W, H)) both images keep
    their aspect ratio: resized to cover (W, H) and cropped, a at random and b around a's
    matches (:func:`s2dloc.datasets.image_sets.crop_pair`), instead of stretched.
    """

    def __init__(
        self,
        resize: Resize = None,
        max_points: int = 1024,
        seed: int = 0,
        augment: Augment | None = None,
        augment_both: bool = False,
        crop: bool = False,
    ):
        if max_points <= 0:
            raise ValueError(f"max_points must be positive, got {max_points}")
        if crop and (not isinstance(resize, tuple | list) or len(resize) != 2):
            raise ValueError(f"crop=True needs resize=(W, H), got {resize!r}")
        self.resize, self.max_points, self.seed = resize, int(max_points), int(seed)
        self.crop = crop
        self.augment, self.augment_both = augment, augment_both
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def load(self, index: int, rng: np.random.Generator) -> tuple:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"pair {index} out of range for {len(self)} pairs")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        img_a, img_b, pts_a, pts_b, name_a, name_b, cond = self.load(index, rng)
        if self.crop:
            img_a, img_b, pts_a, pts_b = crop_pair(img_a, img_b, pts_a, pts_b, self.resize, rng)
        n = len(pts_a)
        if n > self.max_points:
            sel = np.sort(rng.choice(n, self.max_points, replace=False))
            pts_a, pts_b, n = pts_a[sel], pts_b[sel], self.max_points
        img_a, s_a = resize_image(img_a, self.resize)
        img_b, s_b = resize_image(img_b, self.resize)
        if self.augment is not None:
            if self.augment_both:
                img_a = self.augment(img_a, rng)
            img_b = self.augment(img_b, rng)
        points = np.zeros((2, self.max_points, 2), np.float32)
        points[0, :n] = pts_a * s_a
        points[1, :n] = pts_b * s_b
        valid = torch.zeros(self.max_points, dtype=torch.bool)
        valid[:n] = True
        t = [
            torch.from_numpy(np.ascontiguousarray(i.transpose(2, 0, 1), np.float32))
            for i in (img_a, img_b)
        ]
        p = torch.from_numpy(points)
        return Pair(t[0], t[1], p[0], p[1], valid, name_a, name_b, cond).to_dict()
