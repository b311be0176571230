"""Image folders for training: listing with held-out exclusions, and cover-resize + crop.

Pixel coordinates follow COLMAP (top-left pixel centre at (0.5, 0.5)); a crop at integer
offset ``o`` maps a point ``p`` to ``p - o`` and a resize by ``s`` to ``s * p``.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

IMAGE_PATTERNS = ("**/*.jpg", "**/*.JPG", "**/*.jpeg", "**/*.png")


def exclude_names(names: Sequence[str], patterns: Sequence[str], what: str) -> list[str]:
    """``names`` without those matching any of the ``fnmatch`` ``patterns`` (``*`` also matches
    ``/``). Logs how many were excluded, and warns about patterns that matched nothing."""
    for p in patterns:
        if not isinstance(p, str):
            raise ValueError(f"{what}: exclude entries must be strings, got {p!r}")
    hit = {p: [n for n in names if fnmatch.fnmatchcase(n, p)] for p in patterns}
    dropped = {n for matched in hit.values() for n in matched}
    unused = [p for p, matched in hit.items() if not matched]
    if unused:
        logger.warning("%s: exclude patterns matched no image: %s", what, unused)
    kept = [n for n in names if n not in dropped]
    logger.info(
        "%s: %d images, %d excluded (held out), %d kept", what, len(names), len(dropped), len(kept)
    )
    return kept


def list_images(
    root: str | Path, patterns: Sequence[str] = IMAGE_PATTERNS, exclude: Sequence[str] = ()
) -> list[str]:
    """Sorted image paths relative to ``root`` (POSIX) matching ``patterns``, minus ``exclude``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    names = sorted({p.relative_to(root).as_posix() for pat in patterns for p in root.glob(pat)})
    if not names:
        raise FileNotFoundError(f"no images matching {list(patterns)} under {root}")
    kept = exclude_names(names, exclude, str(root))
    if not kept:
        raise ValueError(f"{root}: every image is excluded by {list(exclude)}")
    return kept


def cover_scale(shape: tuple[int, ...], size: tuple[int, int], zoom: float = 1.0) -> float:
    """The scale at which an image of ``shape`` (H, W, ...) covers ``size`` (W, H), times
    ``zoom`` >= 1."""
    h, w = shape[:2]
    return max(size[0] / w, size[1] / h) * zoom


def scale_image(image: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` resized by about ``s`` (to whole pixels, at least 1); returns the image and
    the exact per-axis scale ``(sx, sy)``."""
    h, w = image.shape[:2]
    size = (max(1, round(w * s)), max(1, round(h * s)))
    if size == (w, h):
        return image, np.ones(2)
    interp = cv2.INTER_AREA if size[0] < w else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp), np.array([size[0] / w, size[1] / h])


def crop_offset(
    shape: tuple[int, ...],
    size: tuple[int, int],
    rng: np.random.Generator,
    centre: np.ndarray | None = None,
) -> np.ndarray:
    """Integer offset ``(ox, oy)`` of a ``size`` (W, H) crop inside an image of ``shape``:
    random, or centred on ``centre`` (x, y) and clamped to the image."""
    h, w = shape[:2]
    if w < size[0] or h < size[1]:
        raise ValueError(f"image {w}x{h} is smaller than the crop {size[0]}x{size[1]}")
    if centre is None:
        return np.array([rng.integers(0, w - size[0] + 1), rng.integers(0, h - size[1] + 1)])
    o = np.round(np.asarray(centre, np.float64) - np.array(size) / 2)
    return np.clip(o, 0, [w - size[0], h - size[1]]).astype(np.int64)


def inside(points: np.ndarray, size: tuple[int, int], margin: float = 0.0) -> np.ndarray:
    """Mask (N,) of points (N, 2) inside ``[margin, W - margin] x [margin, H - margin]``."""
    return (
        (points[:, 0] >= margin)
        & (points[:, 0] <= size[0] - margin)
        & (points[:, 1] >= margin)
        & (points[:, 1] <= size[1] - margin)
    )


def crop_pair(
    img_a: np.ndarray,
    img_b: np.ndarray,
    pts_a: np.ndarray,
    pts_b: np.ndarray,
    size: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Resize both images to cover ``size`` (W, H) and crop: a at random, b centred on the
    median of the matches of a's crop (so the crops overlap). Returns the crops and the
    correspondences (M, 2) inside both, in crop coordinates."""
    size = (int(size[0]), int(size[1]))
    img_a, s_a = scale_image(img_a, cover_scale(img_a.shape, size))
    img_b, s_b = scale_image(img_b, cover_scale(img_b.shape, size))
    pts_a, pts_b = np.asarray(pts_a) * s_a, np.asarray(pts_b) * s_b
    o_a = crop_offset(img_a.shape, size, rng)
    keep = inside(pts_a - o_a, size)
    centre = np.median(pts_b[keep], 0) if keep.any() else None
    o_b = crop_offset(img_b.shape, size, rng, centre)
    pts_a, pts_b = pts_a - o_a, pts_b - o_b
    keep = inside(pts_a, size) & inside(pts_b, size)
    crop = lambda im, o: im[o[1] : o[1] + size[1], o[0] : o[0] + size[0]]  # noqa: E731
    return crop(img_a, o_a), crop(img_b, o_b), pts_a[keep], pts_b[keep]
