"""Fixed, seeded appearance changes applied to real query images for benchmarking.

Each condition is a deterministic function of ``(image, seed)``: ``(H, W, 3)`` uint8 RGB in,
``(H, W, 3)`` uint8 RGB out, geometry untouched. With ``x`` the image in ``[0, 1]``:

- ``none``: the image as captured.
- ``dark``: ``0.25 * x ** 2.5`` times a warm colour cast ``(1.0, 0.85, 0.65)``, plus Gaussian
  noise of standard deviation 3/255.
- ``very_dark``: ``0.12 * x ** 2.5``, plus Gaussian noise of standard deviation 4/255.
- ``snow``: :class:`s2dloc.datasets.augment.Snow` with fixed parameters (blend towards a bluish
  white by ``0.45 + 0.35 * gray``, contrast and saturation halved, noise 0.006).
- ``fog``: ``t * x + (1 - t) * A`` with airlight ``A = (0.82, 0.84, 0.86)`` and a transmission
  ``t`` from 0.35 (top row, far) to 0.65 (bottom row, near), a Gaussian blur of 1 px, plus
  noise 2/255.

Images are rounded back to uint8 after clipping to ``[0, 1]``.
"""

from __future__ import annotations

import cv2
import numpy as np

from s2dloc.datasets.augment import Snow

CONDITIONS = ("none", "dark", "very_dark", "snow", "fog")
DARK_CAST = (1.0, 0.85, 0.65)
FOG_AIRLIGHT = (0.82, 0.84, 0.86)


def _noise(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return x + rng.normal(0.0, sigma, x.shape).astype(np.float32)


def _dark(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _noise(0.25 * x**2.5 * np.asarray(DARK_CAST, np.float32), 3 / 255, rng)


def _very_dark(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _noise(0.12 * x**2.5, 4 / 255, rng)


def _snow(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return Snow(amount=(0.45, 0.45), bright_bias=(0.35, 0.35), noise=(0.006, 0.006))(x, rng)


def _fog(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h = x.shape[0]
    t = np.linspace(0.35, 0.65, h, dtype=np.float32)[:, None, None]
    out = t * x + (1 - t) * np.asarray(FOG_AIRLIGHT, np.float32)
    out = cv2.GaussianBlur(out, (0, 0), sigmaX=1.0, borderType=cv2.BORDER_REFLECT101)
    return _noise(out, 2 / 255, rng)


_OPS = {"dark": _dark, "very_dark": _very_dark, "snow": _snow, "fog": _fog}


def apply_condition(image: np.ndarray, condition: str, seed: int = 0) -> np.ndarray:
    """``image (H, W, 3)`` uint8 RGB under ``condition`` (one of :data:`CONDITIONS`), with the
    noise drawn from ``numpy.random.default_rng(seed)``; returns a new uint8 image."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; choose from {list(CONDITIONS)}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    if condition == "none":
        return image.copy()
    x = image.astype(np.float32) / 255.0
    out = _OPS[condition](x, np.random.default_rng(seed))
    return (255 * np.clip(out, 0.0, 1.0)).round().astype(np.uint8)
