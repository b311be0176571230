"""Photometric augmentation that simulates condition changes on real images (geometry untouched).

Ops map an image (H, W, 3) float32 in [0, 1] and a ``numpy.random.Generator`` to a new image of
the same shape (the strong real-photo changes are in :mod:`s2dloc.datasets.appearance`).
:class:`Augmentation` composes them (each with a probability, or exactly one with
``one_of``), accepts numpy (H, W, 3) or torch (3, H, W) images and is deterministic for a seed:
called without ``rng`` it draws from its own generator seeded with ``seed``; the pair datasets
pass a per-item generator instead. Presets: :data:`PRESETS` / :func:`build_augmentation`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from .appearance import (
    Fog,
    MotionBlur,
    NightScene,
    Overexposure,
    Season,
    SensorNoise,
    SnowCover,
    uniform,
)

logger = logging.getLogger(__name__)

Range = tuple[float, float]
Op = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# colour casts of night scenes (RGB gains): sodium street lamps, moonlight, LED, neutral
NIGHT_CASTS = ((1.0, 0.72, 0.42), (0.62, 0.75, 1.0), (0.9, 0.95, 1.0), (0.85, 0.85, 0.85))


_uniform = uniform


@dataclasses.dataclass
class ColorJitter:
    """Brightness gain, contrast about the mean, gamma and saturation, each drawn uniformly.
    A range (1, 1) disables a component."""

    brightness: Range = (0.7, 1.3)
    contrast: Range = (0.6, 1.5)
    gamma: Range = (0.7, 1.5)
    saturation: Range = (0.6, 1.3)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.clip(img, 0, 1) ** _uniform(rng, self.gamma)
        out = out * _uniform(rng, self.brightness)
        mean = out.mean()
        out = (out - mean) * _uniform(rng, self.contrast) + mean
        grey = out.mean(-1, keepdims=True)
        out = (out - grey) * _uniform(rng, self.saturation) + grey
        return np.clip(out, 0, 1).astype(np.float32)


@dataclasses.dataclass
class GaussianNoise:
    """Additive sensor noise: read noise ``std`` plus shot noise of variance ``shot * signal``."""

    std: Range = (0.01, 0.04)
    shot: float = 0.0

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        sigma = np.sqrt(_uniform(rng, self.std) ** 2 + self.shot * np.clip(img, 0, 1))
        noise = rng.standard_normal(img.shape).astype(np.float32)
        return np.clip(img + sigma * noise, 0, 1).astype(np.float32)


@dataclasses.dataclass
class Blur:
    """Gaussian blur (defocus / motion-free shake) with sigma in pixels."""

    sigma: Range = (0.5, 1.5)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = _uniform(rng, self.sigma)
        if s <= 0:
            return img
        return cv2.GaussianBlur(img, (0, 0), sigmaX=s, borderType=cv2.BORDER_REFLECT101)


@dataclasses.dataclass
class Snow:
    """Snow-like change: the image blended towards a bluish white (``amount``), contrast and
    saturation lowered, bright (upward-facing, sunlit) regions whitened most, mild noise."""

    amount: Range = (0.35, 0.6)
    bright_bias: Range = (0.2, 0.5)
    noise: Range = (0.003, 0.01)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        img = np.clip(img, 0, 1).astype(np.float32)
        gray = img.mean(-1, keepdims=True)
        white = np.array([0.93, 0.95, 1.0], np.float32)
        a = _uniform(rng, self.amount) + _uniform(rng, self.bright_bias) * gray
        out = (1 - a) * (0.5 * img + 0.5 * gray) + a * white
        out = out + rng.normal(0, _uniform(rng, self.noise), out.shape).astype(np.float32)
        return np.clip(out, 0, 1)


@dataclasses.dataclass
class Night:
    """Night from a day image: ``gain * img ** gamma`` with a colour cast (one of
    :data:`NIGHT_CASTS`, jittered), up to ``lights`` warm light pools that re-light the scene's
    albedo locally (radius as a fraction of the image size), then shot + read sensor noise."""

    gamma: Range = (1.6, 2.4)
    gain: Range = (0.15, 0.4)
    cast_jitter: float = 0.1
    lights: tuple[int, int] = (0, 3)
    light_radius: Range = (0.08, 0.2)
    light_strength: Range = (0.4, 1.0)
    noise: Range = (0.005, 0.02)
    shot: float = 0.002

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        img = np.clip(img, 0, 1).astype(np.float32)
        h, w = img.shape[:2]
        cast = np.asarray(NIGHT_CASTS[rng.integers(len(NIGHT_CASTS))], np.float32)
        cast = cast * rng.uniform(1 - self.cast_jitter, 1 + self.cast_jitter, 3).astype(np.float32)
        out = _uniform(rng, self.gain) * img ** _uniform(rng, self.gamma) * cast
        n = int(rng.integers(self.lights[0], self.lights[1] + 1))
        if n:
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
            pools = np.zeros((h, w), np.float32)
            for _ in range(n):
                cx, cy = rng.uniform(0, w), rng.uniform(0, h)
                r = _uniform(rng, self.light_radius) * max(h, w)
                d2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)
                pools += _uniform(rng, self.light_strength) * np.exp(-d2)
            warm = np.array([1.0, 0.8, 0.55], np.float32)
            out = out + pools[..., None] * img * warm
        return GaussianNoise(self.noise, self.shot)(out, rng)


@dataclasses.dataclass
class Augmentation:
    """Compose ``ops`` (callables or (callable, probability) pairs): all in order, each applied
    with its probability, or exactly one (chosen with probabilities as weights) if ``one_of``."""

    ops: Sequence[Op | tuple[Op, float]]
    seed: int = 0
    one_of: bool = False

    def __post_init__(self):
        self._ops = [op if isinstance(op, tuple) else (op, 1.0) for op in self.ops]
        if not self._ops:
            raise ValueError("Augmentation needs at least one op")
        if any(not callable(op) or not 0 <= p <= 1 for op, p in self._ops):
            raise ValueError(f"ops must be callables with probabilities in [0, 1]: {self.ops}")
        self.rng = np.random.default_rng(self.seed)

    def apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.one_of:
            p = np.array([p for _, p in self._ops], np.float64)
            k = int(rng.choice(len(p), p=p / p.sum())) if p.sum() > 0 else 0
            return self._ops[k][0](img, rng)
        for op, p in self._ops:
            if p >= 1 or rng.random() < p:
                img = op(img, rng)
        return img

    def __call__(self, image: Any, rng: np.random.Generator | None = None) -> Any:
        """Augment (H, W, 3) numpy or (3, H, W) torch float images in [0, 1] (same type out)."""
        rng = self.rng if rng is None else rng
        if isinstance(image, torch.Tensor):
            arr = image.detach().cpu().permute(1, 2, 0).numpy().astype(np.float32)
            out = self.apply(arr, rng)
            return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1))).to(image)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
        return self.apply(np.asarray(image, np.float32), rng).astype(np.float32)


def _presets() -> dict[str, Callable[[], list]]:
    return {
        "night": lambda: [Night(), (Blur((0.3, 1.0)), 0.3)],
        "snow": lambda: [Snow()],
        "contrast": lambda: [ColorJitter()],
        "noise": lambda: [GaussianNoise()],
        "blur": lambda: [Blur()],
        "photometric": lambda: [(ColorJitter(), 0.8), (Blur(), 0.3), (GaussianNoise(), 0.5)],
    }


def strong_appearance(seed: int = 0, night: float = 0.55) -> Augmentation:
    """Strong appearance change for real photos: a night-like composition (darkness, sodium /
    LED cast, light pools, sensor noise, blur) with probability ``night``, else one of snow
    cover (with winter vegetation), fog, autumn vegetation, overexposure or photometric jitter,
    each followed by mild noise or blur now and then."""
    dark = Augmentation([NightScene(), (Blur((0.3, 1.2)), 0.25), (MotionBlur(), 0.15)])
    day = Augmentation(
        [
            (Augmentation([Season(winter=1.0), SnowCover()]).apply, 0.3),
            (Augmentation([Fog(), (ColorJitter(), 0.5)]).apply, 0.2),
            (Augmentation([Season(winter=0.0), (ColorJitter(), 0.5)]).apply, 0.2),
            (Overexposure(), 0.15),
            (ColorJitter((0.5, 1.5), (0.5, 1.6), (0.6, 1.6), (0.3, 1.4)), 0.15),
        ],
        one_of=True,
    )
    extras = Augmentation([(SensorNoise(), 0.4), (Blur((0.3, 1.2)), 0.15), (MotionBlur(), 0.1)])
    day_chain = Augmentation([day.apply, extras.apply])
    return Augmentation([(dark.apply, night), (day_chain.apply, 1 - night)], seed, one_of=True)


PRESETS = tuple(_presets()) + ("conditions", "strong")


def build_augmentation(name: str | None, seed: int = 0) -> Augmentation | None:
    """A preset by name: one of :data:`PRESETS` (``conditions``: night half of the time, else
    photometric jitter; ``strong``: :func:`strong_appearance`), or None for ``None`` /
    ``"none"``."""
    if name is None or name == "none":
        return None
    if name == "strong":
        return strong_appearance(seed)
    presets = _presets()
    if name == "conditions":
        night = Augmentation(presets["night"]())
        photo = Augmentation(presets["photometric"]())
        return Augmentation([(night.apply, 0.5), (photo.apply, 0.5)], seed, one_of=True)
    if name not in presets:
        raise ValueError(f"unknown augmentation {name!r}; choose from {PRESETS}")
    return Augmentation(presets[name](), seed)
