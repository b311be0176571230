"""Square crops of photos for distillation: the clean crop (the teacher's input) and the same
crop under synthesized appearance change (the student's input), pixel-aligned.

The crops are fixed by ``seed`` (image, scale, offset); the appearance change of crop ``i`` is
a pure function of ``(seed, epoch, i)``, so a resumed run sees the same inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch

from s2dloc.datasets.image_sets import scale_image

logger = logging.getLogger(__name__)


class PhotoCrops(torch.utils.data.Dataset):
    """``num`` fixed ``size`` x ``size`` crops of ``images`` ((H, W, 3) float32 in [0, 1]),
    each image resized first so its long side is one of ``long_sides`` (never enlarged).

    Item ``i``: ``{"index": i, "clean": (3, S, S), "image": (3, S, S)}``; ``image`` is
    ``augment(clean)`` except for a ``clean_fraction`` share of draws, where it is ``clean``.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        num: int,
        size: int = 192,
        long_sides: Sequence[int] = (768, 512),
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        clean_fraction: float = 0.15,
        seed: int = 0,
    ):
        if num < 1 or size < 8:
            raise ValueError(f"need at least one crop of at least 8 pixels, got {num} x {size}")
        if not 0 <= clean_fraction <= 1:
            raise ValueError(f"clean_fraction must be in [0, 1], got {clean_fraction}")
        self.scaled = [
            scale_image(im, min(1.0, side / max(im.shape[:2])))[0]
            for im in images
            for side in long_sides
        ]
        self.scaled = [im for im in self.scaled if min(im.shape[:2]) >= size]
        if not self.scaled:
            raise ValueError(f"no image is at least {size} pixels on its short side")
        self.size, self.augment, self.clean_fraction = size, augment, clean_fraction
        self.seed, self.epoch = seed, 0
        rng = np.random.default_rng(seed)
        crops = []
        for k in rng.integers(len(self.scaled), size=num):
            h, w = self.scaled[k].shape[:2]
            crops.append((k, rng.integers(h - size + 1), rng.integers(w - size + 1)))
        self.crops = np.array(crops, np.int64)  # (num, 3): image, top, left
        logger.info("%d crops of %d pixels from %d scaled images", num, size, len(self.scaled))

    def __len__(self) -> int:
        return len(self.crops)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def clean(self, index: int) -> np.ndarray:
        """(S, S, 3) float32: crop ``index`` without appearance change."""
        k, y, x = self.crops[index]
        return np.ascontiguousarray(self.scaled[k][y : y + self.size, x : x + self.size])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"crop {index} out of range for {len(self)} crops")
        clean = self.clean(index)
        image = clean
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.augment is not None and rng.random() >= self.clean_fraction:
            image = self.augment(clean, rng)

        def chw(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), np.float32))

        return {"index": index, "clean": chw(clean), "image": chw(image)}
