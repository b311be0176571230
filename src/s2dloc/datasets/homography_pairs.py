"""Homographic training pairs from any folder of real photos.

Image a is a random crop of a photo (resized to cover the crop, with a random zoom); image b
is the same photo seen through a random homography ``H`` (rotation, scale, perspective and a
shift about the crop centre), warped from the full photo so that b also shows content outside
a. Correspondences are exact: ``x_b = H x_a`` for pixel centres of a that land inside b. The
appearance change (the dataset's ``augment``) is applied to b. Coordinates are COLMAP's.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .image_sets import IMAGE_PATTERNS, cover_scale, crop_offset, inside, list_images, scale_image
from .pairs import PairDataset, load_image

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class HomographyConfig:
    """Ranges of the random homography: rotation (degrees, +-), isotropic scale, perspective
    (the projective row's magnitude, per crop size), shift (fraction of the crop size, +-)
    and the zoom (>= 1) at which the photo covers the crop."""

    rotation: float = 25.0
    scale: tuple[float, float] = (0.75, 1.35)
    perspective: float = 0.25
    shift: float = 0.1
    zoom: tuple[float, float] = (1.0, 1.6)


def translation(t: np.ndarray) -> np.ndarray:
    """The 3x3 homography of a shift by ``t`` (2,)."""
    out = np.eye(3)
    out[:2, 2] = t
    return out


def random_homography(
    size: tuple[int, int], rng: np.random.Generator, conf: HomographyConfig
) -> np.ndarray:
    """A 3x3 homography of COLMAP pixel coordinates of a ``size`` (W, H) crop, about its
    centre: ``x_b ~ H x_a``."""
    w, h = size
    c = np.array([w / 2, h / 2])
    a = np.deg2rad(rng.uniform(-conf.rotation, conf.rotation))
    s = np.exp(rng.uniform(np.log(conf.scale[0]), np.log(conf.scale[1])))
    A = np.eye(3)
    A[:2, :2] = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    A[2, :2] = rng.uniform(-conf.perspective, conf.perspective, 2) / np.array([w, h])
    shift = rng.uniform(-conf.shift, conf.shift, 2) * np.array([w, h])
    return translation(c + shift) @ A @ translation(-c)


def apply_homography(H: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 2) mapped by the 3x3 ``H`` (dehomogenised)."""
    p = np.asarray(points, np.float64) @ H[:, :2].T + H[:, 2]
    return p[:, :2] / p[:, 2:3]


def warp_image(image: np.ndarray, H: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``out(x) = image(H^-1 x)`` for COLMAP coordinates ``x`` of a ``size`` (W, H) output
    (OpenCV's index coordinates are COLMAP's minus 0.5); zero outside the image."""
    M = translation(np.full(2, -0.5)) @ H @ translation(np.full(2, 0.5))
    return cv2.warpPerspective(
        image,
        M,
        (int(size[0]), int(size[1])),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def homographic_pair(
    photo: np.ndarray,
    size: tuple[int, int],
    rng: np.random.Generator,
    conf: HomographyConfig,
    num_samples: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(img_a, img_b, pts_a, pts_b)`` from a photo (H, W, 3): crops of ``size`` (W, H) and
    up to ``num_samples`` exact correspondences (pixel centres of a inside b)."""
    zoom = rng.uniform(*conf.zoom)
    photo, _ = scale_image(photo, cover_scale(photo.shape, size, zoom))
    if photo.shape[0] < size[1] or photo.shape[1] < size[0]:  # rounding: pad by a pixel
        photo = cv2.resize(photo, (max(photo.shape[1], size[0]), max(photo.shape[0], size[1])))
    o = crop_offset(photo.shape, size, rng)
    H = random_homography(size, rng, conf)
    img_a = photo[o[1] : o[1] + size[1], o[0] : o[0] + size[0]]
    img_b = warp_image(photo, H @ translation(-o.astype(np.float64)), size)
    n = size[0] * size[1]
    idx = rng.choice(n, min(n, num_samples), replace=False)
    pts_a = np.stack([idx % size[0], idx // size[0]], 1) + 0.5
    pts_b = apply_homography(H, pts_a)
    keep = inside(pts_b, size, margin=0.5)
    return img_a, img_b.astype(np.float32), pts_a[keep], pts_b[keep]


class HomographyPairs(PairDataset):
    """Homographic pairs of the photos under ``root`` (``patterns`` relative to it, minus the
    ``exclude`` patterns: held-out images never appear). ``resize`` must be the crop size
    (W, H). ``num_samples`` candidate points per pair (default 4 * max_points)."""

    def __init__(
        self,
        root: str | Path,
        patterns: Sequence[str] = IMAGE_PATTERNS,
        exclude: Sequence[str] = (),
        config: HomographyConfig | None = None,
        num_samples: int | None = None,
        condition: str = "homography",
        **kw,
    ):
        super().__init__(**kw)
        if not isinstance(self.resize, tuple | list) or len(self.resize) != 2:
            raise ValueError(f"HomographyPairs needs resize=(W, H), got {self.resize!r}")
        self.size = (int(self.resize[0]), int(self.resize[1]))
        self.root = Path(root)
        self.names = list_images(self.root, patterns, exclude)
        self.config = config or HomographyConfig()
        self.num_samples = num_samples or 4 * self.max_points
        self.condition = condition
        self._cache: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index, rng):
        name = self.names[index]
        if name not in self._cache:  # decoded once, kept at the largest zoom's resolution
            photo = load_image(self.root / name)
            s = cover_scale(photo.shape, self.size, self.config.zoom[1])
            self._cache[name] = scale_image(photo, s)[0] if s < 1 else photo
        photo = self._cache[name]
        img_a, img_b, pts_a, pts_b = homographic_pair(
            photo, self.size, rng, self.config, self.num_samples
        )
        return img_a, img_b, pts_a, pts_b, name, f"{name}#homography", self.condition
